from __future__ import annotations

from vmray_operator.conditions import find, is_true, set_condition

T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:01:00Z"


def test_adds_a_condition_with_transition_time() -> None:
    conditions = set_condition([], "Ready", False, "Provisioning", "creating VMs", T0)
    assert conditions == [
        {
            "type": "Ready",
            "status": "False",
            "reason": "Provisioning",
            "message": "creating VMs",
            "lastTransitionTime": T0,
        }
    ]


def test_transition_time_moves_only_when_status_changes() -> None:
    first = set_condition([], "Ready", False, "Provisioning", "a", T0)
    same_status = set_condition(first, "Ready", False, "PoweringOn", "b", T1)
    assert find(same_status, "Ready") == {
        "type": "Ready",
        "status": "False",
        "reason": "PoweringOn",
        "message": "b",
        "lastTransitionTime": T0,
    }
    flipped = set_condition(same_status, "Ready", True, "Ready", "", T1)
    ready = find(flipped, "Ready")
    assert ready is not None
    assert ready["lastTransitionTime"] == T1
    assert is_true(flipped, "Ready")


def test_keeps_other_conditions_sorted_and_does_not_mutate_input() -> None:
    original = set_condition([], "WorkersReady", True, "Ready", "", T0)
    snapshot = [dict(c) for c in original]
    updated = set_condition(original, "HeadReady", True, "Ready", "", T0, observed_generation=3)
    assert [c["type"] for c in updated] == ["HeadReady", "WorkersReady"]
    assert find(updated, "HeadReady") is not None
    assert find(updated, "HeadReady")["observedGeneration"] == 3  # type: ignore[index]
    assert original == snapshot


def test_find_and_is_true_on_missing() -> None:
    assert find(None, "Ready") is None
    assert not is_true([], "Ready")
