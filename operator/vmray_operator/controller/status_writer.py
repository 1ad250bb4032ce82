"""Writes a cluster's status: only what changed, a step of the way up folded into the next news, and the Events
its transitions raise."""

from __future__ import annotations

import datetime
import time
from collections.abc import Callable

from vmray_operator import metrics
from vmray_operator.api.contract import Body
from vmray_operator.api.models import VMRayClusterStatus
from vmray_operator.controller.own_writes import OwnWrites
from vmray_operator.controller.stores import Key
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube, NotFound
from vmray_operator.kube.events import EventRecorder
from vmray_operator.reconcile.diff import merge_patch
from vmray_operator.reconcile.events import became_ready, transition_events
from vmray_operator.reconcile.observed import version
from vmray_operator.reconcile.progress import progress_only
from vmray_operator.reconcile.status import status_body

# A status change that is only a step of the way up (see progress.progress_only) is written once this many
# seconds have passed since the cluster's last status write, or earlier with the next news (a VM created,
# an IP, a VM or Ray running, a failure), which is always written at once.
PROGRESS_WRITE_INTERVAL = 5.0


class StatusWriter:
    def __init__(self, kube: Kube, events: EventRecorder, clock: Callable[[], datetime.datetime]) -> None:
        self.kube = kube
        self.events = events
        self.clock = clock
        self._written: OwnWrites[Body] = OwnWrites()  # by cluster

    def forget(self, key: Key) -> None:
        self._written.forget(key)

    def previous(self, key: Key, body: Body) -> Body:
        """The cluster's status as the API server has it. A reconcile that runs before the watch brings back
        this operator's own last write sees an older cluster: then that write is the status."""
        held = self._written.held(key, body["metadata"]["uid"], version(body))
        status: Body = held if held is not None else body.get("status") or {}
        return status

    def wrote(self, key: Key, body: Body) -> bool:
        """Whether this version of the cluster is the one this operator's last status write made."""
        written = self._written.last(key, body["metadata"]["uid"])
        return written is not None and written.made == version(body)

    async def write(self, key: Key, body: Body, typed: VMRayClusterStatus) -> float | None:
        """Writes what changed; returns in how many seconds to come back for a change held back."""
        meta, status = body["metadata"], status_body(typed)
        previous = self.previous(key, body)
        patch = merge_patch(previous, status)
        if not patch:
            return None
        written = self._written.last(key, meta["uid"])
        since = time.monotonic() - (written.at if written else -PROGRESS_WRITE_INTERVAL)
        if since < PROGRESS_WRITE_INTERVAL and progress_only(previous, status):
            return PROGRESS_WRITE_INTERVAL - since
        try:
            result = await self.kube.patch(
                r.VMRAYCLUSTERS, meta["name"], {"status": patch}, meta["namespace"], subresource="status"
            )
        except NotFound:
            return None
        self._written.record(key, meta["uid"], version(body), status, version(result))
        for note in transition_events(previous, status):
            self.events.emit(body, note.type, note.reason, note.message)
        if became_ready(previous, status):
            metrics.FIRST_READY.observe(meta, self.clock())
        return None
