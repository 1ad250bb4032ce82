"""Kubernetes Events about a cluster: what `kubectl describe vmraycluster` shows."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

from vmray_operator.kube import resources as r
from vmray_operator.kube.client import ApiError, Kube
from vmray_operator.timestamps import rfc3339, utc_now

log = logging.getLogger("vmray.events")
COMPONENT = "vmray-operator"


def _now() -> str:
    return rfc3339(utc_now())


class EventRecorder:
    def __init__(self, kube: Kube) -> None:
        self._kube = kube
        self._instance = socket.gethostname()
        self._pending: set[asyncio.Task[None]] = set()

    def emit(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """Posts the Event in the background: a reconcile never waits for its own Events."""
        task = asyncio.create_task(self.record(involved, type_, reason, message))
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def flush(self) -> None:
        if self._pending:
            await asyncio.gather(*self._pending, return_exceptions=True)

    async def record(self, involved: dict[str, Any], type_: str, reason: str, message: str) -> None:
        """Posts an Event; a failure to post is logged, never raised (events are best effort)."""
        meta = involved["metadata"]
        now = _now()
        event = {
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"generateName": f"{meta['name']}.", "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": involved.get("apiVersion"),
                "kind": involved.get("kind"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": type_,
            "reason": reason,
            "message": message[:1024],
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "reportingInstance": self._instance,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        }
        try:
            await self._kube.create(r.EVENTS, event, meta["namespace"])
        except ApiError as error:
            log.warning("could not post event %s for %s/%s: %s", reason, meta["namespace"], meta["name"], error)
