"""The dashboard's answers read into a RayView: good answers give a good view, any other answer a view that
says what is wrong, never an exception."""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmray_operator.ray.view import RayNodeInfo, RayView, refused, view_from_answers

HEAD_ID = "3f0c4b8e6d0a4e1b9c7f2a5d8e1b4c7a0d3f6e9b2c5a8d1e4f7a0b3c"
WORKER_ID = "9a8b7c6d5e4f3a2b1c0d9e8f7a6b5c4d3e2f1a0b9c8d7e6f5a4b3c2d"
VERSION = {"version": "4", "ray_version": "2.60.0", "ray_commit": "abc123", "session_name": "session_2026"}


def _row(node_id: str, ip: str, *, head: bool, state: str = "ALIVE") -> dict[str, Any]:
    """One node as Ray 2.60's state API lists it with detail=true."""
    return {
        "node_id": node_id,
        "node_ip": ip,
        "is_head_node": head,
        "state": state,
        "state_message": None,
        "node_name": ip,
        "resources_total": {"CPU": 2.0, "memory": 4294967296.0, "object_store_memory": 1073741824.0, f"node:{ip}": 1.0},
        "labels": {"ray.io/node_id": node_id},
        "start_time_ms": 1767225600000,
        "end_time_ms": 0,
    }


def _listing(rows: Any) -> dict[str, Any]:
    return {
        "result": True,
        "msg": "",
        "data": {"result": {"total": 2, "num_after_truncation": 2, "num_filtered": 2, "result": rows}},
    }


GOOD_ROWS = [_row(HEAD_ID, "10.212.0.11", head=True), _row(WORKER_ID, "10.212.0.12", head=False, state="DEAD")]


def _bytes(value: Any) -> bytes:
    return json.dumps(value).encode()


def test_good_answers_give_a_healthy_view_of_every_node() -> None:
    view = view_from_answers(_bytes(VERSION), _bytes(_listing(GOOD_ROWS)))
    assert view.reachable
    assert view.healthy
    assert view.error is None
    assert view.version == "2.60.0"
    assert view.nodes == (
        RayNodeInfo(
            node_id=HEAD_ID,
            ip="10.212.0.11",
            alive=True,
            is_head=True,
            resources={
                "CPU": 2.0,
                "memory": 4294967296.0,
                "object_store_memory": 1073741824.0,
                "node:10.212.0.11": 1.0,
            },
        ),
        RayNodeInfo(
            node_id=WORKER_ID,
            ip="10.212.0.12",
            alive=False,
            is_head=False,
            resources={
                "CPU": 2.0,
                "memory": 4294967296.0,
                "object_store_memory": 1073741824.0,
                "node:10.212.0.12": 1.0,
            },
        ),
    )
    assert view.summary() == {
        "version": "2.60.0",
        "alive_nodes": 1,
        "cpus": 2.0,
        "gpus": 0.0,
        "memory_bytes": 4294967296,
    }


def test_a_node_without_resources_is_read_as_having_none() -> None:
    row = _row(HEAD_ID, "10.212.0.11", head=True)
    del row["resources_total"]
    view = view_from_answers(_bytes(VERSION), _bytes(_listing([row])))
    assert view.healthy
    assert view.nodes[0].resources == {}


GOOD_VERSION = _bytes(VERSION)
GOOD_NODES = _bytes(_listing(GOOD_ROWS))


def _with_head(**changes: Any) -> bytes:
    return _bytes(_listing([{**_row(HEAD_ID, "10.212.0.11", head=True), **changes}]))


def _with_resources(resources: str) -> bytes:
    """A listing whose head's resources_total is the given JSON text (for numbers json.dumps cannot write)."""
    return _with_head(resources_total="RESOURCES").replace(b'"RESOURCES"', resources.encode())


