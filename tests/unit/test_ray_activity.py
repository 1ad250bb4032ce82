"""What Ray is doing, read from a Ray 2.60 dashboard's recorded answers: idle only with no job, task or actor."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vmray_operator.ray.view import RayActivity, activity_from_answers

ANSWERS = Path(__file__).parent / "ray_answers"


def _answers(moment: str) -> tuple[bytes, bytes, bytes]:
    return tuple((ANSWERS / f"{moment}-{what}.json").read_bytes() for what in ("jobs", "tasks", "actors"))  # type: ignore[return-value]


def test_a_fresh_head_is_idle() -> None:
    activity = activity_from_answers(*_answers("fresh"))
    assert activity == RayActivity()
    assert isinstance(activity, RayActivity)
    assert activity.idle


def test_a_running_driver_its_task_and_a_detached_actor_are_activity() -> None:
    activity = activity_from_answers(*_answers("busy"))
    assert isinstance(activity, RayActivity)
    assert activity.active_jobs == ("01000000",)  # a driver has no submission id: its job id names it
    assert (activity.busy_tasks, activity.live_actors) == (1, 1)
    assert not activity.idle


def test_a_detached_actor_outlives_its_driver_and_keeps_the_cluster_busy() -> None:
    activity = activity_from_answers(*_answers("after"))
    assert isinstance(activity, RayActivity)
    assert (activity.active_jobs, activity.busy_tasks, activity.live_actors) == ((), 0, 1)
    assert not activity.idle


def test_a_submitted_job_is_named_by_its_submission_id_and_pending_counts() -> None:
    jobs = [
        {"type": "SUBMISSION", "job_id": "02000000", "submission_id": "raysubmit_abc", "status": "PENDING"},
        {"type": "SUBMISSION", "job_id": None, "submission_id": "raysubmit_old", "status": "STOPPED"},
    ]
    _, tasks, actors = _answers("fresh")
    activity = activity_from_answers(json.dumps(jobs).encode(), tasks, actors)
    assert isinstance(activity, RayActivity)
    assert activity.active_jobs == ("raysubmit_abc",)


@pytest.mark.parametrize(
    ("jobs", "tasks", "said"),
    [
        (b"{}", None, "the answer is an object, not a list"),
        (b'[{"status": 3}]', None, "job 0 status is a number, not a string"),
        (b"[]", b'{"data": {"result": []}}', "data.result is a list, not an object"),
        (b"[]", b"not json", "not JSON"),
    ],
)
def test_an_unreadable_answer_says_where_and_is_no_activity(jobs: bytes, tasks: bytes | None, said: str) -> None:
    _, fresh_tasks, actors = _answers("fresh")
    found = activity_from_answers(jobs, tasks or fresh_tasks, actors)
    assert isinstance(found, str)
    assert said in found
    assert found.startswith("unexpected answer about Ray's activity")
