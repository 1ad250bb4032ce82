"""A VM Operator simulator: plays vSphere's part for VirtualMachines and VirtualMachineServices.

Like VM Operator, it puts its finalizer on the objects it manages, reports missing prerequisites
(class, image, storage class, bootstrap secret) as False conditions and retries until they appear,
powers VMs on and off as spec.powerState asks, gives powered-on VMs an address from a pool, reports what a
guest sets in guestinfo.vmservice.bootstrap.condition as the VM's GuestBootstrap condition, gives
LoadBalancer services an external address, and releases addresses when objects are deleted."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import logging
import re
import uuid
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

import kopf

from vmray_operator.api.contract import GUEST_BOOTSTRAP_CONDITION, VMOP_GROUP, Body
from vmray_operator.conditions import Condition, find, set_condition
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Conflict, Kube, NotFound
from vmray_operator.kube.login import connection_info
from vmray_operator.local.addresses import AddressPool
from vmray_operator.local.hypervisor import FakeHypervisor, Hypervisor
from vmray_operator.local.network import gateway_of
from vmray_operator.local.vmop_defaults import defaults_patch, is_defaulted
from vmray_operator.render.guest_paths import BOOTSTRAP_CONDITION_KEY
from vmray_operator.timestamps import rfc3339, utc_now

log = logging.getLogger("vmray.simulator")

VM_FINALIZER = f"{VMOP_GROUP}/virtualmachine"
SERVICE_FINALIZER = f"{VMOP_GROUP}/virtualmachineservice"


@dataclass(frozen=True)
class SimulatorConfig:
    """Delays (seconds) of each step a real vSphere takes, and the simulated networks."""

    create_delay: float = 0.2
    power_delay: float = 0.2
    ip_delay: float = 0.3
    delete_delay: float = 0.1
    lb_delay: float = 0.1
    recheck_interval: float = 1.0
    vm_network: str = "10.211.0.0/16"
    lb_network: str = "10.212.0.0/16"
    api_version: str = r.DEFAULT_VMOP_VERSION


GUEST_MESSAGE_LIMIT = 1024


def _now() -> str:
    return rfc3339(utc_now())


def _key(body: Body) -> str:
    return f"{body['metadata'].get('namespace')}/{body['metadata']['name']}"


def bootstrap_condition(value: str) -> tuple[bool, str, str]:
    """A guest's "status,reason,message" as VM Operator reads it: split at the first two commas, each part
    trimmed; a status that is not a true boolean is false; a true one without a reason has the reason True.
    What a guest writes is anything its processes write: the reason keeps only what a condition's reason may
    hold (a letter first, then letters, digits and '_'), the message is bounded."""
    parts = [part.strip() for part in value.split(",", 2)] + ["", ""]
    ok = parts[0] in ("1", "t", "T", "true", "TRUE", "True")
    reason = re.sub(r"[^A-Za-z0-9_]", "", parts[1]).lstrip("0123456789_")
    return ok, reason or ("True" if ok else "False"), parts[2][:GUEST_MESSAGE_LIMIT]


class _Driver:
    """Runs one object's state machine: steps until it waits, wakes on new events or after a delay."""

    def __init__(self, step: Callable[[Body], Coroutine[Any, Any, float | None]], body: Body) -> None:
        self.latest = body
        self._step = step
        self._wake = asyncio.Event()
        self._task = asyncio.create_task(self._run())

    def update(self, body: Body) -> None:
        self.latest = body
        self._wake.set()

    def cancel(self) -> None:
        self._task.cancel()

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                delay = await self._step(self.latest)
            except NotFound:
                return
            except Conflict:  # someone changed the object meanwhile: its newer version is on its way
                delay = 0.2
            except Exception:
                log.exception("simulator step failed for %s; retrying", _key(self.latest))
                delay = 1.0
            if delay is None:
                await self._wake.wait()
            else:
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), timeout=delay)


