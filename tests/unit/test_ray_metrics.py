"""Ray's metrics: every node serves them on the fixed port, the operator publishes the nodes that can be scraped
in a Service and EndpointSlices, and the head's dashboard is pointed at Prometheus and Grafana."""

from __future__ import annotations

import copy
import datetime
from typing import Any

import pydantic
import pytest

from tests.support.specs import NAME, NAMESPACE, context, head_of, sample_spec
from vmray_operator.api.contract import RAY_METRICS_EXPORT_PORT
from vmray_operator.api.models import VMRayClusterSpec
from vmray_operator.reconcile.decisions import decide
from vmray_operator.reconcile.metrics_targets import metrics_actions
from vmray_operator.reconcile.observed import Observed
from vmray_operator.reconcile.plan import Create, Delete, Drain, Kind, Update
from vmray_operator.reconcile.rollout import VM_LEVEL
from vmray_operator.render import names
from vmray_operator.render.desired import DesiredState, desired_state
from vmray_operator.render.monitoring import metrics_service_name
from vmray_operator.render.ray_node import node_runtime

WORKERS = {"test-ray-w-aaaaaaaa": "ray.worker.default", "test-ray-w-bbbbbbbb": "ray.worker.default"}
MONITORING = {
    "prometheus_url": "http://prometheus.monitoring.example.com:9090/",
    "grafana_url": "https://grafana.example.com/",
    "grafana_iframe_url": "https://grafana.example.com/",
}


def _desired(**spec: Any) -> DesiredState:
    return desired_state(context(sample_spec(autoscaler_desired_workers=WORKERS, **spec)))


def _running(vm: dict[str, Any], address: str | None, power: str = "PoweredOn") -> dict[str, Any]:
    """A VM as the watch shows it once VM Operator powered it on and (maybe) gave it an address."""
    stored = copy.deepcopy(vm)
    stored["metadata"]["uid"] = f"uid-{vm['metadata']['name']}"
    stored["status"] = {"powerState": power, **({"network": {"primaryIP4": address}} if address else {})}
    return stored


def _cluster_vms(desired: DesiredState) -> dict[str, dict[str, Any]]:
    head = head_of(desired)
    addresses = {head["metadata"]["name"]: "10.213.0.10", "test-ray-w-aaaaaaaa": "10.213.0.11"}
    return {
        name: _running(vm, addresses.get(name))  # the second worker has no address yet
        for name, vm in {head["metadata"]["name"]: head, **desired.workers}.items()
    }


def _stored(actions: list[Any]) -> dict[str, dict[str, Any]]:
    """What the API server holds after these creations, by name (an empty list comes back as null)."""
    stored = {}
    for action in actions:
        body = copy.deepcopy(action.body)
        body["metadata"]["uid"] = f"uid-{body['metadata']['name']}"
        if body.get("endpoints") == []:
            body["endpoints"] = None
        stored[body["metadata"]["name"]] = body
    return stored


def test_every_node_serves_ray_metrics_on_the_fixed_port() -> None:
    ctx = context(sample_spec(autoscaler_desired_workers=WORKERS))
    for role, node_type in ((names.ROLE_HEAD, "ray.head.default"), (names.ROLE_WORKER, "ray.worker.default")):
        start = node_runtime(ctx, role, node_type).ray_start
        assert f"--metrics-export-port={RAY_METRICS_EXPORT_PORT}" in start, role
        assert start[-1] == "--block"