MALFORMED = [
    # (version body, nodes body, what the error says)
    pytest.param(b"", GOOD_NODES, "/api/version: not JSON", id="empty-version"),
    pytest.param(b"<html><body>502 Bad Gateway</body></html>", GOOD_NODES, "not JSON", id="html-version"),
    pytest.param(b"\xff\xfe\x00garbage", GOOD_NODES, "not JSON", id="binary-version"),
    pytest.param(b"null", GOOD_NODES, "the answer is null, not an object", id="null-version"),
    pytest.param(b'["2.60.0"]', GOOD_NODES, "the answer is a list, not an object", id="list-version"),
    pytest.param(b'"2.60.0"', GOOD_NODES, "the answer is a string, not an object", id="string-version"),
    pytest.param(b"{}", GOOD_NODES, "ray_version is null, not a string", id="no-ray-version"),
    pytest.param(b'{"ray_version": 2.6}', GOOD_NODES, "ray_version is a number, not a string", id="number-version"),
    pytest.param(b'{"ray_version": NaN}', GOOD_NODES, "NaN is not a JSON number", id="nan-version"),
    pytest.param(_bytes({"ray_version": "2." * 200}), GOOD_NODES, "ray_version is longer than", id="long-version"),
    pytest.param(GOOD_VERSION, b"", "/api/v0/nodes: not JSON", id="empty-nodes"),
    pytest.param(GOOD_VERSION, b'{"result": true, "data": {"result": {"result": [', "not JSON", id="cut-off-nodes"),
    pytest.param(GOOD_VERSION, b"[" * 100_000, "not JSON", id="deeply-nested-nodes"),
    pytest.param(GOOD_VERSION, b"null", "the answer is null", id="null-nodes"),
    pytest.param(GOOD_VERSION, b"[]", "the answer is a list", id="list-nodes"),
    pytest.param(
        GOOD_VERSION,
        _bytes({"result": False, "msg": "Failed to query the GCS", "data": {}}),
        "the dashboard reports an error: Failed to query the GCS",
        id="state-api-error",
    ),
    pytest.param(GOOD_VERSION, _bytes({"result": True}), "data is null, not an object", id="no-data"),
    pytest.param(GOOD_VERSION, _bytes({"data": []}), "data is a list, not an object", id="list-data"),
    pytest.param(GOOD_VERSION, _bytes({"data": {"result": None}}), "data.result is null", id="null-listing"),
    pytest.param(GOOD_VERSION, _bytes({"data": {"result": "[]"}}), "data.result is a string", id="string-listing"),
    pytest.param(GOOD_VERSION, _bytes(_listing(None)), "data.result.result is null, not a list", id="null-rows"),
    pytest.param(GOOD_VERSION, _bytes(_listing({"0": {}})), "data.result.result is an object", id="object-rows"),
    pytest.param(GOOD_VERSION, _bytes(_listing([None])), "node 0 is null, not an object", id="null-row"),
    pytest.param(GOOD_VERSION, _bytes(_listing([*GOOD_ROWS, ["x"]])), "node 2 is a list", id="list-row"),
    pytest.param(GOOD_VERSION, _bytes(_listing([HEAD_ID])), "node 0 is a string", id="string-row"),
    pytest.param(GOOD_VERSION, _with_head(node_id=42), "node 0 node_id is a number", id="number-id"),
    pytest.param(GOOD_VERSION, _with_head(node_id=None), "node 0 node_id is null", id="null-id"),
    pytest.param(GOOD_VERSION, _with_head(node_ip=["10.212.0.11"]), "node 0 node_ip is a list", id="list-ip"),
    pytest.param(GOOD_VERSION, _with_head(node_ip="1" * 300), "node 0 node_ip is longer than", id="long-ip"),
    pytest.param(GOOD_VERSION, _with_head(state=1), "node 0 state is a number", id="number-state"),
    pytest.param(GOOD_VERSION, _with_head(is_head_node="true"), "node 0 is_head_node is a string", id="string-head"),
    pytest.param(GOOD_VERSION, _with_head(is_head_node=1), "is_head_node is a number, not a boolean", id="int-head"),
    pytest.param(GOOD_VERSION, _with_head(resources_total=[]), "resources_total is a list", id="list-resources"),
    pytest.param(GOOD_VERSION, _with_head(resources_total=None), "resources_total is null", id="null-resources"),
    pytest.param(
        GOOD_VERSION, _with_head(resources_total={"CPU": "4"}), "resources_total value is a string", id="string-cpu"
    ),
    pytest.param(
        GOOD_VERSION, _with_head(resources_total={"CPU": True}), "resources_total value is a boolean", id="bool-cpu"
    ),
    pytest.param(
        GOOD_VERSION, _with_head(resources_total={"GPU": None}), "resources_total value is null", id="null-gpu"
    ),
    pytest.param(GOOD_VERSION, _with_head(resources_total={"CPU": -2}), "at least 0", id="negative-cpu"),
    pytest.param(GOOD_VERSION, _with_resources('{"CPU": NaN}'), "NaN is not a JSON number", id="nan-cpu"),
    pytest.param(GOOD_VERSION, _with_resources('{"CPU": Infinity}'), "Infinity is not", id="infinite-cpu"),
    pytest.param(GOOD_VERSION, _with_resources('{"memory": 1e400}'), "not a finite amount", id="overflowing-float"),
    pytest.param(GOOD_VERSION, _with_resources('{"memory": 1' + "0" * 400 + "}"), "too large", id="huge-int"),
]


