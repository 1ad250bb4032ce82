"""One reconcile of one cluster: read what the watches saw, let reconcile/ decide, act through kube/, write the
status reconcile/ computes."""

from __future__ import annotations

import datetime
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass

from pydantic import ValidationError

from vmray_operator.api import contract
from vmray_operator.api.contract import Body, Reason
from vmray_operator.api.models import VMRayClusterSpec
from vmray_operator.config import Settings
from vmray_operator.controller.applier import Applied, Applier, RefusalCounter, held, is_refusal, refusal_of
from vmray_operator.controller.certifier import Certifier
from vmray_operator.controller.ownership import NameTaken
from vmray_operator.controller.rayprobe import RayProber
from vmray_operator.controller.recent import RecentWrites
from vmray_operator.controller.status_writer import StatusWriter
from vmray_operator.controller.stores import Key, Stores
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import ApiError, Conflict, Kube, NotFound
from vmray_operator.kube.events import EventRecorder
from vmray_operator.kube.prerequisites import PrerequisiteChecker
from vmray_operator.logs import key_text
from vmray_operator.ray.view import RayView
from vmray_operator.reconcile.adoption import adoption_patch, own_spec_patch
from vmray_operator.reconcile.decisions import Decision, JobsGuard, decide, deletion_waits, overdue
from vmray_operator.reconcile.observed import Observed, issued_token, load_balancer_ip, secret_value
from vmray_operator.reconcile.plan import Action, Drain, Kind, deletion_plan, draining
from vmray_operator.reconcile.refusals import retry_after
from vmray_operator.reconcile.rollout import NodeReadiness
from vmray_operator.reconcile.schedule import (
    TierState,
    closed_types,
    drain_budgets,
    next_change,
    schedule_problems,
    tier_states,
)
from vmray_operator.reconcile.spec_checks import nounce_problem, without_foreign_workers
from vmray_operator.reconcile.status import StatusInput, compute_status, invalid_status
from vmray_operator.reconcile.suspension import idle_since, idle_suspend_in, suspend_patch, suspended_by_idle
from vmray_operator.reconcile.user_secrets import UserSecrets, read_user_secrets, referenced_secret_names
from vmray_operator.render import names, ray_auth
from vmray_operator.render.context import ClusterContext, OperatorDefaults, dashboard_url
from vmray_operator.render.names import ClusterSecret
from vmray_operator.timestamps import rfc3339, utc_now

log = logging.getLogger("vmray.reconcile")
DELETION_POLL = 2.0
JOBS_POLL = 5.0  # a deletion that waits for Ray's jobs looks at them again after this many seconds
DRAIN_POLL = 5.0  # a draining VM is looked at again after this many seconds (its events come too)
# Seconds between looks at an object name an earlier cluster of the same name still holds (Kubernetes collects it).
NAME_HELD_RECHECK = 2.0


def _alive(view: RayView | None, prober: RayProber | None) -> frozenset[str] | None:
    """The addresses of the nodes Ray reports alive; None when Ray is not asked (then an address is up enough).
    With Ray asked, nothing is alive before Ray has answered."""
    if prober is None:
        return None
    return frozenset(n.ip for n in view.nodes if n.alive) if view is not None else frozenset()


def _asks_activity(spec: VMRayClusterSpec) -> bool:
    """Whether Ray is asked what runs on it (jobs, tasks, actors): for idle suspension and the deletion guard."""
    return spec.idle_suspend_minutes is not None or spec.deletion_policy.wait_for_jobs


def _ray_token(observed: Observed, cluster: str) -> str | None:
    """Ray's token of the cluster, from the Secret the operator made once (None before it exists)."""
    return secret_value(observed.secrets.get(ClusterSecret.RAY_TOKEN.of(cluster)), ray_auth.TOKEN_KEY)


def _soonest(*seconds: float | None) -> float | None:
    """The first of several times to look again (None: none is due)."""
    due = [s for s in seconds if s is not None]
    return min(due) if due else None


