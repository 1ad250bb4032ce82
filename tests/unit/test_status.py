"""Status from observations: the readiness ladder, Ray-compatible node fields, conditions."""

from __future__ import annotations

import dataclasses
from typing import Any

from tests.support.specs import NAME, NOUNCE, sample_spec
from vmray_operator.api.models import VMRayClusterSpec
from vmray_operator.conditions import find
from vmray_operator.reconcile.nodes import node_view
from vmray_operator.reconcile.observed import Observed
from vmray_operator.reconcile.progress import progress_only
from vmray_operator.reconcile.status import StatusInput, compute_status, status_body

T0 = "2026-01-01T00:00:00Z"
T1 = "2026-01-01T00:05:00Z"
HEAD = f"{NAME}-h-{NOUNCE}"
W1, W2 = f"{NAME}-w-aaaaaaaa", f"{NAME}-w-bbbbbbbb"
WORKERS = {W1: "ray.worker.default", W2: "ray.worker.default"}


def vm(
    name: str,
    role: str,
    power: str | None = "PoweredOn",
    ip: str | None = "10.211.0.2",
    conditions: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    status: dict[str, Any] = {"conditions": conditions or [{"type": "VirtualMachineCreated", "status": "True"}]}
    if power:
        status["powerState"] = power
    if ip:
        status["network"] = {"primaryIP4": ip}
    return {"metadata": {"name": name, "labels": {"vmray.broadcom.com/role": role}}, "status": status}


def computed(inp: StatusInput) -> dict[str, Any]:
    """The status as the operator writes it."""
    return status_body(compute_status(inp))


SERVICE = {"metadata": {"name": HEAD}, "status": {"loadBalancer": {"ingress": [{"ip": "10.212.0.1"}]}}}


def run(
    observed: Observed,
    previous: dict[str, Any] | None = None,
    now: str = T0,
    spec: VMRayClusterSpec | None = None,
    **kw: Any,
) -> dict[str, Any]:
    return computed(
        StatusInput(
            spec=spec or sample_spec(autoscaler_desired_workers=WORKERS),
            generation=3,
            head_name=HEAD,
            observed=observed,
            previous=previous or {},
            now=now,
            **kw,
        )
    )


def ready_cluster() -> Observed:
    return Observed(
        vms={HEAD: vm(HEAD, "head", ip="10.211.0.1"), W1: vm(W1, "worker"), W2: vm(W2, "worker", ip="10.211.0.3")},
        service=SERVICE,
    )


def test_ladder_of_one_vm() -> None:
    assert node_view(None).reason == "Provisioning"
    assert node_view(vm("x", "worker", power=None, ip=None, conditions=[])).reason == "Provisioning"
    assert node_view(vm("x", "worker", power="PoweredOff", ip=None)).reason == "PoweringOn"
    assert node_view(vm("x", "worker", ip=None)).reason == "WaitingForNetworkAddress"
    running = node_view(vm("x", "worker"))
    assert (running.vm_status, running.ip) == ("running", "10.211.0.2")
    failed = node_view(
        vm(
            "x",
            "worker",
            power=None,
            ip=None,
            conditions=[
                {"type": "VirtualMachineClassReady", "status": "False", "reason": "NotFound", "message": "no class"}
            ],
        )
    )
    assert (failed.vm_status, failed.reason) == ("failure", "NotFound")


def test_ready_cluster_status_is_what_ray_reads() -> None:
    status = run(ready_cluster())
    assert status["cluster_state"] == "running"
    assert status["head_node_status"] == {
        "vm_status": "running",
        "reason": "Running",
        "ip": "10.211.0.1",
        "node_type": "ray.head.default",
        "power_state": "PoweredOn",
    }
    assert set(status["current_workers"]) == {W1, W2}
    assert status["current_workers"][W1]["node_type"] == "ray.worker.default"
    assert (status["desired_workers"], status["ready_workers"]) == (2, 2)
    assert status["vm_service_status"] == {"ip": "10.212.0.1"}
    assert status["endpoints"]["dashboard"] == "http://10.212.0.1:8265"
    assert status["endpoints"]["gcs"] == "10.212.0.1:6245"
    for type_ in ("Ready", "HeadReady", "WorkersReady", "DependenciesReady", "SpecValid"):
        condition = find(status["conditions"], type_)
        assert condition is not None
        assert condition["status"] == "True", type_
        assert condition["observedGeneration"] == 3


def test_unchanged_observations_give_an_identical_status() -> None:
    first = run(ready_cluster())
    assert run(ready_cluster(), previous=first, now=T1) == first


def test_missing_dependencies_make_the_cluster_pending() -> None:
    status = run(Observed(), missing=["VirtualMachineImage vmi-x"])
    assert status["cluster_state"] == "pending"
    ready = find(status["conditions"], "Ready")
    assert ready is not None
    assert ready["reason"] == "DependencyNotFound"
    assert "VirtualMachineImage vmi-x" in ready["message"]
    head = find(status["conditions"], "HeadReady")
    assert head is not None
    assert head["reason"] == "DependencyNotFound"


def test_head_without_load_balancer_waits_for_it() -> None:
    observed = ready_cluster()
    status = run(Observed(vms=observed.vms, service={"metadata": {"name": HEAD}}))
    head = find(status["conditions"], "HeadReady")
    assert head is not None
    assert head["reason"] == "WaitingForLoadBalancer"
    assert "endpoints" not in status


def test_worker_still_booting_is_named_in_workers_ready() -> None:
    observed = ready_cluster()
    observed.vms[W2] = vm(W2, "worker", ip=None)
    status = run(observed)
    workers = find(status["conditions"], "WorkersReady")
    assert workers is not None
    assert workers["status"] == "False"
    assert workers["reason"] == "WorkersProvisioning"
    assert f"{W2} (WaitingForNetworkAddress)" in workers["message"]
    assert status["current_workers"][W2]["vm_status"] == "initialized"
    assert status["ready_workers"] == 1


def test_losing_readiness_is_degraded_and_transition_time_moves() -> None:
    ready = run(ready_cluster())
    observed = ready_cluster()
    observed.vms[W1] = vm(W1, "worker", power="PoweredOff", ip=None)
    degraded = run(observed, previous=ready, now=T1)
    assert degraded["cluster_state"] == "degraded"
    condition = find(degraded["conditions"], "Ready")
    assert condition is not None
    assert condition["lastTransitionTime"] == T1


def test_deleting_and_stuck() -> None:
    status = run(ready_cluster(), deleting=True, deletion_stuck=[W1])
    assert status["cluster_state"] == "deleting"
    ready = find(status["conditions"], "Ready")
    assert ready is not None
    assert ready["reason"] == "DeletionStuck"
    assert W1 in ready["message"]


def test_worker_not_desired_any_more_is_still_current_until_gone() -> None:
    observed = ready_cluster()
    observed.vms["test-ray-w-leaving0"] = vm("test-ray-w-leaving0", "worker")
    status = run(observed)
    assert "test-ray-w-leaving0" in status["current_workers"]
    workers = find(status["conditions"], "WorkersReady")
    assert workers is not None
    assert "removing test-ray-w-leaving0" in workers["message"]


def test_outdated_vms_are_marked_and_up_to_date_turns_false_without_blocking_ready() -> None:
    status = run(ready_cluster(), outdated=[W2, HEAD])
    assert status["current_workers"][W2]["outdated"] is True
    assert "outdated" not in status["current_workers"][W1]
    assert status["head_node_status"]["outdated"] is True
    up_to_date = find(status["conditions"], "UpToDate")
    assert up_to_date is not None
    assert (up_to_date["status"], up_to_date["reason"]) == ("False", "RollingUpdate")
    assert f"{W2}, {HEAD}" in up_to_date["message"]
    ready = find(status["conditions"], "Ready")
    assert ready is not None
    assert ready["status"] == "True"
    assert status["cluster_state"] == "running"


def test_a_steady_cluster_is_up_to_date_and_carries_no_outdated_fields() -> None:
    status = run(ready_cluster())
    up_to_date = find(status["conditions"], "UpToDate")
    assert up_to_date is not None
    assert (up_to_date["status"], up_to_date["reason"]) == ("True", "UpToDate")
    assert "outdated" not in status["head_node_status"]
    assert all("outdated" not in w for w in status["current_workers"].values())


def test_the_end_of_a_rollout_clears_the_marks() -> None:
    rolling = run(ready_cluster(), outdated=[W1])
    done = run(ready_cluster(), previous=rolling, now=T1)
    assert "outdated" not in done["current_workers"][W1]
    up_to_date = find(done["conditions"], "UpToDate")
    assert up_to_date is not None
    assert (up_to_date["status"], up_to_date["lastTransitionTime"]) == ("True", T1)


def test_the_rolling_update_message_names_at_most_ten_vms() -> None:
    many = [f"{NAME}-w-{i:08d}" for i in range(12)]
    status = run(ready_cluster(), outdated=many)
    up_to_date = find(status["conditions"], "UpToDate")
    assert up_to_date is not None
    assert all(name in up_to_date["message"] for name in many[:10])
    assert not any(name in up_to_date["message"] for name in many[10:])
    assert up_to_date["message"].startswith("replacing 12 outdated VMs")
    assert up_to_date["message"].endswith("and 2 more")


def test_deletion_leaves_up_to_date_as_it_was() -> None:
    rolling = run(ready_cluster(), outdated=[W1])
    deleting = run(ready_cluster(), previous=rolling, now=T1, deleting=True)
    assert find(deleting["conditions"], "UpToDate") == find(rolling["conditions"], "UpToDate")
    assert "outdated" not in deleting["current_workers"][W1]


def test_tls_condition_names_the_ca_and_does_not_block_ready() -> None:
    spec = sample_spec(autoscaler_desired_workers=WORKERS)
    on = computed(dataclasses.replace(_input(ready_cluster(), spec), tls_ca=f"{NAME}-ray-ca"))
    tls = find(on["conditions"], "TLS")
    assert tls is not None
    assert (tls["status"], tls["reason"]) == ("True", "Enabled")
    assert f"Secret {NAME}-ray-ca" in tls["message"]
    waiting = computed(_input(ready_cluster(), spec))
    assert ((find(waiting["conditions"], "TLS") or {}).get("status")) == "False"
    assert (find(waiting["conditions"], "Ready") or {}).get("status") == "True"
    off = computed(_input(ready_cluster(), sample_spec(autoscaler_desired_workers=WORKERS, enable_tls=False)))
    assert find(off["conditions"], "TLS") is None
    assert (find(off["conditions"], "Ready") or {}).get("status") == "True"


def _input(observed: Observed, spec: Any) -> StatusInput:
    return StatusInput(spec=spec, generation=3, head_name=HEAD, observed=observed, previous={}, now=T0)


def test_values_of_the_wrong_type_in_a_vm_status_are_read_as_absent() -> None:
    garbage = vm(HEAD, "head", ip="10.211.0.1")
    garbage["status"]["network"] = {"primaryIP4": 167968001}
    garbage["status"]["conditions"] = [
        "not a condition",
        {"type": "VirtualMachineClassReady", "status": "False", "reason": 7, "message": ["x"]},
    ]
    view = node_view(garbage)
    assert view.vm_status == "failure"
    assert (view.reason, view.message) == ("VirtualMachineClassReady", "VirtualMachineClassReady")
    garbage["status"]["conditions"] = []
    view = node_view(garbage)
    assert view.ip is None
    assert view.reason == "WaitingForNetworkAddress"


def _step(**vms: dict[str, Any]) -> dict[str, Any]:
    """The status of the cluster when its VMs are as given (the head and both workers by default)."""
    observed = {HEAD: vm(HEAD, "head", ip="10.211.0.1"), W1: vm(W1, "worker"), W2: vm(W2, "worker", ip="10.211.0.3")}
    observed.update(vms)
    return run(Observed(vms={k: v for k, v in observed.items() if v}, service=SERVICE))


def test_a_vm_powering_on_is_progress_only() -> None:
    creating = _step(**{W1: vm(W1, "worker", power=None, ip=None)})
    powering = _step(**{W1: vm(W1, "worker", power="PoweredOff", ip=None)})
    waiting = _step(**{W1: vm(W1, "worker", ip=None)})
    assert progress_only(creating, powering)
    assert progress_only(powering, waiting)


def test_a_worker_appearing_on_its_way_up_is_progress_only() -> None:
    absent = _step(**{W1: {}})
    assert W1 not in absent["current_workers"]
    assert progress_only(absent, _step(**{W1: vm(W1, "worker", power=None, ip=None)}))


def test_an_ip_a_running_vm_or_readiness_is_news() -> None:
    waiting = _step(**{W1: vm(W1, "worker", ip=None)})
    running = _step()
    assert (find(running["conditions"], "Ready") or {}).get("status") == "True"
    assert not progress_only(waiting, running)


def test_a_failure_is_news() -> None:
    waiting = _step(**{W1: vm(W1, "worker", ip=None)})
    failed_condition = {"type": "VirtualMachineImageReady", "status": "False", "reason": "NotFound", "message": "x"}
    failed = _step(**{W1: vm(W1, "worker", ip=None, conditions=[failed_condition])})
    assert failed["current_workers"][W1]["vm_status"] == "failure"
    assert not progress_only(waiting, failed)


def test_a_vm_going_away_is_news() -> None:
    running = _step()
    leaving = vm(W1, "worker")
    leaving["metadata"]["deletionTimestamp"] = T1
    assert not progress_only(running, _step(**{W1: leaving}))
    assert not progress_only(_step(**{W1: leaving}), _step(**{W1: {}}))


def test_no_change_is_not_progress() -> None:
    assert not progress_only(_step(), _step())


REFUSED = "VirtualMachine test-ray-w-aaaaaaaa: admission webhook denied the request: quota exceeded"


def test_a_refused_write_makes_ready_false_naming_the_object_and_the_servers_words() -> None:
    status = run(ready_cluster(), refused=[REFUSED])
    ready = find(status["conditions"], "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"]) == ("False", "ApplyFailed")
    assert REFUSED in ready["message"]
    assert status["cluster_state"] == "failed"
    was_ready = run(ready_cluster())
    assert run(ready_cluster(), previous=was_ready, refused=[REFUSED])["cluster_state"] == "degraded"


