"""One reconcile of one cluster: read what the watches saw, plan, act through kube/, write status."""

from __future__ import annotations

import asyncio
import datetime
import logging
import secrets
import time
from collections.abc import Callable

from pydantic import ValidationError

from vmray_operator import metrics
from vmray_operator.api.models import VMRayClusterSpec
from vmray_operator.config import Settings
from vmray_operator.controller.certifier import Certifier
from vmray_operator.controller.own_writes import OwnWrites, version
from vmray_operator.controller.ownership import NameTaken, create_owned
from vmray_operator.controller.rayprobe import RayProber
from vmray_operator.controller.recent import RecentCreations
from vmray_operator.controller.stores import Key, Stores
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import ApiError, Body, Conflict, Kube, NotFound
from vmray_operator.kube.events import EventRecorder
from vmray_operator.kube.prerequisites import PrerequisiteChecker
from vmray_operator.ray.view import RayView
from vmray_operator.reconcile.adoption import adoption_patch
from vmray_operator.reconcile.conditions import find
from vmray_operator.reconcile.decisions import decide
from vmray_operator.reconcile.diff import merge_patch
from vmray_operator.reconcile.observed import Observed, issued_token, load_balancer_ip, secret_value
from vmray_operator.reconcile.plan import Action, Create, Delete, Drain, Kind, Update, deletion_plan, draining
from vmray_operator.reconcile.refusals import refusal, retry_after
from vmray_operator.reconcile.rollout import NodeReadiness
from vmray_operator.reconcile.spec_checks import nounce_problem, without_foreign_workers
from vmray_operator.reconcile.status import (
    PROGRESS_REASONS,
    ROLLOUT_STALLED,
    StatusInput,
    compute_status,
    progress_only,
)
from vmray_operator.reconcile.user_secrets import UserSecrets, read_user_secrets, referenced_secret_names
from vmray_operator.render import identity, names, ray_auth, tls
from vmray_operator.render.context import RAY_DASHBOARD_PORT, ClusterContext, OperatorDefaults

log = logging.getLogger("vmray.reconcile")
DELETION_POLL = 2.0
DRAIN_POLL = 5.0  # a draining VM is looked at again after this many seconds (its events come too)
# A status change that is only a step of the way up (see status.progress_only) is written once this many
# seconds have passed since the cluster's last status write, or earlier with the next news (a VM created,
# an IP, a VM or Ray running, a failure), which is always written at once.
PROGRESS_WRITE_INTERVAL = 5.0
# Seconds between looks at an object name an earlier cluster of the same name still holds (Kubernetes collects it).
NAME_HELD_RECHECK = 2.0


def _alive(view: RayView | None, prober: RayProber | None) -> frozenset[str] | None:
    """The addresses of the nodes Ray reports alive; None when Ray is not asked (then an address is up enough).
    With Ray asked, nothing is alive before Ray has answered."""
    if prober is None:
        return None
    return frozenset(n.ip for n in view.nodes if n.alive) if view is not None else frozenset()


def _is_refusal(error: BaseException) -> bool:
    """Whether the API server refused a write for a reason the cluster's owner should hear of (a webhook, a
    policy, a quota, invalid content, a name held by another owner); a conflict or throttling is only retried."""
    if isinstance(error, NameTaken):
        return not error.earlier  # an earlier namesake's object goes by itself: waited for, not told
    return isinstance(error, ApiError) and error.status not in (409, 429)


def _words(error: BaseException) -> str:
    """What the API server said (not our own prefix of status and reason)."""
    return error.message if isinstance(error, ApiError) else str(error)