@dataclass(frozen=True)
class _Round:
    """What one reconcile of a running cluster knows before it decides."""

    body: Body
    ctx: ClusterContext
    observed: Observed
    referenced: UserSecrets
    problems: list[str]
    blocked: bool  # the nodes cannot be rendered (a Secret the spec names is missing or invalid, a bad nounce)
    ray_view: RayView | None
    ray_token: str | None
    tiers: dict[str, TierState]
    now: datetime.datetime
    idle_since: str | None
    previous: Body

    def timers(self) -> tuple[float | None, float | None]:
        """Seconds until a tier changes state, and until an idle cluster is due to be suspended."""
        return next_change(self.tiers, self.now), idle_suspend_in(self.ctx.spec, self.idle_since, self.now)


def random_suffix() -> str:
    return "".join(secrets.choice(names.SUFFIX_ALPHABET) for _ in range(names.SUFFIX_LENGTH))


class Reconciler:
    def __init__(
        self,
        kube: Kube,
        stores: Stores,
        settings: Settings,
        vmop_version: str,
        events: EventRecorder | None = None,
        clock: Callable[[], datetime.datetime] = utc_now,
        suffix: Callable[[], str] = random_suffix,
        prober: RayProber | None = None,
    ) -> None:
        self.prober = prober
        self.kube = kube
        self.stores = stores
        self.settings = settings
        self.vmop_version = vmop_version
        self.events = events or EventRecorder(kube)
        self.clock = clock
        self.suffix = suffix
        self.prerequisites = PrerequisiteChecker(kube, vmop_version)
        self.certifier = Certifier(kube)
        self.recent = RecentWrites()
        self.applier = Applier(kube, vmop_version, self.events, self.recent)
        self.status = StatusWriter(kube, self.events, clock)
        self._refusals = RefusalCounter()  # refused writes in a row, by cluster: how long to wait before the next try
        self._late_refusals: dict[Key, list[str]] = {}  # refused after the status was written: told with the next

    def _forget(self, key: Key) -> None:
        self.status.forget(key)
        self._refusals.clear(key)
        self._late_refusals.pop(key, None)
        self.certifier.forget(*key)
        self.recent.forget(key)
        if self.prober:
            self.prober.forget(key)

    async def reconcile(self, key: Key) -> float | None:
        body = self.stores.cluster(key)
        if body is None:
            self._forget(key)
            return None
        try:
            spec = VMRayClusterSpec.model_validate(body.get("spec") or {})
        except ValidationError as error:
            # The API server validates first; this only happens to objects stored under an older schema.
            generation = int(body["metadata"].get("generation", 0))
            status = invalid_status(self.status.previous(key, body), str(error), rfc3339(self.clock()), generation)
            await self.status.write(key, body, status)
            return None
        if body["metadata"].get("deletionTimestamp"):
            return await self._finalize(key, body, spec)
        tiers = tier_states(spec, self.clock())
        closed = closed_types(tiers)
        patch = adoption_patch(body, spec, self.suffix, closed) or own_spec_patch(body, spec, closed)
        if patch is not None:
            return await self._patch_cluster(key, patch)
        return await self._converge(key, body, spec, tiers)

    async def _patch_cluster(self, key: Key, patch: Body) -> float | None:
        """The operator's own write to a cluster (adoption, a closed tier's workers, suspension): the update event
        brings the cluster back here."""
        try:
            await self.kube.patch(r.VMRAYCLUSTERS, key[1], patch, key[0])
        except (Conflict, NotFound):
            return 0.5  # changed or gone meanwhile: the watch brings the new version
        return None

    async def _gather(self, key: Key, body: Body, spec: VMRayClusterSpec, tiers: dict[str, TierState]) -> _Round:
        """What this reconcile knows of the cluster: what the watches saw, the Secrets its spec names, Ray's view."""
        namespace, name = key
        observed = self.stores.observed(key)
        spec, problems = without_foreign_workers(spec, name)
        referenced = read_user_secrets(spec, await self.prerequisites.secrets(namespace, referenced_secret_names(spec)))
        nounce = body["metadata"]["labels"][contract.HEAD_NOUNCE_LABEL]
        bad_nounce = nounce_problem(name, nounce)
        problems += [*referenced.invalid, *([bad_nounce] if bad_nounce else []), *schedule_problems(spec)]
        ray_token = _ray_token(observed, name)
        ctx = self._context(body, spec, nounce, observed, referenced, ray_token, closed_types(tiers))
        now = self.clock()
        ray_view = self._probe(key, ctx, ray_token, observed)
        previous = self.status.previous(key, body)
        idle = idle_since(ctx.spec, previous.get("idle_since"), ray_view, now)
        blocked = bool(referenced.missing or referenced.invalid or bad_nounce)
        return _Round(
            body, ctx, observed, referenced, problems, blocked, ray_view, ray_token, tiers, now, idle, previous
        )

    async def _converge(
        self, key: Key, body: Body, spec: VMRayClusterSpec, tiers: dict[str, TierState]
    ) -> float | None:
        known = await self._gather(key, body, spec, tiers)
        if idle_suspend_in(known.ctx.spec, known.idle_since, known.now) == 0:
            self.events.emit(body, "Normal", Reason.IDLE, f"Ray was idle since {known.idle_since}: suspending")
            return await self._patch_cluster(key, suspend_patch(body))
        decision = decide(
            known.ctx,
            known.observed,
            known.problems,
            known.blocked,
            Drain(known.now, self.settings.drain_timeout, drain_budgets(known.ctx.spec)),
            NodeReadiness(_alive(known.ray_view, self.prober), known.now, self.settings.rollout_node_timeout),
        )
        actions, missing = decision.actions, list(known.referenced.missing)
        if decision.changes_vms:
            missing += await self.prerequisites.missing(key[0], known.ctx.spec)
            if missing:  # no VM is made, and none is taken away to be replaced, until they exist
                actions = decision.without_vm_changes()
        actions, recheck = self.recent.without_recent(key, body["metadata"]["uid"], actions, known.observed)
        applied = await self.applier.apply(body, actions)
        refused = [*applied.refused, *self._late_refusals.pop(key, [])]
        certify = known.ctx.spec.enable_tls and decision.desired
        tls_ca = await self._ensure_ca(known.ctx, known.observed, refused) if certify else None
        deferred = await self.status.write(
            key, body, compute_status(self._status(known, decision, missing, tls_ca, refused))
        )
        later, later_recheck = await self._after_status(key, body, known, decision.published, tls_ca)
        refused += later.refused
        if refused:
            return retry_after(self._refusals.count(key, body["metadata"]["uid"]))
        self._refusals.clear(key)
        if applied.held or later.held or (certify and tls_ca is None):
            return NAME_HELD_RECHECK  # an earlier cluster of this name still holds one of this one's names
        if missing or decision.desired is None:  # looked at again: a Secret the spec names may be fixed
            return self.settings.dependency_recheck
        draining_poll = DRAIN_POLL if draining(known.observed) else None
        return _soonest(deferred, recheck, later_recheck, draining_poll, *known.timers())

    async def _after_status(
        self, key: Key, body: Body, known: _Round, published: list[Action], tls_ca: str | None
    ) -> tuple[Applied, float | None]:
        """What follows the status write, so that a VM's new address shows without waiting for it: the nodes'
        certificates and the published scrape targets. A refusal is told with the next status; returns what was
        refused or held, and when to look again for a write the watch has not shown yet."""
        refused = await self._ensure_certificates(known.ctx, known.observed) if tls_ca else []
        published, recheck = self.recent.without_recent(key, body["metadata"]["uid"], published, known.observed)
        applied = await self.applier.apply(body, published)
        refused += applied.refused
        if refused:
            self._late_refusals[key] = refused
        return Applied(refused, applied.held), recheck

    def _status(
        self, known: _Round, decision: Decision, missing: list[str], tls_ca: str | None, refused: list[str]
    ) -> StatusInput:
        ctx, step, name = known.ctx, decision.rollout, known.ctx.name
        return StatusInput(
            spec=ctx.spec,
            generation=int(known.body["metadata"].get("generation", 0)),
            head_name=names.head_vm_name(name, ctx.nounce),
            observed=known.observed,
            previous=known.previous,
            now=rfc3339(known.now),
            missing=missing,
            invalid=decision.problems,
            probe_ray=self.prober is not None,
            ray=known.ray_view,
            outdated=list(step.outdated) if step else None,
            rollout_stalled=step.stalled if step else None,
            auth_token_secret=ClusterSecret.RAY_TOKEN.of(name)
            if known.ray_token and ctx.spec.enable_token_auth
            else None,
            client_tls_secret=tls_ca and ClusterSecret.RAY_CLIENT.of(name),
            tls_ca=tls_ca,
            refused=refused,
            suspended_by_idle=suspended_by_idle(known.body),
            tiers=known.tiers,
            idle_since=known.idle_since,
        )

    def _context(
        self,
        body: Body,
        spec: VMRayClusterSpec,
        nounce: str,
        observed: Observed,
        referenced: UserSecrets,
        ray_token: str | None,
        closed: frozenset[str],
    ) -> ClusterContext:
        meta = body["metadata"]
        token_secret = observed.secrets.get(ClusterSecret.SA_TOKEN.of(meta["name"]))
        return ClusterContext(
            name=meta["name"],
            namespace=meta["namespace"],
            uid=meta["uid"],
            spec=spec,
            nounce=nounce,
            vmop_api_version=self.vmop_version,
            head_address=load_balancer_ip(observed.service),
            defaults=OperatorDefaults(self.settings.api_server_location, self.settings.api_server_ca_cert),
            cluster_token=issued_token(token_secret),
            cluster_root_ca=secret_value(token_secret, "ca.crt"),
            created_by=meta["labels"].get(contract.CREATED_BY_LABEL),
            password_hash=referenced.password_hash,
            registry_credentials=referenced.registry,
            new_ray_token=None if ray_token else secrets.token_hex(ray_auth.TOKEN_BYTES),
            suspended=spec.suspend,
            closed_types=closed,
        )

    def _probe(self, key: Key, ctx: ClusterContext, ray_token: str | None, observed: Observed) -> RayView | None:
        """Ray's latest view of the cluster, from the poller this keeps pointed at the head's dashboard."""
        if self.prober is None:
            return None
        if ctx.spec.suspend:  # the head is powered off: nothing to ask, and a resumed Ray starts afresh
            self.prober.forget(key)
            return None
        expected = observed.vm_addresses()
        return self._ask_ray(key, ctx.spec, ctx.head_address, ray_token, _asks_activity(ctx.spec), expected)

    def _ask_ray(
        self,
        key: Key,
        spec: VMRayClusterSpec,
        head_address: str | None,
        ray_token: str | None,
        activity: bool,
        expected: frozenset[str] = frozenset(),
    ) -> RayView | None:
        """Points the cluster's poller at its head's dashboard (with Ray's token when the cluster asks for one)
        and returns Ray's latest view; expected: the addresses of the VMs whose Ray nodes should be alive."""
        assert self.prober is not None
        dashboard = dashboard_url(head_address) if head_address else None
        self.prober.watch(key, dashboard, ray_token if spec.enable_token_auth else None, activity, expected)
        return self.prober.view(key)

    async def _ensure_ca(self, ctx: ClusterContext, observed: Observed, refused: list[str]) -> str | None:
        """The cluster's CA Secret, made when missing (None while it cannot be); a refusal is added to refused."""
        try:
            return await self.certifier.ensure_ca(ctx, observed)
        except (ApiError, NameTaken) as error:
            if is_refusal(error):
                refused.append(refusal_of(Kind.SECRET, ClusterSecret.CA.of(ctx.name), error))
            elif not held(error):  # an earlier namesake's CA goes in seconds
                raise
            return None

    async def _ensure_certificates(self, ctx: ClusterContext, observed: Observed) -> list[str]:
        """Issues the nodes' certificates; returns a refusal."""
        try:
            await self.certifier.ensure(ctx, observed, names.head_vm_name(ctx.name, ctx.nounce))
        except (ApiError, NameTaken) as error:
            if held(error):
                return []  # looked at again with the next reconcile
            if not is_refusal(error):
                raise
            return [refusal_of(Kind.SECRET, ClusterSecret.CERTIFICATES.of(ctx.name), error)]
        return []

    async def _finalize(self, key: Key, body: Body, spec: VMRayClusterSpec) -> float | None:
        meta = body["metadata"]
        if contract.FINALIZER not in (meta.get("finalizers") or []):
            if self.prober:
                self.prober.forget(key)
            return None
        observed = self.stores.observed(key)
        if not observed.vms and observed.service is None and not observed.secrets:
            return await self._release(key, body)
        now = self.clock()
        guard = self._jobs_guard(key, spec, observed, meta["deletionTimestamp"])
        actions = [] if guard else deletion_plan(observed, Drain(now, self.settings.drain_timeout, drain_budgets(spec)))
        applied = await self.applier.apply(body, actions)
        stuck = overdue(meta["deletionTimestamp"], now, self.settings.deletion_timeout)
        status = StatusInput(
            spec=spec,
            generation=int(meta.get("generation", 0)),
            head_name=names.head_vm_name(meta["name"], (meta.get("labels") or {}).get(contract.HEAD_NOUNCE_LABEL, "")),
            observed=observed,
            previous=self.status.previous(key, body),
            now=rfc3339(now),
            deleting=True,
            deletion_stuck=sorted(observed.vms) if stuck and not guard else [],
            refused=applied.refused,
            waiting_for_jobs=guard,
        )
        await self.status.write(key, body, compute_status(status))
        if applied.refused:
            return max(DELETION_POLL, retry_after(self._refusals.count(key, meta["uid"])))
        return JOBS_POLL if guard else DELETION_POLL

    def _jobs_guard(self, key: Key, spec: VMRayClusterSpec, observed: Observed, deleted_at: str) -> JobsGuard | None:
        """Whether a deletion waits for Ray's running jobs (deletion_policy.wait_for_jobs): asked of Ray while its
        head has an address; with no Ray to ask, or once it may go on, the deletion goes on and Ray is not asked."""
        head = load_balancer_ip(observed.service)
        if self.prober is None or not spec.deletion_policy.wait_for_jobs or spec.suspend or head is None:
            guard = None
        else:
            view = self._ask_ray(key, spec, head, _ray_token(observed, key[1]), activity=True)
            guard = deletion_waits(spec.deletion_policy, view, deleted_at, self.clock())
        if guard is None and self.prober:
            self.prober.forget(key)
        return guard

    async def _release(self, key: Key, body: Body) -> float | None:
        """Every object of the cluster is gone: its finalizer goes, and with it the cluster."""
        meta = body["metadata"]
        remaining = [f for f in meta["finalizers"] if f != contract.FINALIZER]
        patch = {"metadata": {"finalizers": remaining, "resourceVersion": meta["resourceVersion"]}}
        try:
            await self.kube.patch(r.VMRAYCLUSTERS, key[1], patch, key[0])
        except (Conflict, NotFound):
            return 0.5
        log.info("cluster %s: every VM is gone; finalizer removed", key_text(key))
        return None
