"""Generated bad input: specs mutated by hypothesis (values of the wrong type, numbers out of range, bad
names, required fields missing, unknown fields, huge maps, odd unicode) are created on the real API
server while the operator runs. Each one is either refused with a message that names a field of the
object, or accepted; an accepted one gets a status that says Ready or why not, and is deleted cleanly.
The operator never exits, and is still working at the end.

CI runs 2,000 specs; VMRAY_RELIABILITY_LONG=1 runs 10,000 (VMRAY_RELIABILITY_EXAMPLES sets any number)."""

from __future__ import annotations

import asyncio
import collections
import copy
import re
import time
from collections.abc import Coroutine
from typing import Any, TypeVar

import pytest
from hypothesis import HealthCheck, given, seed, settings
from hypothesis import strategies as st

from tests.conftest import FIGURES
from tests.reliability.conftest import (
    DELETED_BY_THE_OPERATOR,
    OperatorProcess,
    labelled_objects,
    seeded_random,
    settled,
    sized,
)
from tests.support.clusters import sample, wait_condition
from vmray_operator.conditions import find
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import ApiError, Conflict, Kube

pytestmark = pytest.mark.simulator

EXAMPLES = sized("EXAMPLES", 2000, 10000)
T = TypeVar("T")
Path = tuple[str, ...]
WORKER_TYPE = ("spec", "common_node_config", "available_node_types", "ray.worker.default")
HEAD_TYPE = ("spec", "common_node_config", "available_node_types", "ray.head.default")

# Fields a spec has or may have (optional ones the sample leaves out included).
FIELDS: list[Path] = [
    ("metadata", "name"),
    ("metadata", "labels"),
    ("spec",),
    ("spec", "api_server"),
    ("spec", "api_server", "location"),
    ("spec", "api_server", "ca_cert"),
    ("spec", "ray_docker_image"),
    ("spec", "head_node"),
    ("spec", "head_node", "port"),
    ("spec", "head_node", "node_type"),
    ("spec", "head_node", "setup_commands"),
    ("spec", "worker_node", "setup_commands"),
    ("spec", "common_node_config"),
    ("spec", "common_node_config", "max_workers"),
    ("spec", "common_node_config", "vm_image"),
    ("spec", "common_node_config", "storage_class"),
    ("spec", "common_node_config", "vm_user"),
    ("spec", "common_node_config", "vm_password_salt_hash"),
    ("spec", "common_node_config", "vm_password_secret"),
    ("spec", "common_node_config", "shared_storage"),
    ("spec", "common_node_config", "network"),
    ("spec", "common_node_config", "idle_timeout_minutes"),
    ("spec", "common_node_config", "setup_commands"),
    ("spec", "common_node_config", "initialization_commands"),
    ("spec", "common_node_config", "available_node_types"),
    WORKER_TYPE,
    (*WORKER_TYPE, "vm_class"),
    (*WORKER_TYPE, "min_workers"),
    (*WORKER_TYPE, "max_workers"),
    (*WORKER_TYPE, "resources"),
    (*WORKER_TYPE, "ray_labels"),
    (*HEAD_TYPE, "vm_class"),
    ("spec", "autoscaler_desired_workers"),
    ("spec", "autoscaling", "enabled"),
    ("spec", "autoscaling", "upscaling_speed"),
    ("spec", "enable_tls"),
    ("spec", "docker_config", "auth_secret_name"),
]
REQUIRED: list[Path] = [
    ("spec", "ray_docker_image"),
    ("spec", "head_node"),
    ("spec", "head_node", "node_type"),
    ("spec", "common_node_config"),
    ("spec", "common_node_config", "vm_image"),
    ("spec", "common_node_config", "storage_class"),
    ("spec", "common_node_config", "available_node_types"),
    (*WORKER_TYPE, "vm_class"),
    (*HEAD_TYPE, "vm_class"),
]
OBJECTS: list[Path] = [p for p in FIELDS if len(p) <= 2 or p == WORKER_TYPE] + [("spec", "head_node")]

odd_text = st.text(st.characters(codec="utf-8"), max_size=80) | st.sampled_from(
    [
        "",
        " ",
        "-",
        "a" * 64,
        "a" * 254,
        "Ray.Head",
        "ray_worker",
        "\u202eevil",
        "ray\u0000x",
        "\u211day",
        "😀",
        "..",
        "-x-",
    ]
)
numbers = (
    st.integers(-(2**70), 2**70)
    | st.sampled_from([0, -1, 1, 1023, 1024, 65535, 65536, 1000, 1001, 10080, 10081, 2**31, 2**63 - 1])
    | st.floats(allow_nan=False, allow_infinity=False)
)
small_values = st.none() | st.booleans() | numbers | odd_text
values = st.recursive(
    small_values,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(odd_text, inner, max_size=4),
    max_leaves=8,
)