@pytest.mark.parametrize(("version_body", "nodes_body", "said"), MALFORMED)
def test_a_malformed_answer_gives_an_unhealthy_view_that_says_why(
    version_body: bytes, nodes_body: bytes, said: str
) -> None:
    view = view_from_answers(version_body, nodes_body)
    assert view.reachable  # the dashboard answered
    assert not view.healthy
    assert view.nodes == ()
    assert view.error is not None
    assert said in view.error
    assert len(view.error) <= 300


def test_the_error_of_a_long_dashboard_message_stays_short() -> None:
    answer = _bytes({"result": False, "msg": "Traceback (most recent call last):\n" * 10_000, "data": {}})
    view = view_from_answers(GOOD_VERSION, answer)
    assert view.error is not None
    assert view.error.startswith("unexpected answer from /api/v0/nodes: the dashboard reports an error: Traceback")
    assert len(view.error) == 300


def test_refused_names_the_path_and_status_and_the_dashboards_own_message() -> None:
    body = _bytes({"result": False, "msg": "Rate limit exceeded", "data": {}})
    assert refused("/api/v0/nodes", 429, body) == RayView(
        reachable=True, healthy=False, error="/api/v0/nodes answered HTTP 429: Rate limit exceeded"
    )
    html = refused("/api/version", 502, b"<html>Bad Gateway</html>")
    assert html.error == "/api/version answered HTTP 502"
    assert not html.healthy


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=10), children, max_size=4),
    max_leaves=20,
)
NODE_FIELDS = ["node_id", "node_ip", "is_head_node", "state", "resources_total"]


def _assert_consistent(view: RayView) -> None:
    """A view is either healthy with well-typed nodes, or unhealthy with an error and no nodes."""
    assert view.reachable
    if view.healthy:
        assert view.error is None
        assert isinstance(view.version, str)
        for node in view.nodes:
            assert isinstance(node.node_id, str)
            assert isinstance(node.ip, str)
            assert isinstance(node.alive, bool)
            assert isinstance(node.is_head, bool)
            assert all(isinstance(v, float) and math.isfinite(v) and v >= 0 for v in node.resources.values())
        json.dumps(view.summary(), allow_nan=False)  # the cluster's status can carry it
    else:
        assert view.error
        assert view.nodes == ()


@settings(max_examples=300, deadline=None)
@given(value=JSON_VALUES, level=st.sampled_from(["answer", "data", "listing", "rows", "row", *NODE_FIELDS]))
def test_any_json_at_any_level_gives_a_consistent_view(value: Any, level: str) -> None:
    answer: Any = _listing([_row(HEAD_ID, "10.212.0.11", head=True)])
    if level == "answer":
        answer = value
    elif level == "data":
        answer["data"] = value
    elif level == "listing":
        answer["data"]["result"] = value
    elif level == "rows":
        answer["data"]["result"]["result"] = value
    elif level == "row":
        answer["data"]["result"]["result"] = [value]
    else:
        answer["data"]["result"]["result"][0][level] = value
    _assert_consistent(view_from_answers(GOOD_VERSION, _bytes(answer)))
    _assert_consistent(view_from_answers(_bytes(value), GOOD_NODES))


@settings(max_examples=200, deadline=None)
@given(version=st.binary(max_size=64), nodes=st.binary(max_size=256))
def test_any_bytes_give_a_consistent_view(version: bytes, nodes: bytes) -> None:
    _assert_consistent(view_from_answers(version, nodes))