def random_suffix() -> str:
    return "".join(secrets.choice(names.SUFFIX_ALPHABET) for _ in range(names.SUFFIX_LENGTH))


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _timestamp(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


class RefusalCounter:
    """How many reconciles in a row had a write refused, per cluster (a new cluster of the same name starts anew)."""

    def __init__(self) -> None:
        self._counts: dict[Key, tuple[str, int]] = {}

    def count(self, key: Key, body: Body) -> int:
        """Counts one more refusal; the number in a row."""
        uid = str(body["metadata"].get("uid", ""))
        previous_uid, previous = self._counts.get(key, (uid, 0))
        count = (previous if previous_uid == uid else 0) + 1
        self._counts[key] = (uid, count)
        return count

    def clear(self, key: Key) -> None:
        self._counts.pop(key, None)


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
        self.recent = RecentCreations()
        self._status_written: OwnWrites[Body] = OwnWrites()  # by cluster
        self._refusals = RefusalCounter()  # refused writes in a row, by cluster: how long to wait before the next try
        self._late_refusals: dict[Key, list[str]] = {}  # refused after the status was written: told with the next
        self._resources = {
            Kind.VM: r.VIRTUAL_MACHINES.at_version(vmop_version),
            Kind.SERVICE: r.VIRTUAL_MACHINE_SERVICES.at_version(vmop_version),
            Kind.SECRET: r.SECRETS,
            Kind.CONFIG_MAP: r.CONFIG_MAPS,
            Kind.TOKEN_SECRET: r.SECRETS,
            Kind.SERVICE_ACCOUNT: r.SERVICE_ACCOUNTS,
            Kind.ROLE: r.ROLES,
            Kind.ROLE_BINDING: r.ROLE_BINDINGS,
        }

    async def reconcile(self, key: Key) -> float | None:
        body = self.stores.cluster(key)
        if body is None:
            self._status_written.forget(key)
            self._refusals.clear(key)
            self._late_refusals.pop(key, None)
            self.certifier.forget(*key)
            self.recent.forget(key)
            if self.prober:
                self.prober.forget(key)
            return None
        try:
            spec = VMRayClusterSpec.model_validate(body.get("spec") or {})
        except ValidationError as error:
            # The API server validates first; this only happens to objects stored under an older schema.
            await self._write_invalid(body, str(error))
            return None
        if body["metadata"].get("deletionTimestamp"):
            return await self._finalize(key, body, spec)
        patch = adoption_patch(body, spec, self.suffix)
        if patch is not None:
            try:
                await self.kube.patch(r.VMRAYCLUSTERS, key[1], patch, key[0])
            except (Conflict, NotFound):
                return 0.5  # changed or gone meanwhile: the watch brings the new version
            return None  # the update event brings the adopted object back here
        return await self._converge(key, body, spec)

    async def _converge(self, key: Key, body: Body, spec: VMRayClusterSpec) -> float | None:
        namespace, name = key
        observed = self.stores.observed(key)
        spec, problems = without_foreign_workers(spec, name)
        referenced = read_user_secrets(spec, await self.prerequisites.secrets(namespace, referenced_secret_names(spec)))
        nounce = body["metadata"]["labels"][names.HEAD_NOUNCE_LABEL]
        bad_nounce = nounce_problem(name, nounce)
        problems += [*referenced.invalid, *([bad_nounce] if bad_nounce else [])]
        ray_token = secret_value(observed.secrets.get(ray_auth.auth_secret_name(name)), ray_auth.TOKEN_KEY)
        ctx = self._context(body, spec, nounce, observed, referenced, ray_token)
        ray_view = self._probe(key, ctx, ray_token)
        decision = decide(
            ctx,
            observed,
            problems,
            blocked=bool(referenced.missing or referenced.invalid or bad_nounce),
            drain=Drain(self.clock(), self.settings.drain_timeout),
            readiness=NodeReadiness(_alive(ray_view, self.prober), self.clock(), self.settings.rollout_node_timeout),
        )
        actions, missing = decision.actions, list(referenced.missing)
        if decision.changes_vms:
            missing += await self.prerequisites.missing(namespace, spec)
            if missing:  # no VM is made, and none is taken away to be replaced, until they exist
                actions = decision.without_vm_changes()
        actions, recheck = self.recent.without_recent(key, body["metadata"]["uid"], actions, observed)
        refused, held = await self._apply(body, actions)
        refused += self._late_refusals.pop(key, [])
        certify = spec.enable_tls and decision.desired is not None
        tls_ca = await self._ensure_ca(ctx, observed, refused) if certify else None
        step = decision.rollout
        status = compute_status(
            StatusInput(
                spec=spec,
                generation=int(body["metadata"].get("generation", 0)),
                head_name=names.head_vm_name(name, ctx.nounce),
                observed=observed,
                previous=self._previous_status(key, body),
                now=_timestamp(self.clock()),
                missing=missing,
                invalid=decision.problems,
                probe_ray=self.prober is not None,
                ray=ray_view,
                outdated=list(step.outdated) if step else None,
                rollout_stalled=step.stalled if step else None,
                auth_token_secret=ray_auth.auth_secret_name(name) if ray_token and spec.enable_token_auth else None,
                client_tls_secret=tls_ca and tls.client_secret_name(name),
                tls_ca=tls_ca,
                refused=refused,
            )
        )
        deferred = await self._write_status(key, body, status)
        if tls_ca:  # after the status: a VM's new address shows without waiting for its certificate
            refused += await self._ensure_certificates(key, ctx, observed)
        if refused:
            return retry_after(self._refusals.count(key, body))
        self._refusals.clear(key)
        if held or (certify and tls_ca is None):
            return NAME_HELD_RECHECK
        if missing or decision.desired is None:
            return self.settings.dependency_recheck
        again = [t for t in (deferred, recheck, DRAIN_POLL if draining(observed) else None) if t is not None]
        return min(again) if again else None

    def _context(
        self,
        body: Body,
        spec: VMRayClusterSpec,
        nounce: str,
        observed: Observed,
        referenced: UserSecrets,
        ray_token: str | None,
    ) -> ClusterContext:
        meta = body["metadata"]
        token_secret = observed.secrets.get(identity.token_secret_name(meta["name"]))
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
            created_by=meta["labels"].get(names.CREATED_BY_LABEL),
            password_hash=referenced.password_hash,
            registry_credentials=referenced.registry,
            new_ray_token=None if ray_token else secrets.token_hex(ray_auth.TOKEN_BYTES),
        )

    def _probe(self, key: Key, ctx: ClusterContext, ray_token: str | None) -> RayView | None:
        """Ray's latest view of the cluster, from the poller this keeps pointed at the head's dashboard."""
        if self.prober is None:
            return None
        dashboard = f"http://{ctx.head_address}:{RAY_DASHBOARD_PORT}" if ctx.head_address else None
        self.prober.watch(key, dashboard, ray_token if ctx.spec.enable_token_auth else None)
        return self.prober.view(key)

    async def _ensure_ca(self, ctx: ClusterContext, observed: Observed, refused: list[str]) -> str | None:
        """The cluster's CA Secret, made when missing; a refusal is added to `refused`."""
        try:
            return await self.certifier.ensure_ca(ctx, observed)
        except (ApiError, NameTaken) as error:
            if isinstance(error, NameTaken) and error.earlier:
                return None  # an earlier namesake's CA: gone in seconds
            if not _is_refusal(error):
                raise
            refused.append(refusal(Kind.SECRET, tls.ca_secret_name(ctx.name), _words(error)))
            return None

    async def _ensure_certificates(self, key: Key, ctx: ClusterContext, observed: Observed) -> list[str]:
        """Issues the nodes' certificates; a refusal is told with the next status."""
        try:
            await self.certifier.ensure(ctx, observed, names.head_vm_name(ctx.name, ctx.nounce))
        except (ApiError, NameTaken) as error:
            if isinstance(error, NameTaken) and error.earlier:
                return []  # looked at again with the next reconcile
            if not _is_refusal(error):
                raise
            self._late_refusals[key] = [refusal(Kind.SECRET, tls.certificates_secret_name(ctx.name), _words(error))]
            return self._late_refusals[key]
        return []

    async def _finalize(self, key: Key, body: Body, spec: VMRayClusterSpec) -> float | None:
        namespace, name = key
        meta = body["metadata"]
        if self.prober:
            self.prober.forget(key)
        if names.FINALIZER not in (meta.get("finalizers") or []):
            return None
        observed = self.stores.observed(key)
        if not observed.vms and observed.service is None and not observed.secrets:
            remaining = [f for f in meta["finalizers"] if f != names.FINALIZER]
            try:
                await self.kube.patch(
                    r.VMRAYCLUSTERS,
                    name,
                    {"metadata": {"finalizers": remaining, "resourceVersion": meta["resourceVersion"]}},
                    namespace,
                )
            except (Conflict, NotFound):
                return 0.5
            log.info("cluster %s/%s: every VM is gone; finalizer removed", namespace, name)
            return None
        refused, _ = await self._apply(body, deletion_plan(observed, Drain(self.clock(), self.settings.drain_timeout)))
        started = datetime.datetime.fromisoformat(meta["deletionTimestamp"].replace("Z", "+00:00"))
        overdue = (self.clock() - started).total_seconds() > self.settings.deletion_timeout
        status = compute_status(
            StatusInput(
                spec=spec,
                generation=int(meta.get("generation", 0)),
                head_name=names.head_vm_name(name, (meta.get("labels") or {}).get(names.HEAD_NOUNCE_LABEL, "")),
                observed=observed,
                previous=self._previous_status(key, body),
                now=_timestamp(self.clock()),
                deleting=True,
                deletion_stuck=sorted(observed.vms) if overdue else [],
                refused=refused,
            )
        )
        await self._write_status(key, body, status)
        return max(DELETION_POLL, retry_after(self._refusals.count(key, body))) if refused else DELETION_POLL

    async def _apply(self, cluster: Body, actions: list[Action]) -> tuple[list[str], bool]:
        """Secrets and the service before the VMs that need them, a ServiceAccount before its token Secret;
        the calls of one step go out together, and what the steps created or deleted is told in one Event.
        Returns the writes the API server refused (the status tells them), and whether a name is still held by
        an earlier cluster of the same name (to be looked at again soon); other errors are raised."""
        later = (Kind.TOKEN_SECRET, Kind.VM)
        steps = [[a for a in actions if a.kind not in later], *([a for a in actions if a.kind is k] for k in later)]
        done: list[Action] = []
        refused: list[str] = []
        held = False
        try:
            for step in steps:
                results = await asyncio.gather(*(self._apply_one(cluster, a) for a in step), return_exceptions=True)
                done += [a for a, result in zip(step, results, strict=True) if result is True]
                refused += [
                    refusal(a.kind, a.name, _words(result))
                    for a, result in zip(step, results, strict=True)
                    if isinstance(result, BaseException) and _is_refusal(result)
                ]
                held = held or any(isinstance(e, NameTaken) and e.earlier for e in results)
                errors = [e for e in results if isinstance(e, BaseException) and not _is_refusal(e)]
                errors = [e for e in errors if not (isinstance(e, NameTaken) and e.earlier)]
                if errors:
                    raise errors[0]
                if refused or held:
                    break  # what comes later needs what was refused (a VM its Secret, a token its ServiceAccount)
        finally:
            meta = cluster["metadata"]
            self.recent.record((meta["namespace"], meta["name"]), meta["uid"], done)
            self._announce(cluster, [a for a in done if isinstance(a, Create)], "Created", "created")
            self._announce(cluster, [a for a in done if isinstance(a, Delete)], "Deleting", "deleting")
        for line in refused:
            log.warning(
                "cluster %s/%s: refused: %s", cluster["metadata"]["namespace"], cluster["metadata"]["name"], line
            )
        return refused, held

    def _announce(self, cluster: Body, actions: list[Action], reason: str, verb: str) -> None:
        """One Event for the VMs and services of one reconcile, whatever their number: `kubectl describe`
        stays readable and a cluster of many workers does not cost an API call per VM."""
        shown = [a for a in actions if a.kind in (Kind.SERVICE, Kind.VM)]
        if not shown:
            return
        kinds = [k for k in (Kind.SERVICE, Kind.VM) if any(a.kind is k for a in shown)]
        parts = []
        for kind in kinds:
            of_kind = [a.name for a in shown if a.kind is kind]
            label = kind.value if len(of_kind) == 1 else f"{len(of_kind)} {kind.value}s:"
            parts.append(f"{label} {', '.join(of_kind)}")
        reasons = sorted({a.reason for a in shown if isinstance(a, Delete)})
        message = f"{verb} " + "; ".join(parts) + (f": {'; '.join(reasons)}" if reasons else "")
        self.events.emit(cluster, "Normal", reason, message)

    async def _apply_one(self, cluster: Body, action: Action) -> bool:
        """Carries out one action; True when it changed something (not when an earlier run already had)."""
        namespace = cluster["metadata"]["namespace"]
        resource = self._resources[action.kind]
        if isinstance(action, Create):
            _, created = await create_owned(self.kube, resource, action.body, namespace, cluster["metadata"]["uid"])
            if created:
                log.info("created %s %s/%s", action.kind.value, namespace, action.name)
            return created
        if isinstance(action, Update):
            try:
                await self.kube.patch(resource, action.name, action.patch, namespace)
            except NotFound:  # gone meanwhile: its watch event brings the next reconcile
                return False
            log.info("updated %s %s/%s", action.kind.value, namespace, action.name)
            return True
        if await self.kube.delete(resource, action.name, namespace, uid=action.uid):
            log.info("deleting %s %s/%s: %s", action.kind.value, namespace, action.name, action.reason)
            return True
        return False

    def _previous_status(self, key: Key, body: Body) -> Body:
        """The cluster's status as the API server has it. A reconcile that runs before the watch brings back
        this operator's own last write sees an older cluster: then that write is the status."""
        held = self._status_written.held(key, body["metadata"]["uid"], version(body))
        status: Body = held if held is not None else body.get("status") or {}
        return status

    async def _write_status(self, key: Key, body: Body, status: Body) -> float | None:
        """Writes what changed; returns in how many seconds to come back for a change held back."""
        meta = body["metadata"]
        previous = self._previous_status(key, body)
        patch = merge_patch(previous, status)
        if not patch:
            return None
        written = self._status_written.last(key, meta["uid"])
        since = time.monotonic() - (written.at if written else -PROGRESS_WRITE_INTERVAL)
        if since < PROGRESS_WRITE_INTERVAL and progress_only(previous, status):
            return PROGRESS_WRITE_INTERVAL - since
        try:
            result = await self.kube.patch(
                r.VMRAYCLUSTERS, meta["name"], {"status": patch}, meta["namespace"], subresource="status"
            )
        except NotFound:
            return None
        self._status_written.record(key, meta["uid"], version(body), status, version(result))
        await self._announce_transitions(body, previous, status)
        return None

    async def _announce_transitions(self, body: Body, previous: Body, status: Body) -> None:
        """An Event whenever Ready or DependenciesReady changes, so `kubectl describe` tells the story."""
        for type_ in ("DependenciesReady", "Ready", "UpToDate"):
            before = find(previous.get("conditions"), type_) or {}
            after = find(status.get("conditions"), type_) or {}
            if (before.get("status"), before.get("reason")) == (after.get("status"), after.get("reason")):
                continue
            if type_ == "UpToDate":  # a rolling update is no news; one that stopped is
                if after.get("reason") == ROLLOUT_STALLED:
                    self.events.emit(body, "Warning", ROLLOUT_STALLED, str(after.get("message", "")))
                continue
            if after.get("status") == "True":
                if type_ == "Ready":
                    self.events.emit(body, "Normal", "Ready", after.get("message", ""))
                    if before.get("status") != "True":  # counted once per cluster: its first Ready
                        metrics.FIRST_READY.observe(body["metadata"], self.clock())
            elif type_ != "Ready" or before.get("status") == "True" or after.get("reason") not in PROGRESS_REASONS:
                # a failure, or a cluster that was Ready and is not any more; steps of bringing it up are no news
                self.events.emit(body, "Warning", str(after.get("reason")), str(after.get("message", "")))

    async def _write_invalid(self, body: Body, error: str) -> None:
        meta = body["metadata"]
        status = {
            "cluster_state": "failed",
            "conditions": [
                {
                    "type": "Ready",
                    "status": "False",
                    "reason": "InvalidSpec",
                    "message": error[:1000],
                    "lastTransitionTime": _timestamp(self.clock()),
                }
            ],
        }
        before = find((body.get("status") or {}).get("conditions"), "Ready") or {}
        if (before.get("reason"), before.get("message")) != ("InvalidSpec", error[:1000]):
            await self.kube.patch(
                r.VMRAYCLUSTERS, meta["name"], {"status": status}, meta["namespace"], subresource="status"
            )