@st.composite
def huge_map(draw: st.DrawFn) -> dict[str, Any]:
    """A map of 500 to 1,500 entries (the CRD allows 1,000 desired workers at most)."""
    size = draw(st.integers(500, 1500))
    value = draw(st.sampled_from(["ray.worker.default", "ray.head.default", "unknown.type", 1]))
    return {f"hyp-w-{i:08d}": value for i in range(size)}


def _container(body: dict[str, Any], path: Path) -> dict[str, Any] | None:
    node: Any = body
    for part in path[:-1]:
        if not isinstance(node, dict):
            return None
        node = node.setdefault(part, {})
    return node if isinstance(node, dict) else None


@st.composite
def mutation(draw: st.DrawFn) -> tuple[str, Path, Any]:
    kind = draw(st.sampled_from(["set", "set", "set", "drop", "unknown", "desired", "types", "name"]))
    if kind == "set":
        return kind, draw(st.sampled_from(FIELDS)), draw(values)
    if kind == "drop":
        return kind, draw(st.sampled_from(REQUIRED)), None
    if kind == "unknown":
        return kind, (*draw(st.sampled_from(OBJECTS)), draw(odd_text.filter(bool))), draw(values)
    if kind == "desired":
        entries = st.dictionaries(
            odd_text | st.from_regex(r"\Ahyp-[a-z0-9]{1,4}-w-[a-z0-9]{8}\Z"),
            st.sampled_from(["ray.worker.default", "ray.head.default", "nope"]) | small_values,
            max_size=8,
        )
        return kind, ("spec", "autoscaler_desired_workers"), draw(entries | huge_map())
    if kind == "types":
        types = st.dictionaries(odd_text, st.fixed_dictionaries({"vm_class": odd_text}) | values, max_size=4)
        return kind, ("spec", "common_node_config", "available_node_types", draw(odd_text)), draw(types | values)
    return kind, ("metadata", "name"), draw(odd_text | st.from_regex(r"\A[a-z][-a-z0-9]{0,45}\Z"))


def mutate(body: dict[str, Any], change: tuple[str, Path, Any]) -> None:
    kind, path, value = change
    parent = _container(body, path)
    if parent is None:
        return
    if kind == "drop":
        parent.pop(path[-1], None)
    else:
        parent[path[-1]] = copy.deepcopy(value)


SCHEMA_FIELDS = {part for path in FIELDS for part in path} - {"ray.worker.default", "ray.head.default"}
AFTER_A_FIELD = re.compile(r'$|[:", \]]|\.[a-z_]+: Required value')  # what follows a field's path in a message


def _paths(document: Any, prefix: tuple[str | int, ...] = ()) -> list[tuple[str | int, ...]]:
    """The path of every node of a document: map keys as strings, list indexes as ints."""
    children: list[tuple[str | int, Any]] = []
    if isinstance(document, dict):
        children = [(str(k), v) for k, v in document.items()]
    elif isinstance(document, list):
        children = list(enumerate(document))
    result = [prefix] if prefix else []
    for key, value in children:
        result += _paths(value, (*prefix, key))
    return result


def _renderings(path: tuple[str | int, ...]) -> set[str]:
    """How the API server may write a path: spec.a.b, spec.l[0].b, spec.m[key].b."""

    def render(part: str | int, keys_in_brackets: bool) -> str:
        if isinstance(part, int):
            return f"[{part}]"
        return f"[{part}]" if keys_in_brackets and part not in SCHEMA_FIELDS else f".{part}"

    head, rest = str(path[0]), path[1:]
    return {
        ".".join(map(str, path)),
        head + "".join(render(p, False) for p in rest),
        head + "".join(render(p, True) for p in rest),
    }


def names_a_field(message: str, *documents: dict[str, Any]) -> bool:
    """Whether the message names, as a whole path, a field the object has (or could have, if it misses a
    required one) under spec or metadata."""
    for match in re.finditer(r"Go struct field ObjectMeta\.(\w+)", message):
        # metadata is decoded into Go structs first, and its errors name Go's field (ObjectMeta.labels)
        if any(match.group(1) in (document.get("metadata") or {}) for document in documents):
            return True
    candidates = {
        text
        for document in documents
        for path in _paths(document)
        if len(path) >= 2 and path[0] in ("spec", "metadata")
        for text in _renderings(path)
    }
    if re.search(r"(^|[\[ ])(spec|metadata): ", message):  # the whole spec: missing, or not an object
        return True
    for text in candidates:
        for found in re.finditer(re.escape(text), message):
            if AFTER_A_FIELD.match(message, found.end()):
                return True
    return False


