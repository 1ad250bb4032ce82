"""The Prometheus alert rules shipped with the package: a valid rules file whose every metric, and every label
it selects on, is one the operator serves (promtool is not available here; this reads the expressions)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import yaml

from tests.support.promql import selectors, served_series
from vmray_operator import metrics

ALERTS = Path(__file__).resolve().parents[2] / "carvel" / "monitoring" / "alerts.yaml"
DURATION = re.compile(r"^([0-9]+(ms|s|m|h|d|w|y))+$")


def rules() -> list[dict[str, Any]]:
    document = yaml.safe_load(ALERTS.read_text())
    assert set(document) == {"groups"}
    return [rule for group in document["groups"] for rule in group["rules"]]


def test_selectors_reads_what_promql_names() -> None:
    expr = 'sum by (code) (rate(rest_client_requests_total{code=~"5..|<error>"}[10m])) > 0 and absent(up)'
    assert selectors(expr) == [("rest_client_requests_total", ["code"]), ("up", [])]


def test_the_file_is_a_prometheus_rules_file() -> None:
    document = yaml.safe_load(ALERTS.read_text())
    names = [group["name"] for group in document["groups"]]
    assert len(names) == len(set(names))
    alerts = rules()
    assert len({rule["alert"] for rule in alerts}) == len(alerts)
    for rule in alerts:
        assert set(rule) <= {"alert", "expr", "for", "labels", "annotations"}, rule["alert"]
        assert re.fullmatch(r"[A-Z][A-Za-z0-9]+", rule["alert"])
        assert DURATION.match(rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in ("critical", "warning", "info"), rule["alert"]
        assert rule["annotations"]["summary"].strip(), rule["alert"]
        assert rule["annotations"]["description"].strip(), rule["alert"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
        assert rule["expr"].count("{") == rule["expr"].count("}"), rule["alert"]


def test_every_metric_and_label_an_alert_names_is_served() -> None:
    served = served_series()
    for rule in rules():
        named = selectors(rule["expr"])
        assert named, rule["alert"]
        for series, labels in named:
            assert series in served, f"{rule['alert']}: {series} is not a metric of metrics.py"
            assert set(labels) <= set(served[series]), f"{rule['alert']}: {series} has no label {labels}"


def test_templates_use_labels_the_alert_keeps() -> None:
    """$labels.x in an annotation needs x on the alert's series: after `sum by (code)` only code is left."""
    served = served_series()
    for rule in rules():
        text = " ".join(rule["annotations"].values())
        used = set(re.findall(r"\$labels\.(\w+)", text))
        grouped = re.search(r"\bby\s*\(([^)]*)\)", rule["expr"])
        kept = (
            {label.strip() for label in grouped[1].split(",")}
            if grouped
            else {label for series, _ in selectors(rule["expr"]) for label in served[series]}
        )
        assert used <= kept, f"{rule['alert']}: {used - kept}"


def test_the_alerts_select_the_operator_s_own_controller_and_queue() -> None:
    for rule in rules():
        for value in re.findall(r'\b(?:controller|name)="([^"]*)"', rule["expr"]):
            assert value == metrics.CONTROLLER, rule["alert"]
