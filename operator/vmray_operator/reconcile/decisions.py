"""What one reconcile of a running cluster does, from what is known: render, plan, roll. Pure.

The controller gathers the inputs (what the watches saw, the Secrets the spec names, Ray's view), calls decide(),
asks the API whether the VM prerequisites exist only when the decision creates or replaces a VM, carries the
actions out and writes the status the decision's problems and rollout describe."""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from vmray_operator.api.models import DeletionPolicy
from vmray_operator.ray.view import RayView
from vmray_operator.reconcile.metrics_targets import metrics_actions
from vmray_operator.reconcile.observed import Observed
from vmray_operator.reconcile.plan import Action, Create, Drain, Kind, plan
from vmray_operator.reconcile.rollout import NodeReadiness, Rollout, rollout
from vmray_operator.render.api_server import api_server_problem
from vmray_operator.render.context import ClusterContext
from vmray_operator.render.desired import DesiredState, desired_state
from vmray_operator.timestamps import parse


@dataclass(frozen=True)
class Decision:
    problems: list[str]  # what is wrong with the spec (the SpecValid condition), each naming its field
    actions: list[Action] = field(default_factory=list)
    desired: DesiredState | None = None  # None: the cluster's nodes cannot be rendered, nothing is changed
    rollout: Rollout | None = None  # None while nothing can be rendered: whether VMs are outdated is not known
    # The scrape targets, published after the status is written: a VM's new address shows in the status
    # without waiting for the EndpointSlice that names it.
    published: list[Action] = field(default_factory=list)

    @property
    def changes_vms(self) -> bool:
        """Whether it makes a VM or takes one away for its replacement: both need the VM prerequisites."""
        started = self.rollout is not None and self.rollout.start is not None
        return started or any(isinstance(a, Create) and a.kind is Kind.VM for a in self.actions)

    def without_vm_changes(self) -> list[Action]:
        """The actions but those that make a VM or start a replacement (while a prerequisite is missing)."""
        start = self.rollout.start if self.rollout else None
        return [a for a in self.actions if not (a.kind is Kind.VM and (isinstance(a, Create) or a.name == start))]


def decide(
    ctx: ClusterContext,
    observed: Observed,
    problems: list[str],
    blocked: bool,
    drain: Drain,
    readiness: NodeReadiness,
) -> Decision:
    """problems: the spec's problems found so far; blocked: whether one of them (or a missing Secret the spec
    names) keeps the nodes from being rendered at all."""
    api_problem = api_server_problem(ctx)
    if api_problem:
        return Decision([*problems, api_problem])
    if blocked:
        return Decision(problems)
    desired = desired_state(ctx)
    if desired.oversized:
        return Decision([*problems, *desired.oversized])
    return Decision(
        problems,
        plan(desired, observed, drain, readiness),
        desired,
        rollout(desired, observed, readiness),
        metrics_actions(desired, observed),
    )


# How long a deletion with the guard waits for Ray's first answer before it takes Ray's silence for no jobs.
FIRST_ANSWER_WAIT = 30.0


@dataclass(frozen=True)
class JobsGuard:
    """A deletion that waits for Ray's jobs: which run (none known yet: Ray has not answered), until when."""

    jobs: tuple[str, ...]
    deadline: datetime.datetime


def deletion_waits(
    policy: DeletionPolicy, view: RayView | None, deleted_at: str, now: datetime.datetime
) -> JobsGuard | None:
    """Whether a deletion waits for running jobs (deletion_policy.wait_for_jobs), at most max_wait_minutes. A Ray
    that cannot answer runs nothing it could tell of: the deletion goes on."""
    started = parse(deleted_at)
    deadline = started + datetime.timedelta(minutes=policy.max_wait_minutes)
    if not policy.wait_for_jobs or now >= deadline:
        return None
    if view is None:
        return JobsGuard((), deadline) if (now - started).total_seconds() < FIRST_ANSWER_WAIT else None
    if not view.healthy or view.activity is None or not view.activity.active_jobs:
        return None
    return JobsGuard(view.activity.active_jobs, deadline)


def overdue(deleted_at: str, now: datetime.datetime, timeout: float) -> bool:
    """Whether a deletion started at deleted_at (its deletionTimestamp) has waited longer than timeout seconds:
    then the VMs still there are reported as stuck."""
    return (now - parse(deleted_at)).total_seconds() > timeout