def test_a_spec_problem_outranks_a_refused_write_and_the_refusal_clears() -> None:
    status = run(ready_cluster(), refused=[REFUSED], invalid=["autoscaler_desired_workers: x is not ..."])
    assert (find(status["conditions"], "Ready") or {})["reason"] == "InvalidSpec"
    refused = run(ready_cluster(), refused=[REFUSED])
    cleared = run(ready_cluster(), previous=refused, now=T1)
    assert (find(cleared["conditions"], "Ready") or {})["reason"] == "Running"


def test_many_refusals_are_told_in_a_bounded_message() -> None:
    many = [f"VirtualMachine test-ray-w-{i:08d}: denied" for i in range(40)]
    message = (find(run(ready_cluster(), refused=many)["conditions"], "Ready") or {})["message"]
    assert "and 35 more" in message
    assert len(message) < 400


def test_a_stalled_rollout_names_the_vm_and_why_and_keeps_the_cluster_ready() -> None:
    why = "it failed: SetupCommandFailed: setup command 2 of 3 failed with exit status 1: pip install x"
    status = run(ready_cluster(), outdated=[W2], rollout_stalled=(W1, why))
    up_to_date = find(status["conditions"], "UpToDate")
    assert up_to_date is not None
    assert (up_to_date["status"], up_to_date["reason"]) == ("False", "RolloutStalled")
    assert W1 in up_to_date["message"]
    assert why in up_to_date["message"]
    assert W2 in up_to_date["message"]
    assert (find(status["conditions"], "Ready") or {})["status"] == "True"


