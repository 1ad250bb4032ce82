"""One reconcile of one cluster: read what the watches saw, plan, act through kube/, write status."""

from __future__ import annotations

import asyncio
import datetime
import logging
import secrets
from collections.abc import Callable

from pydantic import ValidationError

from vmray_operator import metrics
from vmray_operator.api.models import VMRayClusterSpec
from vmray_operator.config import Settings
from vmray_operator.controller.rayprobe import RayProber
from vmray_operator.controller.stores import Key, Stores
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Body, Conflict, Kube, NotFound
from vmray_operator.kube.events import EventRecorder
from vmray_operator.kube.prerequisites import PrerequisiteChecker
from vmray_operator.reconcile.adoption import adoption_patch
from vmray_operator.reconcile.conditions import find
from vmray_operator.reconcile.diff import merge_patch
from vmray_operator.reconcile.observed import controlled_by, issued_token, load_balancer_ip
from vmray_operator.reconcile.plan import Action, Create, Drain, Kind, Update, deletion_plan, draining, plan
from vmray_operator.reconcile.rollout import rollout
from vmray_operator.reconcile.status import PROGRESS_REASONS, StatusInput, compute_status
from vmray_operator.render import identity, names
from vmray_operator.render.context import RAY_DASHBOARD_PORT, ClusterContext, OperatorDefaults
from vmray_operator.render.desired import desired_state

log = logging.getLogger("vmray.reconcile")
DELETION_POLL = 2.0
DRAIN_POLL = 5.0  # a draining VM is looked at again after this many seconds (its events come too)
NAME_TAKEN_RECHECK = 2.0  # seconds between looks at an object name another owner still holds


class NameTaken(Exception):
    """An object the cluster needs exists under another owner (ownerReferences)."""


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
            autoscaler_token=issued_token(observed.secrets.get(identity.token_secret_name(name))),
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
        await self._apply(body, actions)
        status = compute_status(
            StatusInput(
                spec=spec,
                generation=int(body["metadata"].get("generation", 0)),
                head_name=names.head_vm_name(name, ctx.nounce),
                observed=observed,
                previous=body.get("status") or {},
                now=_timestamp(self.clock()),
                missing=missing,
                invalid=[f"autoscaler_desired_workers: {w} does not start with {name}-" for w in invalid],
                probe_ray=self.prober is not None,
                ray=ray_view,
                outdated=list(step.outdated),
            )
        )
        await self._write_status(body, status)
        if missing:
            return self.settings.dependency_recheck
        return DRAIN_POLL if draining(observed) else None

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
                previous=body.get("status") or {},
                now=_timestamp(self.clock()),
                deleting=True,
                deletion_stuck=sorted(observed.vms) if overdue else [],
            )
        )
        await self._write_status(body, status)
        return DELETION_POLL

    async def _apply(self, cluster: Body, actions: list[Action]) -> None:
        """Secrets and the service before the VMs that need them, a ServiceAccount before its token Secret;
        the calls of one step go out together."""
        later = (Kind.TOKEN_SECRET, Kind.VM)
        steps = [[a for a in actions if a.kind not in later], *([a for a in actions if a.kind is k] for k in later)]
        for step in steps:
            results = await asyncio.gather(*(self._apply_one(cluster, a) for a in step), return_exceptions=True)
            errors = [e for e in results if isinstance(e, BaseException)]
            if errors:
                raise errors[0]

    async def _apply_one(self, cluster: Body, action: Action) -> None:
        namespace = cluster["metadata"]["namespace"]
        resource = self._resources[action.kind]
        if isinstance(action, Create):
            try:
                await self.kube.create(resource, action.body, namespace)
            except Conflict as error:
                if not error.already_exists:
                    raise
                existing = await self.kube.get(resource, action.name, namespace)
                if existing is not None and not controlled_by(existing, cluster["metadata"]["uid"]):
                    raise NameTaken(f"{action.kind.value} {namespace}/{action.name} belongs to another owner") from None
                return  # made by an earlier run whose event has not arrived yet: nothing to do
            log.info("created %s %s/%s", action.kind.value, namespace, action.name)
            if action.kind in (Kind.VM, Kind.SERVICE):
                self.events.emit(cluster, "Normal", "Created", f"created {action.kind.value} {action.name}")
        elif isinstance(action, Update):
            await self.kube.patch(resource, action.name, action.patch, namespace)
            log.info("updated %s %s/%s", action.kind.value, namespace, action.name)
        elif await self.kube.delete(resource, action.name, namespace, uid=action.uid):
            log.info("deleting %s %s/%s: %s", action.kind.value, namespace, action.name, action.reason)
            if action.kind in (Kind.VM, Kind.SERVICE):
                message = f"deleting {action.kind.value} {action.name}: {action.reason}"
                self.events.emit(cluster, "Normal", "Deleting", message)

    async def _write_status(self, body: Body, status: Body) -> None:
        previous = body.get("status") or {}
        patch = merge_patch(previous, status)
        if not patch:
            return
        meta = body["metadata"]
        try:
            await self.kube.patch(
                r.VMRAYCLUSTERS, meta["name"], {"status": patch}, meta["namespace"], subresource="status"
            )
        except NotFound:
            return
        await self._announce_transitions(body, previous, status)

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
