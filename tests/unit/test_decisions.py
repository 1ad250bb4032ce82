"""One reconcile's decision: nothing is rendered or changed while the spec cannot be, and the problems say why."""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any

from tests.support.specs import context, sample_spec
from vmray_operator.api.models import MAX_COMMAND_LENGTH, MAX_COMMANDS
from vmray_operator.reconcile.decisions import Decision, decide
from vmray_operator.reconcile.observed import Observed
from vmray_operator.reconcile.plan import Create, Drain, Kind
from vmray_operator.reconcile.rollout import VM_LEVEL
from vmray_operator.render.context import ClusterContext, OperatorDefaults

DRAIN = Drain(datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC), 60.0)


def _decide(ctx: ClusterContext, problems: list[str] | None = None, blocked: bool = False) -> Decision:
    return decide(ctx, Observed(), list(problems or []), blocked, DRAIN, VM_LEVEL)


def _with(**spec: Any) -> ClusterContext:
    return context(sample_spec(**spec))


def test_a_renderable_cluster_is_planned_from_scratch() -> None:
    decision = _decide(context())
    assert decision.problems == []
    assert decision.desired is not None
    assert decision.rollout is not None
    assert decision.changes_vms
    assert any(isinstance(a, Create) and a.kind is Kind.VM for a in decision.actions)
    assert not any(a.kind is Kind.VM for a in decision.without_vm_changes())


def test_an_empty_location_without_a_default_is_a_problem_naming_the_field_and_changes_nothing() -> None:
    ctx = _with(api_server={})
    assert ctx.defaults == OperatorDefaults()
    decision = _decide(ctx, problems=["autoscaler_desired_workers: earlier problem"])
    assert decision.problems[0] == "autoscaler_desired_workers: earlier problem"
    assert decision.problems[1].startswith("spec.api_server.location is empty")
    assert "supervisor.apiServerLocation" in decision.problems[1]
    assert (decision.actions, decision.desired, decision.rollout) == ([], None, None)
    assert not decision.changes_vms


def test_the_operators_default_location_fills_an_empty_one() -> None:
    ctx = dataclasses.replace(_with(api_server={}), defaults=OperatorDefaults(api_server_location="10.0.0.5"))
    assert _decide(ctx).problems == []


def test_an_unusable_location_is_named_with_why() -> None:
    decision = _decide(_with(api_server={"location": "http://10.0.0.5:6443"}))
    assert len(decision.problems) == 1
    assert decision.problems[0].startswith("spec.api_server.location 'http://10.0.0.5:6443' is not usable")
    assert decision.actions == []


def test_a_blocked_cluster_keeps_its_problems_and_changes_nothing() -> None:
    decision = _decide(context(), problems=["common_node_config.vm_password_secret: ..."], blocked=True)
    assert decision.problems == ["common_node_config.vm_password_secret: ..."]
    assert (decision.actions, decision.desired) == ([], None)


def test_user_data_larger_than_a_secret_is_a_problem_naming_the_largest_field() -> None:
    commands = [f"echo {i:03d} " + "x" * (MAX_COMMAND_LENGTH - 10) for i in range(MAX_COMMANDS)]
    head = {"node_type": "ray.head.default", "port": 6245, "setup_commands": commands, "head_setup_commands": commands}
    decision = _decide(
        _with(
            head_node=head,
            common_node_config={
                **sample_spec().common_node_config.model_dump(exclude_none=True),
                "setup_commands": commands,
            },
        )
    )
    assert decision.actions == []
    (problem,) = decision.problems
    assert problem.startswith("the cloud-init user-data of the head node (type ray.head.default) is ")
    assert "largest part is " in problem
