"""What Ray says about a cluster, and how the dashboard's answers become it. Pure: no network here.

The dashboard runs on the head, where every job runs too, so its answers are input from anywhere: any
bytes become a RayView, and one that cannot be read says why instead of raising."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

VERSION_PATH = "/api/version"
NODES_PATH = "/api/v0/nodes"
JOBS_PATH = "/api/jobs/"
TASKS_PATH = "/api/v0/tasks/summarize"
ACTORS_PATH = "/api/v0/actors/summarize"
ACTIVE_JOB_STATES = frozenset({"PENDING", "RUNNING"})
DONE_TASK_STATES = frozenset({"FINISHED", "FAILED"})
LIVE_ACTOR_STATES = frozenset({"ALIVE", "PENDING_CREATION", "RESTARTING", "DEPENDENCIES_UNREADY"})
ERROR_LENGTH = 300  # errors end up in a condition's message
MAX_STRING = 253  # a version, node id, address or state; these reach the cluster's status


@dataclass(frozen=True)
class RayNodeInfo:
    node_id: str
    ip: str
    alive: bool
    is_head: bool
    resources: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class RayActivity:
    """What Ray is doing: its jobs running or pending (by id), tasks not yet finished, actors alive."""

    active_jobs: tuple[str, ...] = ()
    busy_tasks: int = 0
    live_actors: int = 0

    @property
    def idle(self) -> bool:
        return not self.active_jobs and self.busy_tasks == 0 and self.live_actors == 0


@dataclass(frozen=True)
class RayView:
    """What Ray itself says: reachable or not, its nodes, and (when asked) what it is doing."""

    reachable: bool
    healthy: bool = False
    version: str | None = None
    nodes: tuple[RayNodeInfo, ...] = ()
    error: str | None = None
    activity: RayActivity | None = None

    def summary(self) -> dict[str, Any]:
        alive = [n for n in self.nodes if n.alive]
        total: dict[str, float] = {}
        for node in alive:
            for key, value in node.resources.items():
                total[key] = total.get(key, 0.0) + value
        return {
            "version": self.version,
            "alive_nodes": len(alive),
            "cpus": total.get("CPU", 0.0),
            "gpus": total.get("GPU", 0.0),
            "memory_bytes": int(total.get("memory", 0.0)),
        }


def unreachable(error: str) -> RayView:
    return RayView(reachable=False, error=error[:ERROR_LENGTH])


def unhealthy(error: str) -> RayView:
    """The dashboard answered, but not with a healthy cluster."""
    return RayView(reachable=True, healthy=False, error=error[:ERROR_LENGTH])


class _Malformed(ValueError):
    """An answer that is not what the dashboard sends; the message says where it differs."""


def _reject_constant(name: str) -> float:
    raise _Malformed(f"{name} is not a JSON number")


def _json(body: bytes) -> object:
    try:
        # NaN and Infinity are not JSON, and would make the cluster's status unwritable
        return json.loads(body, parse_constant=_reject_constant)
    except _Malformed:
        raise
    except (ValueError, RecursionError) as error:  # UnicodeDecodeError and JSONDecodeError are ValueErrors
        raise _Malformed(f"not JSON ({type(error).__name__})") from None


def _kind(value: object) -> str:
    if value is None:
        return "null"
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list"}.get(
        type(value), "an object"
    )


def _object(value: object, where: str) -> dict[str, object]:
    if not isinstance(value, dict):
        raise _Malformed(f"{where} is {_kind(value)}, not an object")
    return value


def _string(value: object, where: str) -> str:
    if not isinstance(value, str):
        raise _Malformed(f"{where} is {_kind(value)}, not a string")
    if len(value) > MAX_STRING:
        raise _Malformed(f"{where} is longer than {MAX_STRING} characters")
    return value


def _boolean(value: object, where: str) -> bool:
    if not isinstance(value, bool):
        raise _Malformed(f"{where} is {_kind(value)}, not a boolean")
    return value


def _amount(value: object, where: str) -> float:
    # bool is an int in Python, but true is no amount of anything
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise _Malformed(f"{where} is {_kind(value)}, not a number")
    try:
        amount = float(value)
    except OverflowError:
        raise _Malformed(f"{where} is too large a number") from None
    if not math.isfinite(amount) or amount < 0:
        raise _Malformed(f"{where} is not a finite amount of at least 0")
    return amount


def _version(body: bytes) -> str:
    answer = _object(_json(body), "the answer")
    return _string(answer.get("ray_version"), "ray_version")


def _nodes(body: bytes) -> tuple[RayNodeInfo, ...]:
    answer = _object(_json(body), "the answer")
    if answer.get("result") is False:  # how the state API reports its own failures
        message = answer.get("msg")
        raise _Malformed(f"the dashboard reports an error: {message if isinstance(message, str) else '(none)'}")
    data = _object(answer.get("data"), "data")
    listing = _object(data.get("result"), "data.result")
    rows = listing.get("result")
    if not isinstance(rows, list):
        raise _Malformed(f"data.result.result is {_kind(rows)}, not a list")
    return tuple(_node(row, f"node {index}") for index, row in enumerate(rows))


def _node(row: object, where: str) -> RayNodeInfo:
    raw = _object(row, where)
    resources = _object(raw.get("resources_total", {}), f"{where} resources_total")
    return RayNodeInfo(
        node_id=_string(raw.get("node_id"), f"{where} node_id"),
        ip=_string(raw.get("node_ip"), f"{where} node_ip"),
        alive=_string(raw.get("state"), f"{where} state") == "ALIVE",
        is_head=_boolean(raw.get("is_head_node"), f"{where} is_head_node"),
        resources={name: _amount(value, f"{where} resources_total value") for name, value in resources.items()},
    )


def view_from_answers(version_body: bytes, nodes_body: bytes) -> RayView:
    """The view of a cluster whose GCS said it is healthy, from the bodies of the dashboard's version and
    nodes answers."""
    try:
        version = _version(version_body)
    except _Malformed as error:
        return unhealthy(f"unexpected answer from {VERSION_PATH}: {error}")
    try:
        nodes = _nodes(nodes_body)
    except _Malformed as error:
        return unhealthy(f"unexpected answer from {NODES_PATH}: {error}")
    return RayView(reachable=True, healthy=True, version=version, nodes=nodes)


def refused(path: str, status: int, body: bytes) -> RayView:
    """An answer with an HTTP error status; the dashboard's own message when it sent one."""
    message = ""
    try:
        answer = _json(body)
    except _Malformed:
        answer = None
    if isinstance(answer, dict) and isinstance(answer.get("msg"), str) and answer["msg"]:
        message = f": {answer['msg']}"
    return unhealthy(f"{path} answered HTTP {status}{message}")


