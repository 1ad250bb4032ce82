"""What this operator wrote a moment ago, so that a reconcile that runs before the watch shows those writes
does not send them again: a creation (a POST refused as AlreadyExists, then a GET to see whose), or an update
made against the very version of the object the watch still shows."""

from __future__ import annotations

import time

from vmray_operator.controller.stores import Key
from vmray_operator.reconcile.observed import Observed
from vmray_operator.reconcile.plan import Action, Create, Kind, Update


class RecentWrites:
    def __init__(self, window: float = 10.0) -> None:
        self.window = window  # long enough for any watch to catch up; a lost write is sent again after it
        # cluster -> (its uid, (kind, name) -> (when, what was written)); a new cluster of the same name starts afresh
        self._written: dict[Key, tuple[str, dict[tuple[Kind, str], tuple[float, Action]]]] = {}

    def record(self, key: Key, uid: str, actions: list[Action]) -> None:
        written = self._of(key, uid)
        for action in actions:
            if isinstance(action, Create) or (isinstance(action, Update) and action.basis):
                written[(action.kind, action.name)] = (time.monotonic(), action)

    def forget(self, key: Key) -> None:
        self._written.pop(key, None)

    def _of(self, key: Key, uid: str) -> dict[tuple[Kind, str], tuple[float, Action]]:
        entry = self._written.get(key)
        if entry is None or entry[0] != uid:
            entry = self._written[key] = (uid, {})
        return entry[1]

    def without_recent(
        self, key: Key, uid: str, actions: list[Action], observed: Observed
    ) -> tuple[list[Action], float | None]:
        """The actions but the creations of what was created within the window and is not seen yet, and the
        updates sent within the window against the version the watch still shows; and in how many seconds the
        oldest of those leaves the window (when to look again), or None."""
        written = self._of(key, uid)
        now = time.monotonic()
        seen = _seen(observed)  # once the watch shows a creation, a later deletion may be answered at once
        for done in [
            k
            for k, (at, sent) in written.items()
            if now - at >= self.window or (isinstance(sent, Create) and k in seen)
        ]:
            del written[done]
        kept: list[Action] = []
        skipped: list[float] = []  # when the writes left out were sent
        for action in actions:
            at, sent = written.get((action.kind, action.name), (None, None))
            if at is not None and _sent_already(action, sent):
                skipped.append(at)
            else:
                kept.append(action)
        if not skipped:
            return actions, None
        return kept, max(0.0, min(skipped) + self.window - now)


def _sent_already(action: Action, sent: Action | None) -> bool:
    """A creation of what was just created, or the very update just sent against the version the watch shows."""
    if isinstance(action, Create):
        return isinstance(sent, Create)
    return isinstance(action, Update) and action == sent


def _seen(observed: Observed) -> set[tuple[Kind, str]]:
    """What the watches show of a cluster."""
    seen = {(Kind.VM, name) for name in observed.vms}
    seen |= {(Kind(kind), name) for kind, objects in observed.identity.items() for name in objects}
    seen |= {(kind, name) for name in observed.secrets for kind in (Kind.SECRET, Kind.TOKEN_SECRET)}
    seen |= {(Kind.CONFIG_MAP, name) for name in observed.config_maps}
    if observed.service is not None:
        seen.add((Kind.SERVICE, str(observed.service["metadata"]["name"])))
    if observed.metrics_service is not None:
        seen.add((Kind.METRICS_SERVICE, str(observed.metrics_service["metadata"]["name"])))
    seen |= {(Kind.ENDPOINT_SLICE, name) for name in observed.endpoint_slices}
    return seen
