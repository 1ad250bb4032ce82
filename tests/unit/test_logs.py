"""Logs: readable text by default, JSON lines on request, and every line logged during a cluster's reconcile
names the cluster (namespace and name), whichever module logs it."""

from __future__ import annotations

import asyncio
import dataclasses
import io
import json
import logging
import queue
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import pytest

from vmray_operator.controller.queue import WorkQueue
from vmray_operator.logs import ClusterFields, JsonLines, about_cluster, cluster_fields, key_text


@pytest.fixture
def json_lines() -> Iterator[tuple[logging.Logger, io.StringIO]]:
    """JSON lines of every `vmray.*` logger, as `--log-format json` writes them; a logger to write with."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonLines())
    handler.addFilter(ClusterFields())
    operator_loggers = logging.getLogger("vmray")
    level = operator_loggers.level
    operator_loggers.addHandler(handler)
    operator_loggers.setLevel(logging.DEBUG)
    yield logging.getLogger("vmray.test-logs"), stream
    operator_loggers.removeHandler(handler)
    operator_loggers.setLevel(level)


def lines(stream: io.StringIO) -> list[dict[str, Any]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_key_text_is_namespace_slash_name() -> None:
    assert key_text(("deploy-ray", "test-ray")) == "deploy-ray/test-ray"
    assert key_text("other") == "other"


def test_json_lines_name_the_cluster_being_reconciled(json_lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_lines
    logger.info("before")
    with about_cluster(("deploy-ray", "test-ray")):
        logger.warning("created VirtualMachine %s", "test-ray-h-abcde")
    logger.info("elsewhere", extra=cluster_fields("team-a", "big-ray"))
    before, during, elsewhere = lines(stream)
    assert set(before) == {"time", "level", "logger", "message"}
    assert during["namespace"] == "deploy-ray"
    assert during["name"] == "test-ray"
    assert during["logger"] == "vmray.test-logs"
    assert during["level"] == "WARNING"
    assert during["message"] == "created VirtualMachine test-ray-h-abcde"
    assert during["time"].endswith("+00:00")
    assert (elsewhere["namespace"], elsewhere["name"]) == ("team-a", "big-ray")


@dataclasses.dataclass
class LibrarySettings:
    """Like kopf's settings, which its records carry: a dataclass that cannot be copied."""

    queue: queue.SimpleQueue[int] = dataclasses.field(default_factory=queue.SimpleQueue)


def test_what_kopf_adds_to_its_records_never_breaks_a_line(json_lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_lines
    ref = {"apiVersion": "vmray.broadcom.com/v1alpha1", "kind": "VMRayCluster", "name": "c", "namespace": "ns"}
    logger.info("Handler succeeded.", extra={"settings": LibrarySettings(), "k8s_skip": True, "k8s_ref": ref})
    logger.info("with an object", extra={"thing": object()})
    handled, other = lines(stream)
    assert handled["object"] == ref
    assert "settings" not in handled
    assert "k8s_skip" not in handled
    assert other["thing"].startswith("<object object")


async def test_tasks_started_during_a_reconcile_log_as_that_cluster(
    json_lines: tuple[logging.Logger, io.StringIO],
) -> None:
    logger, stream = json_lines

    async def background() -> None:
        await asyncio.sleep(0)
        logger.info("posted an Event")

    with about_cluster(("ns", "c")):
        task = asyncio.create_task(background())
    logger.info("outside")
    await task
    by_message = {line["message"]: line for line in lines(stream)}
    assert by_message["posted an Event"]["name"] == "c"
    assert "name" not in by_message["outside"]


async def test_a_failed_reconcile_is_logged_with_its_cluster(json_lines: tuple[logging.Logger, io.StringIO]) -> None:
    logger, stream = json_lines

    async def handler(key: tuple[str, str]) -> float | None:
        logger.info("reconciling")
        raise ValueError("no such VM class")

    queue: WorkQueue[tuple[str, str]] = WorkQueue(handler, workers=1, max_backoff=30, name="logs-test")
    queue.start()
    queue.add(("deploy-ray", "test-ray"))
    await asyncio.sleep(0.05)
    await queue.stop()
    reconciling, failed = lines(stream)
    assert (reconciling["namespace"], reconciling["name"]) == ("deploy-ray", "test-ray")
    assert failed["message"] == "reconcile of deploy-ray/test-ray failed (attempt 1); retrying in 0.5 s"
    assert (failed["namespace"], failed["name"]) == ("deploy-ray", "test-ray")
    assert "ValueError: no such VM class" in failed["exception"]


CONFIGURED = """
import logging, sys
from vmray_operator.logs import about_cluster, configure_logging
configure_logging("info", sys.argv[1])
with about_cluster(("deploy-ray", "test-ray")):
    logging.getLogger("vmray.reconcile").info("deleting VirtualMachine test-ray-w-abc")
logging.getLogger("vmray.reconcile").debug("not shown at INFO")
"""


def configured(fmt: str) -> str:
    done = subprocess.run(
        [sys.executable, "-c", CONFIGURED, fmt], capture_output=True, text=True, timeout=60, check=True
    )
    return done.stderr


def test_configured_text_is_one_readable_line() -> None:
    (line,) = configured("text").splitlines()
    assert line.endswith(" INFO vmray.reconcile: deleting VirtualMachine test-ray-w-abc")
    assert not line.startswith("{")


def test_configured_json_is_one_object_per_line_with_the_cluster() -> None:
    (line,) = configured("json").splitlines()
    entry = json.loads(line)
    assert entry["namespace"] == "deploy-ray"
    assert entry["name"] == "test-ray"
    assert entry["logger"] == "vmray.reconcile"