def _jobs(body: bytes) -> tuple[str, ...]:
    rows = _json(body)
    if not isinstance(rows, list):
        raise _Malformed(f"the answer is {_kind(rows)}, not a list")
    active = []
    for index, row in enumerate(rows):
        job = _object(row, f"job {index}")
        if _string(job.get("status"), f"job {index} status") in ACTIVE_JOB_STATES:
            name = job.get("submission_id") or job.get("job_id")
            active.append(_string(name, f"job {index} submission_id"))
    return tuple(active)


def _summarized(body: bytes, counted: str) -> int:
    """How many tasks (or actors) of a state API summary are in states that count: `counted` says which (busy
    tasks, live actors)."""
    answer = _object(_json(body), "the answer")
    data = _object(_object(answer.get("data"), "data").get("result"), "data.result")
    per_node = _object(_object(data.get("result"), "data.result.result").get("node_id_to_summary"), "summary")
    total = 0
    for node, summary in per_node.items():
        for name, entry in _object(_object(summary, node).get("summary", {}), f"{node} summary").items():
            counts = _object(_object(entry, name).get("state_counts", {}), f"{name} state_counts")
            for state, count in counts.items():
                busy = state not in DONE_TASK_STATES if counted == "tasks" else state in LIVE_ACTOR_STATES
                total += int(_amount(count, f"{name} {state}")) if busy else 0
    return total


def activity_from_answers(jobs_body: bytes, tasks_body: bytes, actors_body: bytes) -> RayActivity | str:
    """What Ray is doing, from the jobs, task summary and actor summary answers; why not, when one is unreadable."""
    try:
        return RayActivity(_jobs(jobs_body), _summarized(tasks_body, "tasks"), _summarized(actors_body, "actors"))
    except _Malformed as error:
        return f"unexpected answer about Ray's activity: {error}"[:ERROR_LENGTH]
