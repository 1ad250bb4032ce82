"""Logging: readable text by default, one JSON object per line on request (python-json-logger).

Every line logged while a cluster is being reconciled is about that cluster: the work queue marks the
reconcile with `about_cluster`, and the handler adds the cluster's namespace and name to each such line
(JSON fields `namespace` and `name`), whichever module logs it. A line about a cluster logged elsewhere
passes them itself: `log.info(..., extra=cluster_fields(namespace, name))`."""

from __future__ import annotations

import contextlib
import contextvars
import datetime
import logging
from collections.abc import Iterator
from typing import Any

from pythonjsonlogger.core import RESERVED_ATTRS
from pythonjsonlogger.json import JsonFormatter

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# LogRecord attributes of the cluster a line is about (`name` is taken: it is the logger's name).
NAMESPACE_FIELD = "cluster_namespace"
NAME_FIELD = "cluster_name"

_cluster: contextvars.ContextVar[tuple[str, str] | None] = contextvars.ContextVar("vmray_cluster", default=None)


def key_text(key: object) -> str:
    """A cluster key (namespace, name) as people write it: namespace/name."""
    if isinstance(key, tuple) and len(key) == 2:
        return f"{key[0]}/{key[1]}"
    return str(key)


def cluster_fields(namespace: str, name: str) -> dict[str, str]:
    """`extra=` for a line about a cluster."""
    return {NAMESPACE_FIELD: namespace, NAME_FIELD: name}


@contextlib.contextmanager
def about_cluster(key: object) -> Iterator[None]:
    """Lines logged inside, and in tasks started inside, are about this cluster (a (namespace, name) key;
    any other key marks nothing)."""
    if not (isinstance(key, tuple) and len(key) == 2):
        yield
        return
    token = _cluster.set((str(key[0]), str(key[1])))
    try:
        yield
    finally:
        _cluster.reset(token)


class ClusterFields(logging.Filter):
    """Adds the namespace and name of the cluster being reconciled to a record that names none."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, NAMESPACE_FIELD):
            cluster = _cluster.get()
            if cluster is not None:
                setattr(record, NAMESPACE_FIELD, cluster[0])
                setattr(record, NAME_FIELD, cluster[1])
        return True


class JsonLines(JsonFormatter):
    """One JSON object per line: time (UTC), level, logger, message, then namespace and name of the cluster
    the line is about, any other `extra=` fields, and the exception."""

    def __init__(self) -> None:
        super().__init__(
            ["levelname", "name", "message"],
            rename_fields={
                "levelname": "level",
                "name": "logger",
                NAMESPACE_FIELD: "namespace",
                NAME_FIELD: "name",
                "exc_info": "exception",
                "k8s_ref": "object",  # kopf's lines about an object name it (as kopf's own JSON format does)
            },
            # kopf's records also carry its settings and a flag of its own: not for the log
            reserved_attrs=[*RESERVED_ATTRS, "settings", "k8s_skip"],
            json_default=str,  # whatever else a library passes in `extra=` is written, never a logging error
        )

    def add_fields(self, log_data: dict[str, Any], record: logging.LogRecord, message_dict: dict[str, Any]) -> None:
        log_data["time"] = datetime.datetime.fromtimestamp(record.created, datetime.UTC).isoformat()
        super().add_fields(log_data, record, message_dict)


def configure_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    handler.setFormatter(JsonLines() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    handler.addFilter(ClusterFields())
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
