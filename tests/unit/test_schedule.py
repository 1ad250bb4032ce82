"""Scheduled node tiers: window arithmetic across midnight, days of the week, time zones and daylight saving."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

import pytest

from tests.support.specs import context, sample_spec
from vmray_operator.api import contract
from vmray_operator.api.models import NodeTypeSchedule
from vmray_operator.reconcile.adoption import missing_floor, own_spec_patch
from vmray_operator.reconcile.plan import Drain
from vmray_operator.reconcile.schedule import (
    CLOSED,
    DRAINING,
    OPEN,
    closed_types,
    drain_budgets,
    next_change,
    schedule_problems,
    tier_state,
    tier_states,
    time_zone_problem,
    workers_to_remove,
)
from vmray_operator.render.autoscaler import autoscaler_config
from vmray_operator.render.desired import desired_state
from vmray_operator.render.ray_node import RAY_DRAIN_SECONDS, drain_seconds, node_runtime

UTC = datetime.UTC


def _schedule(*windows: dict[str, Any], zone: str = "UTC", drain: int = 15) -> NodeTypeSchedule:
    return NodeTypeSchedule.model_validate(
        {"windows": list(windows), "time_zone": zone, "drain_minutes_before_end": drain}
    )


def at(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text)


NIGHTS = _schedule({"start": "18:00", "end": "06:00"}, drain=15)  # seed 003's heavy tier


@pytest.mark.parametrize(
    ("now", "state", "next_change", "next_state"),
    [
        ("2026-05-04T12:00:00+00:00", CLOSED, "2026-05-04T18:00:00+00:00", OPEN),
        ("2026-05-04T18:00:00+00:00", OPEN, "2026-05-05T05:45:00+00:00", DRAINING),
        ("2026-05-04T23:59:00+00:00", OPEN, "2026-05-05T05:45:00+00:00", DRAINING),
        ("2026-05-05T00:01:00+00:00", OPEN, "2026-05-05T05:45:00+00:00", DRAINING),  # past midnight
        ("2026-05-05T05:45:00+00:00", DRAINING, "2026-05-05T06:00:00+00:00", CLOSED),
        ("2026-05-05T06:00:00+00:00", CLOSED, "2026-05-05T18:00:00+00:00", OPEN),
    ],
)
def test_an_overnight_window_opens_drains_and_closes(now: str, state: str, next_change: str, next_state: str) -> None:
    found = tier_state(NIGHTS, at(now))
    assert (found.state, found.next_change, found.next_state) == (state, at(next_change), next_state)


def test_days_of_the_week_count_from_the_day_a_window_opens() -> None:
    weekdays = _schedule({"days": ["mon", "tue", "wed", "thu", "fri"], "start": "18:00", "end": "06:00"})
    friday_night = tier_state(weekdays, at("2026-05-09T02:00:00+00:00"))  # Saturday 02:00, opened on Friday
    assert friday_night.state == OPEN
    saturday = tier_state(weekdays, at("2026-05-09T19:00:00+00:00"))
    assert (saturday.state, saturday.next_change) == (CLOSED, at("2026-05-11T18:00:00+00:00"))  # Monday


def test_windows_that_touch_are_one_and_equal_times_are_a_whole_day() -> None:
    day_and_night = _schedule({"start": "06:00", "end": "18:00"}, {"start": "18:00", "end": "06:00"}, drain=0)
    state = tier_state(day_and_night, at("2026-05-04T17:59:00+00:00"))
    assert state.state == OPEN
    assert state.next_change > at("2026-05-10T00:00:00+00:00")  # never closes within the week looked at
    whole_day = _schedule({"days": ["sun"], "start": "00:00", "end": "00:00"}, drain=0)
    assert tier_state(whole_day, at("2026-05-10T23:30:00+00:00")).state == OPEN  # a Sunday
    assert tier_state(whole_day, at("2026-05-11T00:30:00+00:00")).state == CLOSED


def test_a_time_zone_shifts_the_window() -> None:
    tokyo = _schedule({"start": "09:00", "end": "17:00"}, zone="Asia/Tokyo", drain=0)
    state = tier_state(tokyo, at("2026-05-04T01:00:00+00:00"))  # 10:00 in Tokyo
    assert (state.state, state.next_change) == (OPEN, at("2026-05-04T08:00:00+00:00"))


def test_daylight_saving_keeps_the_wall_clock_times() -> None:
    berlin = _schedule({"start": "18:00", "end": "06:00"}, zone="Europe/Berlin", drain=0)
    # the night of the spring change (29 March 2026): opens 17:00 UTC (CET), closes 04:00 UTC (CEST)
    state = tier_state(berlin, at("2026-03-28T20:00:00+00:00"))
    assert (state.state, state.next_change) == (OPEN, at("2026-03-29T04:00:00+00:00"))
    # and of the autumn change (25 October 2026): opens 16:00 UTC (CEST), closes 05:00 UTC (CET): 13 hours
    state = tier_state(berlin, at("2026-10-24T16:30:00+00:00"))
    assert (state.state, state.next_change) == (OPEN, at("2026-10-25T05:00:00+00:00"))


def test_a_time_the_spring_change_skips_comes_the_gap_later_and_a_repeated_one_first() -> None:
    skipped = _schedule({"start": "02:30", "end": "04:00"}, zone="Europe/Berlin", drain=0)
    # 02:30 does not exist on 29 March 2026 in Berlin: it opens at 03:30 CEST (01:30 UTC)
    state = tier_state(skipped, at("2026-03-29T00:00:00+00:00"))
    assert (state.state, state.next_change) == (CLOSED, at("2026-03-29T01:30:00+00:00"))
    repeated = _schedule({"start": "02:30", "end": "05:00"}, zone="Europe/Berlin", drain=0)
    # 02:30 comes twice on 25 October 2026: the first, CEST, is 00:30 UTC
    state = tier_state(repeated, at("2026-10-25T00:00:00+00:00"))
    assert (state.state, state.next_change) == (CLOSED, at("2026-10-25T00:30:00+00:00"))


def test_a_drain_lead_longer_than_the_window_drains_from_the_start() -> None:
    short = _schedule({"start": "10:00", "end": "10:10"}, drain=30)
    state = tier_state(short, at("2026-05-04T10:05:00+00:00"))
    assert (state.state, state.next_change) == (DRAINING, at("2026-05-04T10:10:00+00:00"))


def test_an_unknown_time_zone_is_told() -> None:
    assert time_zone_problem(_schedule({"start": "10:00", "end": "11:00"}, zone="Mars/Olympus")) is not None
    assert time_zone_problem(NIGHTS) is None


def test_the_closed_tiers_workers_leave_the_desired_map_and_the_next_change_is_when_to_look_again() -> None:
    common = sample_spec().common_node_config.model_dump(exclude_none=True)
    common["available_node_types"]["heavy"] = {
        "vm_class": "best-effort-large",
        "max_workers": 2,
        "schedule": NIGHTS.model_dump(),
    }
    spec = sample_spec(
        common_node_config=common,
        autoscaler_desired_workers={"test-ray-w-heavy001": "heavy", "test-ray-w-always01": "ray.worker.default"},
    )
    noon = at("2026-05-04T12:00:00+00:00")
    states = tier_states(spec, noon)
    assert set(states) == {"heavy"}
    assert closed_types(states) == {"heavy"}
    assert workers_to_remove(spec, closed_types(states)) == {"test-ray-w-heavy001": None}
    assert next_change(states, noon) == 6 * 3600
    evening = at("2026-05-04T19:00:00+00:00")
    assert closed_types(tier_states(spec, evening)) == frozenset()


def _tiered(drain: int = 15, zone: str = "UTC") -> Any:
    common = sample_spec().common_node_config.model_dump(exclude_none=True)
    common["available_node_types"]["heavy"] = {
        "vm_class": "best-effort-large",
        "max_workers": 2,
        "resources": {"heavy_compute": 1},
        "ray_labels": {"tier": "heavy-compute"},
        "schedule": _schedule({"start": "18:00", "end": "06:00"}, zone=zone, drain=drain).model_dump(),
    }
    return sample_spec(
        common_node_config=common,
        autoscaler_desired_workers={"test-ray-w-heavy001": "heavy", "test-ray-w-always01": "ray.worker.default"},
    )


def test_a_tiers_workers_drain_for_the_lead_time_and_are_deleted_by_the_windows_end() -> None:
    spec = _tiered(drain=15)
    heavy = spec.common_node_config.available_node_types["heavy"]
    always = spec.common_node_config.available_node_types["ray.worker.default"]
    assert drain_seconds(always) == RAY_DRAIN_SECONDS
    assert drain_seconds(heavy) == 15 * 60 - 60  # the unit's stop (Ray's drain and a minute) fits the lead
    assert drain_budgets(spec) == {"heavy": 900.0}
    assert drain_budgets(_tiered(drain=0)) == {}
    assert drain_seconds(_tiered(drain=1).common_node_config.available_node_types["heavy"]) == RAY_DRAIN_SECONDS
    worker = {"metadata": {"name": "w", "labels": {contract.LABEL_NODE_TYPE: "heavy"}}}
    drain = Drain(at("2026-05-04T05:45:00+00:00"), 120.0, drain_budgets(spec))
    assert drain.timeout_of(worker) == 900.0
    assert (
        drain.timeout_of({"metadata": {"name": "x", "labels": {contract.LABEL_NODE_TYPE: "ray.worker.default"}}}) == 120
    )


def test_a_tiers_ray_and_its_unit_are_told_the_drain_and_the_always_on_tier_is_not() -> None:
    ctx = context(_tiered(drain=15))
    heavy, always = node_runtime(ctx, "worker", "heavy"), node_runtime(ctx, "worker", "ray.worker.default")
    assert heavy.env["RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S"] == "840"
    assert (heavy.container_stop_seconds, heavy.unit_stop_seconds) == (870, 900)
    assert "RAY_GRACEFUL_SHUTDOWN_DRAIN_TIMEOUT_S" not in always.env
    assert (always.container_stop_seconds, always.unit_stop_seconds) == (60, 90)
    # seed 003's tier tags still reach Ray
    assert {'--resources={"heavy_compute":1.0}', "--labels=tier=heavy-compute"} <= set(heavy.ray_start)


def test_an_unknown_time_zone_is_a_problem_naming_the_field_and_the_type_is_not_scheduled() -> None:
    spec = _tiered(zone="Mars/Olympus_Mons")
    (problem,) = schedule_problems(spec)
    assert problem.startswith("common_node_config.available_node_types.heavy.schedule: time_zone 'Mars/Olympus_Mons'")
    assert tier_states(spec, at("2026-05-04T12:00:00+00:00")) == {}
    assert schedule_problems(_tiered()) == []


def test_the_operator_takes_a_closed_tiers_workers_out_of_the_spec_with_a_conditional_patch() -> None:
    body = {"metadata": {"name": "test-ray", "resourceVersion": "7", "annotations": {}}}
    patch = own_spec_patch(body, _tiered(), frozenset({"heavy"}))
    assert patch == {
        "spec": {"autoscaler_desired_workers": {"test-ray-w-heavy001": None}},
        "metadata": {"resourceVersion": "7"},
    }
    assert own_spec_patch(body, _tiered(), frozenset()) is None


def test_a_closed_tier_gives_ray_no_room_and_adds_no_floor() -> None:
    spec = _tiered()
    closed = closed_types(tier_states(spec, at("2026-05-04T12:00:00+00:00")))
    ctx = dataclasses.replace(context(spec), closed_types=closed)
    config = autoscaler_config(ctx)
    assert (
        config["available_node_types"]["heavy"]["min_workers"],
        config["available_node_types"]["heavy"]["max_workers"],
    ) == (0, 0)
    assert config["available_node_types"]["ray.worker.default"]["max_workers"] > 0
    floor = {**spec.common_node_config.model_dump(exclude_none=True)}
    floor["available_node_types"]["heavy"]["min_workers"] = 1
    with_floor = sample_spec(common_node_config=floor, autoscaler_desired_workers={})
    assert (
        "heavy"
        not in missing_floor(
            with_floor, "test-ray", iter(["abcdefgh", "ijklmnop", "qrstuvwx"]).__next__, closed
        ).values()
    )
    assert (
        "heavy" in missing_floor(with_floor, "test-ray", iter(["abcdefgh", "ijklmnop", "qrstuvwx"]).__next__).values()
    )
    desired = desired_state(ctx)
    assert set(desired.workers) == {"test-ray-w-always01"}
    assert "schedule of node type heavy" in desired.withheld["test-ray-w-heavy001"]
