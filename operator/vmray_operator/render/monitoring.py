"""Ray's metrics: where Prometheus finds every node's, and where the head's dashboard finds Prometheus and Grafana.

Every node serves Ray's Prometheus metrics on RAY_METRICS_EXPORT_PORT. The operator publishes the nodes the way
Prometheus discovers scrape targets in a Supervisor namespace: a headless Service without a selector,
`ray-metrics-<cluster>`, and EndpointSlices of that Service listing each powered-on VM's address with the port
(targetRef names the VM). Prometheus' kubernetes_sd `endpointslice` role and a Prometheus Operator ServiceMonitor
(serviceDiscoveryRole: EndpointSlice) find them by the Service's labels. Why not the alternatives:
- annotations on the VMs: kubernetes_sd has no role for custom resources, so nothing would read them;
- Endpoints: Kubernetes deprecated that API in 1.33 in favour of EndpointSlices;
- a VirtualMachineService selecting every node: VM Operator would keep its endpoints only on a real Supervisor
  (and give it a cluster IP); these list exactly the VMs the operator sees, by name.
One slice per role: a slice holds at most 1000 endpoints while a cluster may have 1000 workers and a head, and
the slice's role label tells a dashboard which node is the head."""

from __future__ import annotations

from dataclasses import dataclass

from vmray_operator.api.contract import LABEL_CLUSTER, LABEL_MANAGED_BY, MANAGER, RAY_METRICS_EXPORT_PORT, Body
from vmray_operator.render import names
from vmray_operator.render.context import ClusterContext
from vmray_operator.render.objects import metadata

ROLE_METRICS = "metrics"  # the role label of the metrics Service
METRICS_PORT_NAME = "metrics"
SERVICE_NAME_LABEL = "kubernetes.io/service-name"  # ties an EndpointSlice to its Service
SLICE_MANAGER_LABEL = "endpointslice.kubernetes.io/managed-by"  # Kubernetes' own controllers leave other slices alone
SLICE_ROLES = {names.ROLE_HEAD: "head", names.ROLE_WORKER: "workers"}  # role -> suffix of its slice's name
METRICS_PORTS: list[Body] = [{"name": METRICS_PORT_NAME, "protocol": "TCP", "port": RAY_METRICS_EXPORT_PORT}]


def metrics_service_name(cluster: str) -> str:
    """The cluster's name last: a Service's name must start with a letter, a cluster's may start with a digit."""
    return f"ray-metrics-{cluster}"


def slice_name(cluster: str, role: str) -> str:
    return f"{metrics_service_name(cluster)}-{SLICE_ROLES[role]}"


def metrics_service(ctx: ClusterContext) -> Body:
    """Headless and without a selector: it only names the EndpointSlices the operator keeps."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": metadata(ctx, metrics_service_name(ctx.name), names.labels(ctx.name, ROLE_METRICS)),
        "spec": {
            "clusterIP": "None",
            "ports": [{**port, "targetPort": port["port"]} for port in METRICS_PORTS],
        },
    }


@dataclass(frozen=True)
class MetricsTarget:
    """A node to scrape: its VM and the VM's address."""

    vm_name: str
    address: str
    vm_api_version: str
    vm_uid: str | None


def endpoint_slice(service: Body, role: str, targets: list[MetricsTarget]) -> Body:
    """The EndpointSlice of the nodes of one role (head or worker) of the cluster the metrics Service is of."""
    meta = service["metadata"]
    cluster = meta["labels"][LABEL_CLUSTER]
    labels = {
        **names.labels(cluster, role),
        SERVICE_NAME_LABEL: meta["name"],
        SLICE_MANAGER_LABEL: MANAGER,
        LABEL_MANAGED_BY: MANAGER,
    }
    return {
        "apiVersion": "discovery.k8s.io/v1",
        "kind": "EndpointSlice",
        "metadata": {**meta, "name": slice_name(cluster, role), "labels": labels},
        "addressType": "IPv4",
        "endpoints": [_endpoint(target, meta["namespace"]) for target in sorted(targets, key=lambda t: t.vm_name)],
        "ports": METRICS_PORTS,
    }


def _endpoint(target: MetricsTarget, namespace: str) -> Body:
    reference: Body = {
        "apiVersion": target.vm_api_version,
        "kind": "VirtualMachine",
        "namespace": namespace,
        "name": target.vm_name,
    }
    if target.vm_uid:
        reference["uid"] = target.vm_uid
    return {"addresses": [target.address], "conditions": {"ready": True}, "targetRef": reference}


def dashboard_env(ctx: ClusterContext) -> dict[str, str]:
    """The head's environment that points Ray's dashboard at Prometheus and Grafana (Ray 2.60's names); Ray's own
    Grafana dashboards select a cluster by the ray_io_cluster label, which the shipped scrape configurations set to
    the cluster's name."""
    monitoring = ctx.spec.monitoring
    env: dict[str, str] = {}
    if monitoring.prometheus_url:
        env["RAY_PROMETHEUS_HOST"] = monitoring.prometheus_url.rstrip("/")
    if monitoring.grafana_url:
        env["RAY_GRAFANA_HOST"] = monitoring.grafana_url.rstrip("/")
        env["RAY_GRAFANA_CLUSTER_FILTER"] = ctx.name
    if monitoring.grafana_iframe_url:
        env["RAY_GRAFANA_IFRAME_HOST"] = monitoring.grafana_iframe_url.rstrip("/")
    return env
