"""Reading PromQL as the shipped alert rules and dashboards write it: which series an expression names, and with
which labels (promtool is not available here), and every series the operator serves."""

from __future__ import annotations

import re

from prometheus_client.metrics import MetricWrapperBase

from vmray_operator import metrics
from vmray_operator.controller.cluster_gauges import ClusterGauges

# Words of PromQL that are not series names: operators, and what `by (...)`-like clauses hold.
KEYWORDS = {"and", "or", "unless", "bool", "offset", "by", "without", "on", "ignoring", "group_left", "group_right"}
SUFFIXES = {"counter": ("_total",), "histogram": ("_bucket", "_sum", "_count"), "gauge": ("",), "info": ("_info",)}


def served_series() -> dict[str, tuple[str, ...]]:
    """Every series name the operator serves, with its label names."""
    families: list[tuple[str, str, tuple[str, ...]]] = []
    for value in vars(metrics).values():
        if isinstance(value, MetricWrapperBase):
            (family,) = value.describe()
            families.append((family.name, family.type, tuple(value._labelnames)))
    for family in ClusterGauges().describe():
        families.append((family.name, family.type, tuple(family._labelnames)))
    series: dict[str, tuple[str, ...]] = {}
    for name, type_, labels in families:
        for suffix in SUFFIXES[type_]:
            series[name + suffix] = (*labels, "le") if suffix == "_bucket" else labels
    return series


def selectors(expr: str) -> list[tuple[str, list[str]]]:
    """(series name, label names it matches on) for each series an expression names."""
    expr = re.sub(r"\[[^\]]*\]", "", expr)  # range and subquery durations
    expr = re.sub(r"\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)", "", expr)  # label lists
    found: list[tuple[str, list[str]]] = []
    pattern = r"(?<![\w.\"])([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(\(|\{([^}]*)\})?"
    for match in re.finditer(pattern, re.sub(r'"(?:[^"\\]|\\.)*"', '""', expr)):
        name, after, matchers = match[1], match[2] or "", match[3] or ""
        if after == "(" or name in KEYWORDS:
            continue  # a function or an operator
        found.append((name, re.findall(r"([a-zA-Z_]\w*)\s*(?:=~|!~|!=|=)", matchers)))
    return found