class Simulator:
    def __init__(self, kube: Kube, config: SimulatorConfig, hypervisor: Hypervisor | None = None) -> None:
        self.kube = kube
        self.config = config
        self.hypervisor: Hypervisor = hypervisor or FakeHypervisor()
        self.vm_addresses = AddressPool(config.vm_network)
        self.vm_addresses.reserve("(gateway)", gateway_of(config.vm_network))
        self.lb_addresses = AddressPool(config.lb_network)
        self.vms = r.VIRTUAL_MACHINES.at_version(config.api_version)
        self.services = r.VIRTUAL_MACHINE_SERVICES.at_version(config.api_version)
        self._drivers: dict[tuple[str, str], _Driver] = {}
        self._background: set[asyncio.Task[None]] = set()
        self.hypervisor.watch_guest_info(self._guest_info_changed)

    # -- start-up and events -----------------------------------------------------------------------

    async def recover(self) -> None:
        """Learns the addresses already handed out, so a restarted simulator never hands one out twice."""
        for vm in await self.kube.list(self.vms):
            ip = vm.get("status", {}).get("network", {}).get("primaryIP4")
            if ip:
                self.vm_addresses.reserve(_key(vm), ip)
        for service in await self.kube.list(self.services):
            for ingress in service.get("status", {}).get("loadBalancer", {}).get("ingress", []):
                if ingress.get("ip"):
                    self.lb_addresses.reserve(_key(service), ingress["ip"])

    def observe(self, kind: str, event_type: str | None, body: Body) -> None:
        key = (kind, _key(body))
        if event_type == "DELETED":
            driver = self._drivers.pop(key, None)
            if driver:
                driver.cancel()
            self._background.add(asyncio.create_task(self._forget(kind, key[1])))
            return
        if key in self._drivers:
            self._drivers[key].update(body)
        else:
            step = self._step_vm if kind == "vm" else self._step_service
            self._drivers[key] = _Driver(step, body)

    def _guest_info_changed(self, key: str) -> None:
        driver = self._drivers.get(("vm", key))
        if driver is not None:
            driver.update(driver.latest)  # the VM's step reads the guest's values again

    async def _forget(self, kind: str, key: str) -> None:
        """The object is gone (its finalizer was removed by someone else): so is its VM or balancer."""
        if kind == "vm":
            await self.hypervisor.destroy(key)
            self.vm_addresses.release(key)
        else:
            await self.hypervisor.unexpose(key)
            self.lb_addresses.release(key)

    async def stop(self) -> None:
        for driver in self._drivers.values():
            driver.cancel()
        self._drivers.clear()
        await self.hypervisor.stop()

    # -- helpers -----------------------------------------------------------------------------------

    async def _ensure_finalizer(self, resource: r.Resource, body: Body, finalizer: str) -> bool:
        """Adds the finalizer; True when a patch was sent (the next event carries the result)."""
        meta = body["metadata"]
        finalizers = list(meta.get("finalizers", []))
        if finalizer in finalizers:
            return False
        patch = {"metadata": {"finalizers": [*finalizers, finalizer], "resourceVersion": meta["resourceVersion"]}}
        with contextlib.suppress(NotFound):
            await self.kube.patch(resource, meta["name"], patch, meta["namespace"])
        return True

    async def _remove_finalizer(self, resource: r.Resource, body: Body, finalizer: str) -> None:
        meta = body["metadata"]
        remaining = [f for f in meta.get("finalizers", []) if f != finalizer]
        patch = {"metadata": {"finalizers": remaining, "resourceVersion": meta["resourceVersion"]}}
        with contextlib.suppress(NotFound):
            await self.kube.patch(resource, meta["name"], patch, meta["namespace"])

    async def _patch_status(self, resource: r.Resource, body: Body, status: Body) -> None:
        meta = body["metadata"]
        await self.kube.patch(resource, meta["name"], {"status": status}, meta["namespace"], subresource="status")

    async def _prerequisites(self, vm: Body) -> tuple[dict[str, tuple[bool, str, str]], str | None]:
        """Condition type -> (ready, reason, message) for each prerequisite of a VM, and its user-data."""
        ns = vm["metadata"]["namespace"]
        spec = vm.get("spec", {})
        result: dict[str, tuple[bool, str, str]] = {}

        class_name = spec.get("className", "")
        found = bool(class_name) and await self.kube.get(r.VIRTUAL_MACHINE_CLASSES, class_name, ns) is not None
        result["VirtualMachineClassReady"] = (
            (True, "True", "")
            if found
            else (False, "NotFound", f"VirtualMachineClass {class_name!r} not found in namespace {ns}")
        )

        image_name = spec.get("imageName", "")
        found = bool(image_name) and await self._image_exists(ns, image_name)
        result["VirtualMachineImageReady"] = (
            (True, "True", "")
            if found
            else (
                False,
                "NotFound",
                f"VirtualMachineImage or ClusterVirtualMachineImage {image_name!r} not found",
            )
        )

        storage = spec.get("storageClass", "")
        found = bool(storage) and await self.kube.get(r.STORAGE_CLASSES, storage) is not None
        result["VirtualMachineStorageReady"] = (
            (True, "True", "") if found else (False, "NotFound", f"StorageClass {storage!r} not found")
        )

        raw = spec.get("bootstrap", {}).get("cloudInit", {}).get("rawCloudConfig")
        user_data: str | None = None
        result["VirtualMachineBootstrapReady"] = (True, "True", "")
        if raw:
            secret = await self.kube.get(r.SECRETS, raw.get("name", ""), ns)
            key = raw.get("key", "user-data")
            encoded = ((secret or {}).get("data") or {}).get(key)
            if encoded is None:
                message = f"bootstrap Secret {raw.get('name')!r} with key {key!r} not found"
                result["VirtualMachineBootstrapReady"] = (False, "NotFound", message)
            else:
                user_data = base64.b64decode(encoded).decode(errors="replace")
                problems = self.hypervisor.check_bootstrap(user_data)
                if problems:
                    message = "cloud-config is invalid: " + "; ".join(problems[:5])
                    result["VirtualMachineBootstrapReady"] = (False, "InvalidCloudConfig", message)
        return result, user_data

    async def _image_exists(self, namespace: str, name: str) -> bool:
        return await self._resolve_image(namespace, name) is not None

    async def _resolve_image(self, namespace: str, name: str) -> tuple[str, str] | None:
        """(kind, object name) of the image `name` names, by object name or (as VM Operator also accepts) display
        name, or None."""
        if await self.kube.get(r.VIRTUAL_MACHINE_IMAGES, name, namespace) is not None:
            return "VirtualMachineImage", name
        if await self.kube.get(r.CLUSTER_VIRTUAL_MACHINE_IMAGES, name) is not None:
            return "ClusterVirtualMachineImage", name
        for resource, namespace_ in ((r.VIRTUAL_MACHINE_IMAGES, namespace), (r.CLUSTER_VIRTUAL_MACHINE_IMAGES, None)):
            for image in await self.kube.list(resource, namespace_):
                if image.get("status", {}).get("name") == name:
                    return str(image["kind"]), str(image["metadata"]["name"])
        return None

    async def _default(self, vm: Body) -> bool:
        """VM Operator's defaults for a VM seen for the first time (local/vmop_defaults.py); True when a patch was
        sent (the next event carries the result)."""
        if is_defaulted(vm):
            return False
        meta, image_name = vm["metadata"], (vm.get("spec") or {}).get("imageName")
        image = await self._resolve_image(meta["namespace"], image_name) if image_name else None
        patch = defaults_patch(vm, self.config.api_version, image, lambda: str(uuid.uuid4()))
        if patch is None:
            return False
        with contextlib.suppress(NotFound):
            await self.kube.patch(self.vms, meta["name"], patch, meta["namespace"])
        return True

    # -- state machines ----------------------------------------------------------------------------

    async def _step_vm(self, vm: Body) -> float | None:
        meta = vm["metadata"]
        if meta.get("deletionTimestamp"):
            await self._release_vm(vm)
            return None
        if await self._default(vm):  # what VM Operator's mutating webhook writes into a new VM
            return None
        if await self._ensure_finalizer(self.vms, vm, VM_FINALIZER):
            return None
        status: Body = dict(vm.get("status") or {})
        conditions, user_data = await self._prerequisite_conditions(vm, status)
        if conditions is None:
            return self.config.recheck_interval
        created = find(conditions, "VirtualMachineCreated")
        if created is None or created.get("status") != "True":
            await self._create_vm(vm, conditions)
            return None
        desired = vm.get("spec", {}).get("powerState", "PoweredOn")
        actual, ip = status.get("powerState"), status.get("network", {}).get("primaryIP4")
        if desired == "PoweredOn" and (actual != "PoweredOn" or not self.hypervisor.is_on(_key(vm))):
            return await self._power_on(vm, status, conditions, user_data)
        if desired == "PoweredOn" and not ip:
            await self._give_address(vm, conditions)
        elif desired == "PoweredOff" and actual == "PoweredOn":
            await self._power_off(vm, conditions)
        elif desired == "PoweredOn":
            await self._report_guest_bootstrap(vm, conditions)
        return None

    async def _release_vm(self, vm: Body) -> None:
        """A deleted VM: off, its address free, the finalizer gone."""
        if VM_FINALIZER in vm["metadata"].get("finalizers", []):
            await self.hypervisor.destroy(_key(vm))
            await asyncio.sleep(self.config.delete_delay)
            self.vm_addresses.release(_key(vm))
            await self._remove_finalizer(self.vms, vm, VM_FINALIZER)

    async def _prerequisite_conditions(self, vm: Body, status: Body) -> tuple[list[Condition] | None, str | None]:
        """The VM's conditions with its prerequisites' (None, told in the status, while one is missing) and its
        user-data."""
        conditions: list[Condition] = status.get("conditions", [])
        now = _now()
        prerequisites, user_data = await self._prerequisites(vm)
        for type_, (ok, reason, message) in prerequisites.items():
            conditions = set_condition(conditions, type_, ok, reason, message, now)
        if all(ok for ok, _, _ in prerequisites.values()):
            return conditions, user_data
        waiting = "waiting for missing prerequisites"
        conditions = set_condition(conditions, "Ready", False, "PrerequisitesNotReady", waiting, now)
        if conditions != status.get("conditions"):
            await self._patch_status(self.vms, vm, {"conditions": conditions})
        return None, user_data

    async def _create_vm(self, vm: Body, conditions: list[Condition]) -> None:
        await asyncio.sleep(self.config.create_delay)
        uid = vm["metadata"]["uid"]
        conditions = set_condition(conditions, "VirtualMachineCreated", True, "True", "", _now())
        created = {"uniqueID": f"vm-{uid[:8]}", "biosUUID": uid, "instanceUUID": uid, "powerState": "PoweredOff"}
        await self._patch_status(self.vms, vm, {"conditions": conditions, **created})

    async def _power_on(
        self, vm: Body, status: Body, conditions: list[Condition], user_data: str | None
    ) -> float | None:
        """Also after a simulator restart: the guest boots again, with the address it had."""
        await asyncio.sleep(self.config.power_delay)
        address = status.get("network", {}).get("primaryIP4") or self.vm_addresses.allocate(_key(vm))
        await self.hypervisor.power_on(_key(vm), vm["metadata"]["name"], address, user_data)
        waiting = "powered on, waiting for the guest's address"
        conditions = set_condition(conditions, "Ready", False, "WaitingForNetwork", waiting, _now())
        await self._patch_status(self.vms, vm, {"powerState": "PoweredOn", "conditions": conditions})
        # A guest booted again after a simulator restart changes nothing in the status, so no event comes
        # to step on: go on at once (to hand out an address if it had none).
        return 0.0 if status.get("powerState") == "PoweredOn" and conditions == status.get("conditions") else None

    async def _give_address(self, vm: Body, conditions: list[Condition]) -> None:
        await asyncio.sleep(self.config.ip_delay)
        ip = self.vm_addresses.allocate(_key(vm))
        conditions = set_condition(conditions, "GuestCustomization", True, "True", "", _now())
        conditions = set_condition(conditions, "Ready", True, "True", "", _now())
        prefix = self.vm_addresses.network.prefixlen
        interface = {"name": "eth0", "ip": {"addresses": [{"address": f"{ip}/{prefix}"}]}}
        network = {"primaryIP4": ip, "interfaces": [interface]}
        await self._patch_status(self.vms, vm, {"network": network, "conditions": conditions})

    async def _power_off(self, vm: Body, conditions: list[Condition]) -> None:
        soft = vm.get("spec", {}).get("powerOffMode", "Hard") in ("Soft", "TrySoft")
        await self.hypervisor.power_off(_key(vm), soft=soft)
        await asyncio.sleep(self.config.power_delay)
        conditions = set_condition(conditions, "Ready", False, "PoweredOff", "the VM is powered off", _now())
        await self._patch_status(self.vms, vm, {"powerState": "PoweredOff", "network": None, "conditions": conditions})

    async def _report_guest_bootstrap(self, vm: Body, conditions: list[Condition]) -> None:
        value = self.hypervisor.guest_info(_key(vm)).get(BOOTSTRAP_CONDITION_KEY)
        if value is None:
            return
        ok, reason, message = bootstrap_condition(value)
        conditions = set_condition(conditions, GUEST_BOOTSTRAP_CONDITION, ok, reason, message, _now())
        if conditions != (vm.get("status") or {}).get("conditions"):
            await self._patch_status(self.vms, vm, {"conditions": conditions})

    async def _step_service(self, service: Body) -> float | None:
        meta = service["metadata"]
        if meta.get("deletionTimestamp"):
            if SERVICE_FINALIZER in meta.get("finalizers", []):
                await self.hypervisor.unexpose(_key(service))
                self.lb_addresses.release(_key(service))
                await self._remove_finalizer(self.services, service, SERVICE_FINALIZER)
            return None
        if await self._ensure_finalizer(self.services, service, SERVICE_FINALIZER):
            return None
        if service.get("spec", {}).get("type") != "LoadBalancer":
            return None
        ingress = service.get("status", {}).get("loadBalancer", {}).get("ingress") or []
        ports = [(int(p["port"]), int(p.get("targetPort") or p["port"])) for p in service["spec"].get("ports", [])]
        selector = dict(service["spec"].get("selector") or {})
        target = self._selected_vm_address(meta["namespace"], selector)
        if ingress:
            await self.hypervisor.expose(_key(service), ingress[0]["ip"], ports, target)
            return None
        await asyncio.sleep(self.config.lb_delay)
        ip = self.lb_addresses.allocate(_key(service))
        await self.hypervisor.expose(_key(service), ip, ports, target)
        await self._patch_status(self.services, service, {"loadBalancer": {"ingress": [{"ip": ip}]}})
        return None

    def _selected_vm_address(self, namespace: str, selector: dict[str, str]) -> Callable[[], str | None]:
        """The address of a powered-on VM the service selects, looked up at connection time."""

        def lookup() -> str | None:
            for (kind, key), driver in self._drivers.items():
                vm = driver.latest
                labels = vm["metadata"].get("labels") or {}
                if kind != "vm" or vm["metadata"].get("namespace") != namespace:
                    continue
                if selector and all(labels.get(k) == v for k, v in selector.items()) and self.hypervisor.is_on(key):
                    ip: str | None = (vm.get("status") or {}).get("network", {}).get("primaryIP4")
                    if ip:
                        return ip
            return None

        return lookup


