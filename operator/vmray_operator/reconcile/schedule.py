"""Scheduled node tiers: whether a node type's window is open, draining or closed at a moment, and when that next
changes. Pure: the caller passes the time.

A window opens on each of its days at `start` and closes at `end` the same day, or the next day when `end` is at or
before `start` (overnight). Times are wall-clock times of the schedule's time zone: across a daylight-saving change a
window still opens and closes at the times written (a time the spring change skips comes the gap later, 02:30 at
03:30; one the autumn change repeats comes the first of the two times). Windows that overlap or touch count as one.
Its workers are drained `drain_minutes_before_end` before the close."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from vmray_operator.api.models import WEEKDAYS, NodeTypeSchedule, ScheduleWindow, VMRayClusterSpec

OPEN, DRAINING, CLOSED = "open", "draining", "closed"
Interval = tuple[datetime.datetime, datetime.datetime]


@dataclass(frozen=True)
class TierState:
    state: str  # open | draining | closed
    next_change: datetime.datetime
    next_state: str

    @property
    def runs_workers(self) -> bool:
        """Whether workers of the type may exist and be added now."""
        return self.state == OPEN


def time_zone_problem(schedule: NodeTypeSchedule) -> str | None:
    try:
        ZoneInfo(schedule.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        return f"time_zone {schedule.time_zone!r} is no IANA time zone this operator knows"
    return None


def _local(day: datetime.date, clock: str, zone: ZoneInfo) -> datetime.datetime:
    """A wall-clock time of a day in a zone, as a moment (UTC). A time the spring change skips is moved on by the
    gap (02:30 becomes 03:30); one the autumn change repeats is taken the first time (PEP 495's fold 0)."""
    hours, minutes = (int(part) for part in clock.split(":"))
    return datetime.datetime.combine(day, datetime.time(hours, minutes), tzinfo=zone).astimezone(datetime.UTC)


def _intervals(window: ScheduleWindow, zone: ZoneInfo, around: datetime.date) -> Iterable[Interval]:
    """The window's openings that start within a week before and after the day."""
    for offset in range(-8, 9):
        day = around + datetime.timedelta(days=offset)
        if WEEKDAYS[day.weekday()] not in window.days:
            continue
        start = _local(day, window.start, zone)
        end_day = day if window.end > window.start else day + datetime.timedelta(days=1)
        yield start, _local(end_day, window.end, zone)


def _merged(intervals: Iterable[Interval]) -> list[Interval]:
    merged: list[Interval] = []
    for start, end in sorted(intervals):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        else:
            merged.append((start, end))
    return merged


def tier_state(schedule: NodeTypeSchedule, now: datetime.datetime) -> TierState:
    zone = ZoneInfo(schedule.time_zone)
    today = now.astimezone(zone).date()
    openings = _merged(i for w in schedule.windows for i in _intervals(w, zone, today))
    lead = datetime.timedelta(minutes=schedule.drain_minutes_before_end)
    for start, end in openings:
        drain = max(start, end - lead)
        if start <= now < drain:
            return TierState(OPEN, drain, DRAINING if drain < end else CLOSED)
        if drain <= now < end:
            return TierState(DRAINING, end, CLOSED)
        if now < start:
            return TierState(CLOSED, start, OPEN)
    raise ValueError("a schedule with no opening within a week")  # a window's days are never empty


def schedule_problems(spec: VMRayClusterSpec) -> list[str]:
    """What is wrong with the schedules that the API server cannot see: a time zone this operator does not know."""
    problems = []
    for name, node_type in sorted(spec.common_node_config.available_node_types.items()):
        problem = time_zone_problem(node_type.schedule) if node_type.schedule else None
        if problem:
            problems.append(f"common_node_config.available_node_types.{name}.schedule: {problem}")
    return problems


def tier_states(spec: VMRayClusterSpec, now: datetime.datetime) -> dict[str, TierState]:
    """The states of the node types that have a schedule (with a time zone this operator knows)."""
    return {
        name: tier_state(node_type.schedule, now)
        for name, node_type in sorted(spec.common_node_config.available_node_types.items())
        if node_type.schedule is not None and time_zone_problem(node_type.schedule) is None
    }


def closed_types(states: dict[str, TierState]) -> frozenset[str]:
    """The node types whose workers may not run now (closed, or draining before the close)."""
    return frozenset(name for name, state in states.items() if not state.runs_workers)


def next_change(states: dict[str, TierState], now: datetime.datetime) -> float | None:
    """Seconds until the first tier changes state (when to look again), or None without tiers."""
    if not states:
        return None
    return max(0.0, min((s.next_change - now).total_seconds() for s in states.values()))


def workers_to_remove(spec: VMRayClusterSpec, closed: frozenset[str]) -> dict[str, None]:
    """The merge patch of spec.autoscaler_desired_workers that takes away the workers of closed types, as Ray's
    autoscaler takes a worker away: so the cluster's desired and current workers agree again."""
    return {name: None for name, node_type in spec.autoscaler_desired_workers.items() if node_type in closed}


def drain_budgets(spec: VMRayClusterSpec) -> dict[str, float]:
    """Seconds a worker of a scheduled type may drain before it is deleted: the schedule's lead time, so it is gone
    by the window's end (Ray drains it for that long less the stop's margins, render/ray_node.drain_seconds)."""
    return {
        name: node_type.schedule.drain_minutes_before_end * 60.0
        for name, node_type in spec.common_node_config.available_node_types.items()
        if node_type.schedule is not None and node_type.schedule.drain_minutes_before_end > 0
    }
