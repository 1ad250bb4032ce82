"""What this operator created a moment ago, so that a reconcile that runs before the watch shows those
objects does not try to create them again (a POST refused as AlreadyExists, then a GET to see whose)."""

from __future__ import annotations

import time

from vmray_operator.controller.stores import Key
from vmray_operator.reconcile.observed import Observed
from vmray_operator.reconcile.plan import Action, Create, Kind


class RecentCreations:
    def __init__(self, window: float = 10.0) -> None:
        self.window = window  # long enough for any watch to catch up; a lost object is made again after it
        # cluster -> (its uid, (kind, name) -> when it was created); a new cluster of the same name starts afresh
        self._made: dict[Key, tuple[str, dict[tuple[Kind, str], float]]] = {}

    def record(self, key: Key, uid: str, actions: list[Action]) -> None:
        made = self._of(key, uid)
        for action in actions:
            if isinstance(action, Create):
                made[(action.kind, action.name)] = time.monotonic()

    def forget(self, key: Key) -> None:
        self._made.pop(key, None)

    def _of(self, key: Key, uid: str) -> dict[tuple[Kind, str], float]:
        entry = self._made.get(key)
        if entry is None or entry[0] != uid:
            entry = self._made[key] = (uid, {})
        return entry[1]

    def without_recent(
        self, key: Key, uid: str, actions: list[Action], observed: Observed
    ) -> tuple[list[Action], float | None]:
        """The actions but the creations of what was created within the window and is not seen yet; and in
        how many seconds the oldest of those leaves the window (when to look again), or None."""
        made = self._of(key, uid)
        now = time.monotonic()
        seen = _seen(observed)  # once the watch shows an object, a later deletion may be answered at once
        for done in [k for k, at in made.items() if now - at >= self.window or k in seen]:
            del made[done]
        kept: list[Action] = []
        skipped: list[float] = []  # when the creations left out were made
        for action in actions:
            at = made.get((action.kind, action.name)) if isinstance(action, Create) else None
            if at is None:
                kept.append(action)
            else:
                skipped.append(at)
        if not skipped:
            return actions, None
        return kept, max(0.0, min(skipped) + self.window - now)


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
