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
from vmray_operator.kube.client import Body, Conflict, Kube, NotFound
from vmray_operator.kube.events import EventRecorder
from vmray_operator.kube.prerequisites import PrerequisiteChecker
from vmray_operator.reconcile.adoption import adoption_patch
from vmray_operator.reconcile.conditions import find
from vmray_operator.reconcile.diff import merge_patch
from vmray_operator.reconcile.observed import issued_token, load_balancer_ip
from vmray_operator.reconcile.plan import Action, Create, Delete, Drain, Kind, Update, deletion_plan, draining, plan
from vmray_operator.reconcile.rollout import rollout
from vmray_operator.reconcile.status import PROGRESS_REASONS, StatusInput, compute_status, progress_only
from vmray_operator.render import identity, names
from vmray_operator.render.context import RAY_DASHBOARD_PORT, ClusterContext, OperatorDefaults
from vmray_operator.render.desired import desired_state

log = logging.getLogger("vmray.reconcile")
DELETION_POLL = 2.0
DRAIN_POLL = 5.0  # a draining VM is looked at again after this many seconds (its events come too)
NAME_TAKEN_RECHECK = 2.0  # seconds between looks at an object name another owner still holds
# A status change that is only a step of the way up (see status.progress_only) is written once this many
# seconds have passed since the cluster's last status write, or earlier with the next news (a VM created,
# an IP, a VM or Ray running, a failure), which is always written at once.
PROGRESS_WRITE_INTERVAL = 5.0


def random_suffix() -> str:
    return "".join(secrets.choice(names.SUFFIX_ALPHABET) for _ in range(names.SUFFIX_LENGTH))


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def _timestamp(moment: datetime.datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


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
        try:
            return await self._converge(key, body, spec)
        except NameTaken as taken:
            # An earlier cluster of this name, deleted, whose objects Kubernetes has not collected yet.
            log.info("cluster %s/%s waits: %s", key[0], key[1], taken)
            return NAME_TAKEN_RECHECK

    async def _converge(self, key: Key, body: Body, spec: VMRayClusterSpec) -> float | None:
        namespace, name = key
        observed = self.stores.observed(key)
        invalid = sorted(w for w in spec.autoscaler_desired_workers if not w.startswith(f"{name}-"))
        if invalid:
            wanted = {w: t for w, t in spec.autoscaler_desired_workers.items() if w not in invalid}
            spec = spec.model_copy(update={"autoscaler_desired_workers": wanted})
        referenced = await self.prerequisites.user_secrets(namespace, spec)
        ctx = ClusterContext(
            name=name,
            namespace=namespace,
            uid=body["metadata"]["uid"],
            spec=spec,
            nounce=body["metadata"]["labels"][names.HEAD_NOUNCE_LABEL],
            vmop_api_version=self.vmop_version,
            head_address=load_balancer_ip(observed.service),
            defaults=OperatorDefaults(self.settings.api_server_location, self.settings.api_server_ca_cert),
            cluster_token=issued_token(observed.secrets.get(identity.token_secret_name(name))),
            created_by=body["metadata"]["labels"].get(names.CREATED_BY_LABEL),
            password_hash=referenced.password_hash,
            registry_credentials=referenced.registry,
        )
        desired = desired_state(ctx)
        actions = plan(desired, observed, Drain(self.clock(), self.settings.drain_timeout))
        if referenced.missing:  # without them the nodes' cloud-init cannot be rendered: change nothing
            actions = []
        step = rollout(desired, observed)  # what the plan replaces, for the prerequisites and the status
        ray_view = None
        if self.prober:
            dashboard = f"http://{ctx.head_address}:{RAY_DASHBOARD_PORT}" if ctx.head_address else None
            self.prober.watch(key, dashboard)
            ray_view = self.prober.view(key)
        missing: list[str] = list(referenced.missing)
        if step.start or any(isinstance(a, Create) and a.kind is Kind.VM for a in actions):
            missing += await self.prerequisites.missing(namespace, spec)
            if missing:  # no VM is made, and none is taken away to be replaced, until they exist
                actions = [
                    a for a in actions if not (a.kind is Kind.VM and (isinstance(a, Create) or a.name == step.start))
                ]
        actions, recheck = self.recent.without_recent(key, body["metadata"]["uid"], actions, observed)
        await self._apply(body, actions)
        certify = spec.enable_tls and not referenced.missing
        tls_ca = await self.certifier.ensure_ca(ctx, observed) if certify else None
        status = compute_status(
            StatusInput(
                spec=spec,
                generation=int(body["metadata"].get("generation", 0)),
                head_name=names.head_vm_name(name, ctx.nounce),
                observed=observed,
                previous=self._previous_status(key, body),
                now=_timestamp(self.clock()),
                missing=missing,
                invalid=[f"autoscaler_desired_workers: {w} does not start with {name}-" for w in invalid],
                probe_ray=self.prober is not None,
                ray=ray_view,
                outdated=list(step.outdated),
                tls_ca=tls_ca,
            )
        )
        deferred = await self._write_status(key, body, status)
        if certify:  # after the status: a VM's new address shows without waiting for its certificate
            await self.certifier.ensure(ctx, observed, names.head_vm_name(name, ctx.nounce))
        if missing:
            return self.settings.dependency_recheck
        again = [t for t in (deferred, recheck, DRAIN_POLL if draining(observed) else None) if t is not None]
        return min(again) if again else None

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
        await self._apply(body, deletion_plan(observed, Drain(self.clock(), self.settings.drain_timeout)))
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
            )
        )
        await self._write_status(key, body, status)
        return DELETION_POLL

    async def _apply(self, cluster: Body, actions: list[Action]) -> None:
        """Secrets and the service before the VMs that need them, a ServiceAccount before its token Secret;
        the calls of one step go out together, and what the steps created or deleted is told in one Event."""
        later = (Kind.TOKEN_SECRET, Kind.VM)
        steps = [[a for a in actions if a.kind not in later], *([a for a in actions if a.kind is k] for k in later)]
        done: list[Action] = []
        try:
            for step in steps:
                results = await asyncio.gather(*(self._apply_one(cluster, a) for a in step), return_exceptions=True)
                done += [a for a, result in zip(step, results, strict=True) if result is True]
                errors = [e for e in results if isinstance(e, BaseException)]
                if errors:
                    raise errors[0]
        finally:
            meta = cluster["metadata"]
            self.recent.record((meta["namespace"], meta["name"]), meta["uid"], done)
            self._announce(cluster, [a for a in done if isinstance(a, Create)], "Created", "created")
            self._announce(cluster, [a for a in done if isinstance(a, Delete)], "Deleting", "deleting")

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
            await self.kube.patch(resource, action.name, action.patch, namespace)
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
        for type_ in ("DependenciesReady", "Ready"):
            before = find(previous.get("conditions"), type_) or {}
            after = find(status.get("conditions"), type_) or {}
            if (before.get("status"), before.get("reason")) == (after.get("status"), after.get("reason")):
                continue
            if after.get("status") == "True":
                if type_ == "Ready":
                    self.events.emit(body, "Normal", "Ready", after.get("message", ""))
                    if not before:  # the first Ready of this cluster
                        created = body["metadata"].get("creationTimestamp")
                        if created:
                            since = datetime.datetime.fromisoformat(created.replace("Z", "+00:00"))
                            metrics.TIME_TO_READY.observe((self.clock() - since).total_seconds())
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
