"""Which Events a reconcile raises: what `kubectl describe vmraycluster` shows. Pure.

One Event for what one reconcile created or started deleting, whatever the number of VMs; an Event when Ready
or DependenciesReady changes (a failure or a lost Ready as a Warning, the steps of bringing a cluster up as no
news), and a Warning when a rollout stalls."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from vmray_operator.api.contract import PROGRESS_REASONS, Body, ConditionType, Reason
from vmray_operator.conditions import find
from vmray_operator.reconcile.plan import Action, Create, Delete, Kind

NORMAL, WARNING = "Normal", "Warning"


@dataclass(frozen=True)
class EventNote:
    type: str  # Normal | Warning
    reason: str
    message: str


def _summary(actions: Sequence[Action], reason: str, verb: str) -> EventNote | None:
    shown = [a for a in actions if a.kind in (Kind.SERVICE, Kind.VM)]
    if not shown:
        return None
    parts = []
    for kind in (Kind.SERVICE, Kind.VM):
        of_kind = [a.name for a in shown if a.kind is kind]
        if of_kind:
            label = kind.value if len(of_kind) == 1 else f"{len(of_kind)} {kind.value}s:"
            parts.append(f"{label} {', '.join(of_kind)}")
    reasons = sorted({a.reason for a in shown if isinstance(a, Delete)})
    return EventNote(NORMAL, reason, f"{verb} " + "; ".join(parts) + (f": {'; '.join(reasons)}" if reasons else ""))


def change_events(done: Sequence[Action]) -> list[EventNote]:
    """What one reconcile made and started taking away, told once each (its VMs and its service)."""
    notes = [
        _summary([a for a in done if isinstance(a, Create)], "Created", "created"),
        _summary([a for a in done if isinstance(a, Delete)], "Deleting", "deleting"),
    ]
    return [note for note in notes if note is not None]


def became_ready(previous: Body, status: Body) -> bool:
    """Whether this status write is the one that makes the cluster Ready."""
    before = find(previous.get("conditions"), ConditionType.READY) or {}
    after = find(status.get("conditions"), ConditionType.READY) or {}
    return after.get("status") == "True" and before.get("status") != "True"


# A cluster suspended or resumed on purpose: told by the Suspended condition's Event, and no warning.
_ON_PURPOSE = frozenset({Reason.SUSPENDED, Reason.IDLE})


def _suspension_note(before: Body, after: Body) -> EventNote | None:
    reason, message = str(after.get("reason")), str(after.get("message", ""))
    if after.get("status") == "True":
        return EventNote(NORMAL, reason, message)  # Suspended, or IdleTimeout
    if before.get("status") == "True" and reason == Reason.RESUMING:
        return EventNote(NORMAL, reason, message)
    return None


def transition_events(previous: Body, status: Body) -> list[EventNote]:
    notes: list[EventNote] = []
    watched = (ConditionType.DEPENDENCIES_READY, ConditionType.READY, ConditionType.UP_TO_DATE, ConditionType.SUSPENDED)
    for type_ in watched:
        before = find(previous.get("conditions"), type_) or {}
        after = find(status.get("conditions"), type_) or {}
        if (before.get("status"), before.get("reason")) == (after.get("status"), after.get("reason")):
            continue
        reason, message = str(after.get("reason")), str(after.get("message", ""))
        if type_ is ConditionType.SUSPENDED:
            note = _suspension_note(before, after)
            notes += [note] if note else []
        elif type_ is ConditionType.UP_TO_DATE:  # a rolling update is no news; one that stopped is
            if reason == Reason.ROLLOUT_STALLED:
                notes.append(EventNote(WARNING, reason, message))
        elif reason in _ON_PURPOSE:
            continue
        elif after.get("status") == "True":
            if type_ is ConditionType.READY:
                notes.append(EventNote(NORMAL, ConditionType.READY, message))
        elif type_ is not ConditionType.READY or before.get("status") == "True" or reason not in PROGRESS_REASONS:
            # a failure, or a cluster that was Ready and is not any more; steps of bringing it up are no news
            notes.append(EventNote(WARNING, reason, message))
    return notes