def registry_for(simulator: Simulator) -> kopf.OperatorRegistry:
    """kopf wiring: every VM and VM service event goes to the simulator."""
    registry = kopf.OperatorRegistry()
    version = simulator.config.api_version

    @kopf.on.login(registry=registry)
    def login(**_: Any) -> kopf.ConnectionInfo:
        return connection_info(simulator.kube.configuration)

    @kopf.on.startup(registry=registry)
    async def startup(settings: kopf.OperatorSettings, **_: Any) -> None:
        settings.posting.enabled = False
        settings.watching.server_timeout = 300
        await simulator.recover()

    @kopf.on.event(VMOP_GROUP, version, "virtualmachines", registry=registry)
    async def vm_event(event: kopf.RawEvent, **_: Any) -> None:
        simulator.observe("vm", event.get("type"), dict(event["object"]))

    @kopf.on.event(VMOP_GROUP, version, "virtualmachineservices", registry=registry)
    async def service_event(event: kopf.RawEvent, **_: Any) -> None:
        simulator.observe("service", event.get("type"), dict(event["object"]))

    return registry


async def run(
    kube: Kube, config: SimulatorConfig, hypervisor: Hypervisor | None = None, stop: asyncio.Event | None = None
) -> None:
    simulator = Simulator(kube, config, hypervisor)
    await simulator.hypervisor.start()
    try:
        await kopf.operator(registry=registry_for(simulator), standalone=True, clusterwide=True, stop_flag=stop)
    finally:
        await simulator.stop()