@pytest.mark.timeout(max(300, EXAMPLES // 4 + 200))
async def test_generated_specs_are_refused_naming_a_field_or_reconciled(
    kube: Kube, namespace: str, operator_process: OperatorProcess
) -> None:
    run_seed = seeded_random("bad input").getrandbits(64)
    await operator_process.start_and_wait()
    loop = asyncio.get_running_loop()
    counts: collections.Counter[str] = collections.Counter()
    reasons: collections.Counter[str] = collections.Counter()
    accepted: list[str] = []
    pristine = sample(namespace)

    def call(coro: Coroutine[Any, Any, T], timeout: float = 60.0) -> T:
        return asyncio.run_coroutine_threadsafe(coro, loop).result(timeout)

    @seed(run_seed)
    @settings(
        max_examples=EXAMPLES,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
        print_blob=True,
    )
    @given(st.lists(mutation(), min_size=1, max_size=3))
    def check(changes: list[tuple[str, Path, Any]]) -> None:
        counts["examples"] += 1
        body = sample(namespace, f"hyp-{counts['examples']}")
        for change in changes:
            mutate(body, change)
        body["metadata"]["namespace"] = namespace
        outcome = call(attempt(kube, body, namespace))
        assert operator_process.alive, f"the operator exited; see {operator_process.log_path}"
        if isinstance(outcome, Conflict):
            assert outcome.already_exists, f"409 on create: {outcome}"
            counts["name taken"] += 1  # a generated valid name that an earlier example used
            return
        if isinstance(outcome, ApiError):
            assert outcome.status in (400, 422), f"refused with {outcome.status}: {outcome.message}"
            assert names_a_field(outcome.message, body, pristine), f"the message names no field: {outcome.message}"
            counts["refused"] += 1
            return
        created = outcome
        name = created["metadata"]["name"]
        counts["accepted"] += 1
        accepted.append(name)
        condition = call(ready_or_flagged(kube, namespace, name), timeout=90)
        reason = f"Ready={condition['status']} {condition['reason']}"
        if not reasons[reason]:  # the first accepted spec of each outcome, for the record
            print(f"accepted, then {reason}: {changes!r:.400} -> {condition.get('message', '')!r:.400}")
        reasons[reason] += 1
        call(kube.delete(r.VMRAYCLUSTERS, name, namespace))

    started = time.monotonic()
    await asyncio.to_thread(check)
    elapsed = time.monotonic() - started

    # Every accepted cluster goes away for good, and the operator still does its work.
    async def remaining() -> list[str]:
        return sorted(c["metadata"]["name"] for c in await kube.list(r.VMRAYCLUSTERS, namespace))

    left = await settled(remaining, timeout=120)
    assert not left, f"accepted clusters not deleted: {left}"
    assert await labelled_objects(kube, namespace, DELETED_BY_THE_OPERATOR) == []
    await kube.create(r.VMRAYCLUSTERS, sample(namespace, "after-bad-input"), namespace)
    await wait_condition(kube, namespace, "after-bad-input", "Ready")
    assert operator_process.alive
    tracebacks = operator_process.tracebacks()
    assert not tracebacks, f"the operator logged {len(tracebacks)} tracebacks; the first:\n{tracebacks[0]}"
    assert counts["examples"] >= EXAMPLES
    FIGURES.append(
        f"bad input: {counts['examples']} generated specs in {elapsed:.0f} s: {counts['refused']} refused naming a "
        f"field, {counts['accepted']} accepted ({dict(reasons.most_common(6))}), {counts['name taken']} name taken"
    )


async def attempt(kube: Kube, body: dict[str, Any], namespace: str) -> dict[str, Any] | ApiError:
    """The created object, or the API server's refusal."""
    try:
        return await kube.create(r.VMRAYCLUSTERS, body, namespace)
    except ApiError as error:
        return error


async def ready_or_flagged(kube: Kube, namespace: str, name: str, timeout: float = 60.0) -> dict[str, Any]:
    """The cluster's Ready condition once it is True, or False with a reason."""
    deadline = time.monotonic() + timeout
    while True:
        cluster = await kube.get(r.VMRAYCLUSTERS, name, namespace)
        condition = find(((cluster or {}).get("status") or {}).get("conditions"), "Ready")
        if condition and (condition["status"] == "True" or condition.get("reason")):
            return condition
        assert time.monotonic() < deadline, f"{name}: no Ready condition after {timeout:.0f} s: {cluster}"
        await asyncio.sleep(0.1)
