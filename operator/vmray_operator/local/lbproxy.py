"""The load balancer of a VirtualMachineService: TCP listeners on its external address that forward
each connection to a VM the service selects."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
from collections.abc import Callable

log = logging.getLogger("vmray.lbproxy")

Target = Callable[[], str | None]  # the address of a selected VM, or None when none is up


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except (ConnectionError, asyncio.IncompleteReadError):
        pass
    finally:
        with contextlib.suppress(Exception):
            writer.close()


class LoadBalancer:
    def __init__(self, address: str, ports: list[tuple[int, int]], target: Target) -> None:
        self.address = address
        self.ports = ports  # (port, targetPort)
        self._target = target
        self._servers: list[asyncio.Server] = []

    async def start(self) -> None:
        for port, target_port in self.ports:
            server = await asyncio.start_server(
                functools.partial(self._forward, target_port=target_port), self.address, port, reuse_address=True
            )
            self._servers.append(server)

    async def _forward(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, *, target_port: int) -> None:
        address = self._target()
        if address is None:
            writer.close()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(address, target_port)
        except OSError:
            writer.close()
            return
        try:
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        except asyncio.CancelledError:  # the balancer is going away: drop the connection quietly
            upstream_writer.close()
            writer.close()

    async def stop(self) -> None:
        for server in self._servers:
            server.close()
        for server in self._servers:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(server.wait_closed(), timeout=2)
        self._servers.clear()
