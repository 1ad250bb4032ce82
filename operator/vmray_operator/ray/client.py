"""Reads a Ray cluster's health and nodes from its dashboard. Each request is bounded in time and in the bytes
read, and every outcome, whatever the server does, is a RayView (see view.py for how answers are read)."""

from __future__ import annotations

import asyncio
import dataclasses

import aiohttp

from vmray_operator.ray.view import (
    ACTORS_PATH,
    JOBS_PATH,
    NODES_PATH,
    TASKS_PATH,
    VERSION_PATH,
    RayView,
    activity_from_answers,
    refused,
    unhealthy,
    unreachable,
    view_from_answers,
)

HEALTH_PATH = "/api/gcs_healthz"
# A node's row in the listing is a few hundred bytes: 1000 workers and the dead nodes Ray remembers fit well.
MAX_ANSWER_BYTES = 4 * 1024 * 1024
_CHUNK = 64 * 1024


class _Answered(Exception):
    """A request that ended with an answer that is itself the view (too large)."""

    def __init__(self, view: RayView) -> None:
        super().__init__(view.error)
        self.view = view


class RayDashboard:
    def __init__(
        self,
        session: aiohttp.ClientSession,
        timeout: float = 3.0,
        max_answer_bytes: int = MAX_ANSWER_BYTES,
        token: str | None = None,
    ) -> None:
        self._session = session
        self._timeout = timeout
        self._max_answer_bytes = max_answer_bytes
        # With Ray's token authentication every request carries the cluster's token.
        self._headers = {"Accept-Encoding": "identity"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"

    async def _get(self, dashboard_url: str, path: str) -> tuple[int, bytes]:
        """The status and body of one answer, within the time and size bounds."""
        async with (
            asyncio.timeout(self._timeout),
            self._session.get(
                f"{dashboard_url}{path}",
                # The dashboard runs where users' jobs run: follow no redirect elsewhere, and take no
                # compressed body, whose size says nothing about what it unpacks to.
                allow_redirects=False,
                auto_decompress=False,
                headers=self._headers,
            ) as response,
        ):
            if response.content_length is not None and response.content_length > self._max_answer_bytes:
                raise _Answered(self._too_large(path))
            body = bytearray()
            async for chunk in response.content.iter_chunked(_CHUNK):
                body += chunk
                if len(body) > self._max_answer_bytes:
                    raise _Answered(self._too_large(path))
            return response.status, bytes(body)

    def _too_large(self, path: str) -> RayView:
        return unhealthy(f"{path} answered with more than {self._max_answer_bytes} bytes: too large")

    async def view(self, dashboard_url: str, activity: bool = False) -> RayView:
        """activity: also what Ray is doing (jobs, tasks, actors), for idle suspension and the deletion guard."""
        try:
            view = await self._view(dashboard_url)
            return await self._with_activity(dashboard_url, view) if activity and view.healthy else view
        except _Answered as answered:
            return answered.view
        except TimeoutError:
            return unreachable(f"no answer within {self._timeout:g} s")
        except (aiohttp.ClientError, OSError) as error:  # refused, reset, closed midway, bad headers
            return unreachable(f"{type(error).__name__}: {error}")

    async def _with_activity(self, dashboard_url: str, view: RayView) -> RayView:
        paths = (JOBS_PATH, TASKS_PATH, ACTORS_PATH)
        results = await asyncio.gather(*(self._get(dashboard_url, path) for path in paths), return_exceptions=True)
        answers: list[tuple[int, bytes]] = []
        for result in results:
            if isinstance(result, BaseException):
                raise result
            answers.append(result)
        for path, (status, body) in zip(paths, answers, strict=True):
            if status != 200:
                return dataclasses.replace(view, error=refused(path, status, body).error)
        found = activity_from_answers(*(body for _, body in answers))
        if isinstance(found, str):
            return dataclasses.replace(view, error=found)
        return dataclasses.replace(view, activity=found)

    async def _view(self, dashboard_url: str) -> RayView:
        status, body = await self._get(dashboard_url, HEALTH_PATH)
        if status != 200:
            return unhealthy(f"GCS is not healthy ({HEALTH_PATH} answered HTTP {status})")
        if body.strip() != b"success":
            return unhealthy(f"GCS is not healthy ({HEALTH_PATH} did not answer success)")
        # both requests finish (or fail) before either's error is raised, so none is left running unawaited
        version, nodes = await asyncio.gather(
            self._get(dashboard_url, VERSION_PATH),
            self._get(dashboard_url, f"{NODES_PATH}?limit=10000&detail=true"),
            return_exceptions=True,
        )
        if isinstance(version, BaseException):
            raise version
        if isinstance(nodes, BaseException):
            raise nodes
        for path, (answer_status, answer_body) in ((VERSION_PATH, version), (NODES_PATH, nodes)):
            if answer_status != 200:
                return refused(path, answer_status, answer_body)
        return view_from_answers(version[1], nodes[1])