def test_the_head_points_ray_s_dashboard_at_prometheus_and_grafana() -> None:
    ctx = context(sample_spec(monitoring=MONITORING))
    env = node_runtime(ctx, names.ROLE_HEAD, "ray.head.default").env
    assert env["RAY_PROMETHEUS_HOST"] == "http://prometheus.monitoring.example.com:9090"  # Ray appends "/api/..."
    assert env["RAY_GRAFANA_HOST"] == "https://grafana.example.com"
    assert env["RAY_GRAFANA_IFRAME_HOST"] == "https://grafana.example.com"
    assert env["RAY_GRAFANA_CLUSTER_FILTER"] == NAME  # the ray_io_cluster the scrape configurations set
    worker_env = node_runtime(ctx, names.ROLE_WORKER, "ray.worker.default").env
    assert not {k for k in worker_env if k.startswith(("RAY_PROMETHEUS", "RAY_GRAFANA"))}
    plain = node_runtime(context(), names.ROLE_HEAD, "ray.head.default").env
    assert not {k for k in plain if k.startswith(("RAY_PROMETHEUS", "RAY_GRAFANA"))}


def test_monitoring_changes_only_the_head() -> None:
    before, after = _desired(), _desired(monitoring=MONITORING)
    assert before.secrets.keys() == after.secrets.keys()
    changed = {name for name in before.secrets if before.secrets[name] != after.secrets[name]}
    assert changed == {head_of(before)["spec"]["bootstrap"]["cloudInit"]["rawCloudConfig"]["name"]}


@pytest.mark.parametrize(
    "url",
    ["prometheus:9090", "ftp://prometheus:9090", "http://prometheus:9090 --x", "http://a/$(id)", 'http://a/"b'],
)
def test_a_monitoring_address_must_be_a_plain_http_url(url: str) -> None:
    spec = sample_spec().model_dump(exclude_none=True)
    with pytest.raises(pydantic.ValidationError, match="prometheus_url"):
        VMRayClusterSpec.model_validate({**spec, "monitoring": {"prometheus_url": url}})


def test_the_metrics_service_is_headless_without_a_selector_and_named_for_any_cluster_name() -> None:
    service = _desired().metrics_service
    assert service is not None
    assert service["metadata"]["name"] == "ray-metrics-test-ray"
    assert service["metadata"]["namespace"] == NAMESPACE
    assert service["metadata"]["ownerReferences"][0]["name"] == NAME
    assert service["spec"]["clusterIP"] == "None"
    assert "selector" not in service["spec"]
    assert service["spec"]["ports"] == [
        {"name": "metrics", "protocol": "TCP", "port": RAY_METRICS_EXPORT_PORT, "targetPort": RAY_METRICS_EXPORT_PORT}
    ]
    # A Service's name is an RFC 1035 label (a letter first); a cluster's name may start with a digit.
    longest = "9" + "a" * 39
    assert metrics_service_name(longest)[0].isalpha()
    assert len(f"{metrics_service_name(longest)}-workers") <= 63


def test_a_new_cluster_gets_the_service_and_one_slice_per_role() -> None:
    desired = _desired()
    actions = metrics_actions(desired, Observed(vms=_cluster_vms(desired)))
    assert [(type(a).__name__, a.kind) for a in actions] == [
        ("Create", Kind.METRICS_SERVICE),
        ("Create", Kind.ENDPOINT_SLICE),
        ("Create", Kind.ENDPOINT_SLICE),
    ]
    slices = {a.name: a.body for a in actions if isinstance(a, Create) and a.kind is Kind.ENDPOINT_SLICE}
    head, workers = slices["ray-metrics-test-ray-head"], slices["ray-metrics-test-ray-workers"]
    for body in (head, workers):
        assert body["addressType"] == "IPv4"
        assert body["metadata"]["labels"]["kubernetes.io/service-name"] == "ray-metrics-test-ray"
        assert body["metadata"]["labels"]["endpointslice.kubernetes.io/managed-by"] == "vmray-operator"
        assert body["metadata"]["labels"]["vmray.broadcom.com/cluster"] == NAME
        assert body["ports"] == [{"name": "metrics", "protocol": "TCP", "port": RAY_METRICS_EXPORT_PORT}]
    head_name = head_of(desired)["metadata"]["name"]
    assert head["endpoints"] == [
        {
            "addresses": ["10.213.0.10"],
            "conditions": {"ready": True},
            "targetRef": {
                "apiVersion": "vmoperator.vmware.com/v1alpha2",
                "kind": "VirtualMachine",
                "namespace": NAMESPACE,
                "name": head_name,
                "uid": f"uid-{head_name}",
            },
        }
    ]
    # the worker without an address is not a target yet
    assert [e["targetRef"]["name"] for e in workers["endpoints"]] == ["test-ray-w-aaaaaaaa"]


