"""What the watches keep of each object, and which watch events of a cluster lead to a reconcile."""

from __future__ import annotations

import copy
import dataclasses
import types
from typing import Any

from tests.unit.test_plan import DRAIN, _all_of, _desired
from vmray_operator.config import Settings
from vmray_operator.controller.runtime import Controller
from vmray_operator.controller.stores import LAST_APPLIED, stored
from vmray_operator.reconcile.observed import user_data_digest
from vmray_operator.reconcile.plan import Kind, Update, plan
from vmray_operator.render.objects import USER_DATA_KEY


def _watched(body: dict[str, Any]) -> dict[str, Any]:
    """A body as a watch delivers it: with the API server's managedFields and kubectl's last-applied copy."""
    watched = copy.deepcopy(body)
    watched["metadata"]["managedFields"] = [{"manager": "vmray-operator", "fieldsV1": {"f:data": {}}}]
    watched["metadata"].setdefault("annotations", {})[LAST_APPLIED] = '{"spec": "all of it"}'
    return watched


def test_the_stores_keep_neither_managed_fields_nor_the_last_applied_copy_nor_user_data_text() -> None:
    desired = _desired()
    secret = next(iter(desired.secrets.values()))
    kept = stored(_watched(secret))
    assert "managedFields" not in kept["metadata"]
    assert LAST_APPLIED not in kept["metadata"]["annotations"]
    text = secret["data"][USER_DATA_KEY]
    assert kept["data"][USER_DATA_KEY] == user_data_digest(text) != text
    assert user_data_digest(kept["data"][USER_DATA_KEY]) == user_data_digest(text)  # a digest stays itself
    assert kept["metadata"]["labels"] == secret["metadata"]["labels"]
    other = {"metadata": {"name": "ca"}, "data": {"ca.crt": "LS0t"}}
    assert stored(other) == other


def test_a_bootstrap_secret_kept_as_a_digest_is_updated_only_when_the_rendered_user_data_changes() -> None:
    desired = _desired()
    observed = _all_of(desired)
    as_kept = dataclasses.replace(observed, secrets={n: stored(s) for n, s in observed.secrets.items()})
    assert not [a for a in plan(desired, as_kept, DRAIN) if a.kind == Kind.SECRET]
    changed = _desired(head_address="10.212.0.9")  # the workers' user-data names the head's address
    updates = [a for a in plan(changed, as_kept, DRAIN) if isinstance(a, Update) and a.kind == Kind.SECRET]
    assert updates
    assert all(USER_DATA_KEY in a.patch["data"] for a in updates)


class _Queue:
    def __init__(self) -> None:
        self.added: list[tuple[str, str]] = []

    def add(self, key: tuple[str, str], after: float = 0.0) -> None:
        self.added.append(key)


class _StatusWriter:
    """Which versions of a cluster the operator's own status writes made."""

    def __init__(self) -> None:
        self.made: set[str] = set()

    def wrote(self, key: tuple[str, str], body: dict[str, Any]) -> bool:
        return str(body["metadata"].get("resourceVersion")) in self.made


def _controller() -> tuple[Controller, _Queue, _StatusWriter]:
    controller = Controller.__new__(Controller)
    controller.settings = Settings()
    controller._clusters_seen = {}
    queue, writer = _Queue(), _StatusWriter()
    controller.queue = queue  # type: ignore[assignment]
    controller.reconciler = types.SimpleNamespace(status=writer)  # type: ignore[assignment]
    return controller, queue, writer


def _cluster(generation: int = 1, version: str = "1", **meta: Any) -> dict[str, Any]:
    return {
        "metadata": {
            "name": "c",
            "uid": "u1",
            "generation": generation,
            "resourceVersion": version,
            "labels": {"a": "b"},
            **meta,
        },
        "status": {"cluster_state": "running"},
    }


def test_the_operators_own_status_write_needs_no_reconcile_and_any_other_change_does() -> None:
    controller, queue, writer = _controller()
    key = ("ns", "c")
    controller.cluster_seen(key, _cluster())
    assert queue.added == [key]
    writer.made.add("2")
    controller.cluster_seen(key, {**_cluster(version="2"), "status": {"cluster_state": "failed"}})
    assert queue.added == [key]  # the operator's own status write, back from the watch
    controller.cluster_seen(key, {**_cluster(version="3"), "status": {"cluster_state": "failed"}})
    assert queue.added == [key, key]  # a status someone else wrote is put right
    for changed in (
        _cluster(generation=2),
        _cluster(generation=2, annotations={"vmray.broadcom.com/suspended-by": "idle"}),
        _cluster(generation=2, annotations={"vmray.broadcom.com/suspended-by": "idle"}, finalizers=["f"]),
        _cluster(
            generation=2,
            annotations={"vmray.broadcom.com/suspended-by": "idle"},
            finalizers=["f"],
            deletionTimestamp="2026-01-01T00:00:00Z",
        ),
    ):
        before = len(queue.added)
        controller.cluster_seen(key, changed)
        assert len(queue.added) == before + 1, changed
    controller.cluster_seen(key, None)  # deleted
    assert queue.added[-1] == key
    assert key not in controller._clusters_seen
