"""Carries out a reconcile's actions through kube/, and says which writes the API server refused."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from vmray_operator.api.contract import Body
from vmray_operator.controller.ownership import NameTaken, create_owned
from vmray_operator.controller.recent import RecentWrites
from vmray_operator.controller.stores import Key
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import ApiError, Kube, NotFound
from vmray_operator.kube.events import EventRecorder
from vmray_operator.logs import key_text
from vmray_operator.reconcile.events import change_events
from vmray_operator.reconcile.plan import Action, Create, Kind, Update
from vmray_operator.reconcile.refusals import refusal

log = logging.getLogger("vmray.reconcile")


def is_refusal(error: BaseException) -> bool:
    """Whether the API server refused a write for a reason the cluster's owner should hear of (a webhook, a
    policy, a quota, invalid content, a name held by another owner); a conflict or throttling is only retried,
    and a name an earlier cluster of the same name still holds is waited for (Kubernetes collects it)."""
    if isinstance(error, NameTaken):
        return not error.earlier
    return isinstance(error, ApiError) and error.status not in (409, 429)


def held(error: BaseException) -> bool:
    """Whether the error is a name an earlier cluster of the same name still holds."""
    return isinstance(error, NameTaken) and error.earlier


def refusal_of(kind: Kind, name: str, error: BaseException) -> str:
    """How a refused write is told: the object and what the API server said (not our prefix of its status)."""
    return refusal(kind, name, error.message if isinstance(error, ApiError) else str(error))


class RefusalCounter:
    """How many reconciles in a row had a write refused, per cluster (a new cluster of the same name starts anew):
    the pause before the next try grows with it."""

    def __init__(self) -> None:
        self._counts: dict[Key, tuple[str, int]] = {}

    def count(self, key: Key, uid: str) -> int:
        """Counts one more refusal; the number in a row."""
        previous_uid, previous = self._counts.get(key, (uid, 0))
        count = (previous if previous_uid == uid else 0) + 1
        self._counts[key] = (uid, count)
        return count

    def clear(self, key: Key) -> None:
        self._counts.pop(key, None)


@dataclass(frozen=True)
class Applied:
    refused: list[str]  # the writes the API server refused, as the status tells them
    held: bool  # a name is still held by an earlier cluster of the same name: look again soon


class Applier:
    def __init__(self, kube: Kube, vmop_version: str, events: EventRecorder, recent: RecentWrites) -> None:
        self.kube = kube
        self.events = events
        self.recent = recent
        self._resources = {
            Kind.VM: r.VIRTUAL_MACHINES.at_version(vmop_version),
            Kind.SERVICE: r.VIRTUAL_MACHINE_SERVICES.at_version(vmop_version),
            Kind.SECRET: r.SECRETS,
            Kind.CONFIG_MAP: r.CONFIG_MAPS,
            Kind.TOKEN_SECRET: r.SECRETS,
            Kind.SERVICE_ACCOUNT: r.SERVICE_ACCOUNTS,
            Kind.ROLE: r.ROLES,
            Kind.ROLE_BINDING: r.ROLE_BINDINGS,
            Kind.METRICS_SERVICE: r.SERVICES,
            Kind.ENDPOINT_SLICE: r.ENDPOINT_SLICES,
        }

    async def apply(self, cluster: Body, actions: list[Action]) -> Applied:
        """Secrets and the service before the VMs that need them, a ServiceAccount before its token Secret;
        the calls of one step go out together, and what the steps created or deleted is told in one Event.
        What comes after a refused step is left for the next reconcile (a VM needs its Secret); errors that
        are not the API server's refusals are raised."""
        later = (Kind.TOKEN_SECRET, Kind.VM)
        steps = [[a for a in actions if a.kind not in later], *([a for a in actions if a.kind is k] for k in later)]
        done: list[Action] = []
        refused: list[str] = []
        waiting = False
        try:
            for step in steps:
                results = await asyncio.gather(*(self._apply_one(cluster, a) for a in step), return_exceptions=True)
                for action, result in zip(step, results, strict=True):
                    if result is True:
                        done.append(action)
                    elif isinstance(result, BaseException) and is_refusal(result):
                        refused.append(refusal_of(action.kind, action.name, result))
                waiting = waiting or any(isinstance(e, BaseException) and held(e) for e in results)
                errors = [e for e in results if isinstance(e, BaseException) and not (is_refusal(e) or held(e))]
                if errors:
                    raise errors[0]
                if refused or waiting:
                    break
        finally:
            meta = cluster["metadata"]
            key: Key = (meta["namespace"], meta["name"])
            self.recent.record(key, meta["uid"], done)
            for note in change_events(done):
                self.events.emit(cluster, note.type, note.reason, note.message)
        for line in refused:
            log.warning("cluster %s: refused: %s", key_text(key), line)
        return Applied(refused, waiting)

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