def test_an_address_that_is_no_ipv4_address_is_no_address() -> None:
    """What VM Operator reports reaches workers' start scripts, certificates and Ray's provider: only IPv4."""
    for garbage in ("10.211.0.9; reboot", "fd00::9", "", "10.211.0.256"):
        observed = ready_cluster()
        observed.vms[W1]["status"]["network"]["primaryIP4"] = garbage
        worker = computed(_input(observed, sample_spec(autoscaler_desired_workers=WORKERS)))["current_workers"][W1]
        assert "ip" not in worker
        assert worker["reason"] == "WaitingForNetworkAddress"
    service = {"metadata": {"name": HEAD}, "status": {"loadBalancer": {"ingress": [{"ip": "$(reboot)"}]}}}
    status = computed(
        _input(Observed(vms=ready_cluster().vms, service=service), sample_spec(autoscaler_desired_workers=WORKERS))
    )
    assert "endpoints" not in status


def test_the_vm_addresses_are_those_vm_operator_reports_in_ipv4() -> None:
    observed = Observed(
        vms={
            HEAD: vm(HEAD, "head", ip="10.211.0.2"),
            W1: vm(W1, "worker", ip=None),  # not given one yet
            W2: vm(W2, "worker", ip="fe80::1"),  # not an IPv4 address: absent
        }
    )
    assert observed.vm_addresses() == frozenset({"10.211.0.2"})
