"""The monitoring files shipped in carvel/monitoring: Grafana dashboards that import and name only metrics the
operator or Ray exports, and scrape configurations that find exactly the nodes the operator publishes."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from ray.dashboard.modules.metrics.dashboards.default_dashboard_panels import default_dashboard_config
from ray.dashboard.modules.reporter.reporter_agent import METRICS_GAUGES

from tests.support.promql import selectors, served_series
from tests.support.specs import NAME, NAMESPACE, context, head_of, sample_spec
from vmray_operator.api.contract import RAY_METRICS_EXPORT_PORT
from vmray_operator.reconcile.metrics_targets import metrics_actions
from vmray_operator.reconcile.observed import Observed
from vmray_operator.reconcile.plan import Create, Kind
from vmray_operator.render.desired import desired_state

MONITORING = Path(__file__).resolve().parents[2] / "carvel" / "monitoring"
DASHBOARDS = sorted(MONITORING.glob("grafana-*.json"))
# Labels a scrape adds to every series: Prometheus' own and those the shipped scrape configurations set.
TARGET_LABELS = {"job", "instance", "namespace", "pod", "service", "endpoint", "container", "ray_io_cluster", "vm"}


def ray_series() -> set[str]:
    """Series Ray exports: its nodes' gauges (the dashboard agent's), and what Ray's own default Grafana dashboard
    reads (the core's task, actor and resource metrics)."""
    names = {f"ray_{name}" for name in METRICS_GAUGES}
    for row in default_dashboard_config.rows:
        for panel in row.panels:
            for target in panel.targets:
                names |= set(re.findall(r"\bray_[a-zA-Z0-9_]+", target.expr))
    return names


def _dashboard(path: Path) -> dict[str, Any]:
    board: dict[str, Any] = json.loads(path.read_text())
    return board


def _queries(board: dict[str, Any]) -> list[str]:
    """Every PromQL expression of the dashboard: its panels' and its variables'."""
    exprs = [t["expr"] for p in board["panels"] for t in p.get("targets", [])]
    for variable in board["templating"]["list"]:
        if variable["type"] == "query":
            exprs.append(re.sub(r"^label_values\((.*),\s*\w+\)$", r"\1", variable["definition"]))
    return exprs


def test_both_dashboards_are_shipped() -> None:
    assert [p.name for p in DASHBOARDS] == ["grafana-ray-clusters.json", "grafana-vmray-operator.json"]


@pytest.mark.parametrize("path", DASHBOARDS, ids=[p.name for p in DASHBOARDS])
def test_a_dashboard_is_one_grafana_imports(path: Path) -> None:
    board = _dashboard(path)
    assert board["uid"]
    assert board["title"]
    assert isinstance(board["schemaVersion"], int)
    panels = [p for p in board["panels"] if p["type"] != "row"]
    assert len(panels) >= 6
    assert len({p["id"] for p in board["panels"]}) == len(board["panels"])
    variables = {v["name"] for v in board["templating"]["list"]}
    assert "datasource" in variables  # chosen at import, no datasource name is baked in
    for panel in panels:
        position = panel["gridPos"]
        assert position["x"] + position["w"] <= 24, panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        assert panel["targets"], panel["title"]
        assert all(t["expr"].strip() for t in panel["targets"]), panel["title"]
        assert panel["description"], panel["title"]
        for expr in (t["expr"] for t in panel["targets"]):
            assert expr.count("(") == expr.count(")"), expr
            assert expr.count("{") == expr.count("}"), expr
            used = set(re.findall(r"\$(\w+)", expr)) - {"__rate_interval"}
            assert used <= variables, f"{panel['title']}: {used - variables}"


def test_the_operator_dashboard_names_only_what_the_operator_serves() -> None:
    served = served_series()
    named = [s for expr in _queries(_dashboard(MONITORING / "grafana-vmray-operator.json")) for s in selectors(expr)]
    assert {series for series, _ in named} >= {"vmray_clusters", "controller_runtime_reconcile_total"}
    for series, labels in named:
        assert series in served, f"{series} is not a metric of metrics.py"
        assert set(labels) <= set(served[series]) | TARGET_LABELS, f"{series} has no label {labels}"


def test_the_ray_dashboard_names_only_what_ray_exports() -> None:
    exported = ray_series()
    assert {"ray_node_cpu_utilization", "ray_node_mem_used", "ray_tasks"} <= exported  # the reading of Ray works
    named = {
        series
        for expr in _queries(_dashboard(MONITORING / "grafana-ray-clusters.json"))
        for series, _ in selectors(expr)
    }
    assert named >= {"ray_node_cpu_utilization", "ray_node_mem_used"}
    assert named <= exported, f"not exported by Ray: {named - exported}"


# --- the scrape configurations against the objects the operator makes ---------------------------------------------


def _sanitized(name: str) -> str:
    return re.sub(r"[^a-zA-Z0-9_]", "_", name)


def _published() -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The metrics Service and EndpointSlices of a cluster whose head and one worker have addresses."""
    desired = desired_state(
        context(sample_spec(autoscaler_desired_workers={"test-ray-w-aaaaaaaa": "ray.worker.default"}))
    )
    vms = {head_of(desired)["metadata"]["name"]: head_of(desired), **desired.workers}
    for address, vm in zip(("10.213.0.10", "10.213.0.11"), vms.values(), strict=True):
        vm["status"] = {"powerState": "PoweredOn", "network": {"primaryIP4": address}}
    created = [a.body for a in metrics_actions(desired, Observed(vms=vms)) if isinstance(a, Create)]
    (service,) = [b for b in created if b["kind"] == Kind.METRICS_SERVICE.value]
    return service, [b for b in created if b["kind"] == Kind.ENDPOINT_SLICE.value]


def _discovered(service: dict[str, Any], slices: list[dict[str, Any]]) -> list[dict[str, str]]:
    """The targets Prometheus' kubernetes_sd `endpointslice` role makes of these objects, with their meta labels."""
    targets = []
    for body in slices:
        for endpoint in body["endpoints"]:
            for port in body["ports"]:
                labels = {
                    "__address__": f"{endpoint['addresses'][0]}:{port['port']}",
                    "__meta_kubernetes_namespace": body["metadata"]["namespace"],
                    "__meta_kubernetes_endpointslice_name": body["metadata"]["name"],
                    "__meta_kubernetes_endpointslice_port_name": port["name"],
                    "__meta_kubernetes_endpointslice_address_target_kind": endpoint["targetRef"]["kind"],
                    "__meta_kubernetes_endpointslice_address_target_name": endpoint["targetRef"]["name"],
                    "__meta_kubernetes_service_name": service["metadata"]["name"],
                }
                for prefix, meta in (("endpointslice", body["metadata"]), ("service", service["metadata"])):
                    for key, value in meta["labels"].items():
                        labels[f"__meta_kubernetes_{prefix}_label_{_sanitized(key)}"] = value
                targets.append(labels)
    return targets


def _relabel(target: dict[str, str], rules: list[dict[str, Any]]) -> dict[str, str] | None:
    """Prometheus' relabelling, keep and replace (the only actions the files use); None: the target is dropped."""
    for rule in rules:
        value = rule.get("separator", ";").join(target.get(name, "") for name in rule["source_labels"])
        match = re.fullmatch(rule.get("regex", "(.*)"), value)
        if rule.get("action", "replace") == "keep":
            if not match:
                return None
        elif match:
            target[rule["target_label"]] = match.expand(rule.get("replacement", "$1").replace("$1", r"\1"))
    return {k: v for k, v in target.items() if not k.startswith("__") or k == "__address__"}


def test_the_scrape_configuration_finds_every_published_node_with_its_cluster() -> None:
    (job,) = yaml.safe_load((MONITORING / "prometheus-scrape.yaml").read_text())["scrape_configs"]
    assert job["kubernetes_sd_configs"] == [{"role": "endpointslice"}]
    service, slices = _published()
    foreign = {**slices[0], "metadata": {**slices[0]["metadata"], "labels": {"kubernetes.io/service-name": "web"}}}
    kept = [t for t in (_relabel(t, job["relabel_configs"]) for t in _discovered(service, [*slices, foreign])) if t]
    assert sorted(t["__address__"] for t in kept) == [
        f"10.213.0.10:{RAY_METRICS_EXPORT_PORT}",
        f"10.213.0.11:{RAY_METRICS_EXPORT_PORT}",
    ]
    for target in kept:
        assert target["ray_io_cluster"] == NAME
        assert target["namespace"] == NAMESPACE
        assert target["vm"].startswith(f"{NAME}-")
    assert {t["vm"] for t in kept} == {e["targetRef"]["name"] for s in slices for e in s["endpoints"]}


def test_the_service_monitor_selects_the_metrics_service_and_reads_its_slices() -> None:
    monitor = yaml.safe_load((MONITORING / "servicemonitor.yaml").read_text())
    assert monitor["kind"] == "ServiceMonitor"
    spec = monitor["spec"]
    assert spec["serviceDiscoveryRole"] == "EndpointSlice"  # the operator writes no Endpoints
    assert spec["namespaceSelector"] == {"any": True}
    service, slices = _published()
    assert spec["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    (endpoint,) = spec["endpoints"]
    assert endpoint["port"] == service["spec"]["ports"][0]["name"] == slices[0]["ports"][0]["name"]
    rules = [{"source_labels": r["sourceLabels"], "target_label": r["targetLabel"]} for r in endpoint["relabelings"]]
    for target in _discovered(service, slices):
        relabelled = _relabel(target, rules)
        assert relabelled is not None
        assert (relabelled["ray_io_cluster"], relabelled["vm"][: len(NAME)]) == (NAME, NAME)
