"""A node whose guest reported a failed bootstrap (VM Operator's GuestBootstrap condition, from what the node
script sets in guestinfo) is a failure in the cluster's status, with the guest's reason and message."""

from __future__ import annotations

from typing import Any

from tests.unit.test_status import HEAD, SERVICE, W1, W2, run, vm
from vmray_operator.conditions import find
from vmray_operator.reconcile.nodes import node_view
from vmray_operator.reconcile.observed import Observed

FAILED_SETUP = "setup command 3 of 3 failed with exit status 1: pip install torch==9.9  # pinned"
CREATED = {"type": "VirtualMachineCreated", "status": "True"}


def _guest(ok: bool, reason: str, message: str) -> list[dict[str, Any]]:
    status = "True" if ok else "False"
    return [CREATED, {"type": "GuestBootstrap", "status": status, "reason": reason, "message": message}]


def test_a_failed_guest_bootstrap_is_a_failure_with_the_guests_words() -> None:
    view = node_view(vm("x", "worker", conditions=_guest(False, "SetupCommandFailed", FAILED_SETUP)))
    assert (view.vm_status, view.reason, view.message) == ("failure", "SetupCommandFailed", FAILED_SETUP)
    assert view.power_state == "PoweredOn"
    # with nothing but the status, it still names what failed
    bare = node_view(vm("x", "worker", conditions=[CREATED, {"type": "GuestBootstrap", "status": "False"}]))
    assert (bare.vm_status, bare.reason) == ("failure", "GuestBootstrap")


def test_a_guest_bootstrap_that_succeeded_changes_nothing() -> None:
    view = node_view(vm("x", "worker", conditions=_guest(True, "SetupSucceeded", "3 of 3 setup commands succeeded")))
    assert (view.vm_status, view.reason, view.ip) == ("running", "Running", "10.211.0.2")


def test_the_head_whose_setup_failed_fails_the_cluster_and_says_which_command() -> None:
    observed = Observed(
        vms={
            HEAD: vm(HEAD, "head", ip="10.211.0.1", conditions=_guest(False, "SetupCommandFailed", FAILED_SETUP)),
            W1: vm(W1, "worker"),
            W2: vm(W2, "worker", ip="10.211.0.3"),
        },
        service=SERVICE,
    )
    status = run(observed)
    assert status["head_node_status"]["vm_status"] == "failure"
    assert status["head_node_status"]["reason"] == "SetupCommandFailed"
    head_ready = find(status["conditions"], "HeadReady")
    assert head_ready is not None
    assert (head_ready["status"], head_ready["reason"]) == ("False", "SetupCommandFailed")
    assert head_ready["message"] == f"head VM {HEAD}: {FAILED_SETUP}"
    assert status["cluster_state"] == "failed"


def test_a_worker_whose_setup_failed_is_named_in_workers_ready() -> None:
    observed = Observed(
        vms={
            HEAD: vm(HEAD, "head", ip="10.211.0.1"),
            W1: vm(W1, "worker", conditions=_guest(False, "SetupCommandFailed", FAILED_SETUP)),
            W2: vm(W2, "worker", ip="10.211.0.3"),
        },
        service=SERVICE,
    )
    status = run(observed)
    assert status["current_workers"][W1]["vm_status"] == "failure"
    workers_ready = find(status["conditions"], "WorkersReady")
    assert workers_ready is not None
    assert workers_ready["reason"] == "WorkerFailed"
    assert f"{W1} (SetupCommandFailed)" in workers_ready["message"]