def test_a_converged_cluster_needs_nothing_and_an_address_change_updates_only_its_slice() -> None:
    desired = _desired()
    vms = _cluster_vms(desired)
    first = metrics_actions(desired, Observed(vms=vms))
    stored = _stored(first)
    service = stored.pop("ray-metrics-test-ray")
    assert metrics_actions(desired, Observed(vms=vms, metrics_service=service, endpoint_slices=stored)) == []

    vms["test-ray-w-bbbbbbbb"] = _running(desired.workers["test-ray-w-bbbbbbbb"], "10.213.0.12")
    (update,) = metrics_actions(desired, Observed(vms=vms, metrics_service=service, endpoint_slices=stored))
    assert isinstance(update, Update)
    assert (update.kind, update.name, set(update.patch)) == (
        Kind.ENDPOINT_SLICE,
        "ray-metrics-test-ray-workers",
        {"endpoints"},
    )
    assert [e["addresses"] for e in update.patch["endpoints"]] == [["10.213.0.11"], ["10.213.0.12"]]


def test_vms_that_cannot_be_scraped_leave_the_slices() -> None:
    desired = _desired()
    vms = _cluster_vms(desired)
    stored = _stored(metrics_actions(desired, Observed(vms=vms)))
    service = stored.pop("ray-metrics-test-ray")
    head_name = head_of(desired)["metadata"]["name"]
    vms[head_name] = _running(head_of(desired), "10.213.0.10", power="PoweredOff")  # a suspended cluster's head
    vms["test-ray-w-aaaaaaaa"]["metadata"]["deletionTimestamp"] = "2026-01-01T00:00:00Z"
    actions = metrics_actions(desired, Observed(vms=vms, metrics_service=service, endpoint_slices=stored))
    assert {(a.name, tuple(a.patch["endpoints"])) for a in actions if isinstance(a, Update)} == {
        ("ray-metrics-test-ray-head", ()),
        ("ray-metrics-test-ray-workers", ()),
    }


def test_changed_ports_are_put_back_and_a_stray_slice_of_the_cluster_goes() -> None:
    desired = _desired()
    vms = _cluster_vms(desired)
    stored = _stored(metrics_actions(desired, Observed(vms=vms)))
    service = stored.pop("ray-metrics-test-ray")
    service["spec"]["ports"][0]["port"] = 9999
    stray = copy.deepcopy(stored["ray-metrics-test-ray-head"])
    stray["metadata"].update(name="ray-metrics-test-ray-old", uid="uid-old")
    stored["ray-metrics-test-ray-old"] = stray
    actions = metrics_actions(desired, Observed(vms=vms, metrics_service=service, endpoint_slices=stored))
    ports = [
        {"name": "metrics", "protocol": "TCP", "port": RAY_METRICS_EXPORT_PORT, "targetPort": RAY_METRICS_EXPORT_PORT}
    ]
    assert actions == [
        Update(Kind.METRICS_SERVICE, "ray-metrics-test-ray", {"spec": {"ports": ports}}),
        Delete(Kind.ENDPOINT_SLICE, "ray-metrics-test-ray-old", "uid-old", "not a metrics slice of the cluster's"),
    ]


def test_a_reconcile_decision_publishes_the_metrics_objects_after_the_status() -> None:
    drain = Drain(datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC), 60.0)
    decision = decide(context(), Observed(), [], False, drain, VM_LEVEL)
    published = {a.kind for a in decision.published if isinstance(a, Create)}
    assert {Kind.METRICS_SERVICE, Kind.ENDPOINT_SLICE} <= published
    assert not {a.kind for a in decision.actions} & {Kind.METRICS_SERVICE, Kind.ENDPOINT_SLICE}
