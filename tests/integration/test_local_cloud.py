"""The local cloud itself: the real control plane, VM Operator's CRDs and admission rules, and the simulator."""

from __future__ import annotations

import ipaddress
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import VMOP_STORAGE, run_cli
from tests.support.waiting import wait_for
from vmray_operator.conditions import find
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import ApiError, Kube, Unauthorized
from vmray_operator.local import controlplane, processes, samples, vmop_crds
from vmray_operator.local.vmop_defaults import CREATED_AT_SCHEMA_VERSION

# The simulator and the API server's storage speak one version (see local/vmop_crds.py): so do these tests.
VMS = r.VIRTUAL_MACHINES.at_version(VMOP_STORAGE)
SERVICES = r.VIRTUAL_MACHINE_SERVICES.at_version(VMOP_STORAGE)


def vm_body(name: str, namespace: str, version: str = VMOP_STORAGE, **spec: Any) -> dict[str, Any]:
    return {
        "apiVersion": f"vmoperator.vmware.com/{version}",
        "kind": "VirtualMachine",
        "metadata": {"name": name, "namespace": namespace},
        "spec": {
            "className": "best-effort-small",
            "imageName": samples.VM_IMAGE,
            "storageClass": samples.STORAGE_CLASS,
            "powerState": "PoweredOn",
            **spec,
        },
    }


async def get_vm(kube: Kube, namespace: str, name: str) -> dict[str, Any] | None:
    return await kube.get(VMS, name, namespace)


async def test_serves_every_vm_operator_version(kube: Kube, namespace: str) -> None:
    discovery = await kube.request("GET", "/apis/vmoperator.vmware.com")
    served = [v["version"] for v in discovery["versions"]]
    assert sorted(served) == sorted(vmop_crds.SUPPORTED_VERSIONS)
    assert await vmop_crds.storage_version(kube) == VMOP_STORAGE

    await kube.create(VMS, vm_body("cross-version", namespace), namespace)
    for version in vmop_crds.SUPPORTED_VERSIONS:  # no conversion: the stored object under each version's name
        read = await kube.get(r.VIRTUAL_MACHINES.at_version(version), "cross-version", namespace)
        assert read is not None
        assert read["apiVersion"] == f"vmoperator.vmware.com/{version}"
        assert read["spec"]["className"] == "best-effort-small"


async def test_vm_operator_schemas_refuse_what_vm_operator_refuses(kube: Kube, namespace: str) -> None:
    """The genuine schemas: an unknown field is an error (the client writes strictly), an enum is enforced."""
    with pytest.raises(ApiError, match=r'unknown field "spec.powerOfMode"'):
        await kube.create(VMS, vm_body("typo", namespace, powerOfMode="Soft"), namespace)
    with pytest.raises(ApiError, match='Unsupported value: "Sleeping"'):
        await kube.create(VMS, vm_body("asleep", namespace, powerState="Sleeping"), namespace)
    created = await kube.create(VMS, vm_body("defaulted", namespace), namespace)
    assert created["spec"]["powerOffMode"] == "TrySoft"  # the schema's own default
    assert await get_vm(kube, namespace, "typo") is None


@pytest.mark.simulator
async def test_simulator_powers_on_a_vm_with_an_address(kube: Kube, namespace: str, simulator: Path) -> None:
    await kube.create(VMS, vm_body("vm-a", namespace), namespace)

    async def powered_on() -> dict[str, Any] | None:
        vm = await get_vm(kube, namespace, "vm-a")
        status = (vm or {}).get("status", {})
        ready = status.get("powerState") == "PoweredOn" and status.get("network", {}).get("primaryIP4")
        return vm if ready else None

    vm = await wait_for(powered_on, what="vm-a powered on with an IP")
    status = vm["status"]
    assert status["network"]["primaryIP4"].startswith("10.211.")
    for type_ in (
        "VirtualMachineClassReady",
        "VirtualMachineImageReady",
        "VirtualMachineStorageReady",
        "VirtualMachineCreated",
        "Ready",
    ):
        condition = find(status["conditions"], type_)
        assert condition is not None, type_
        assert condition["status"] == "True", type_
    assert "vmoperator.vmware.com/virtualmachine" in vm["metadata"]["finalizers"]


@pytest.mark.simulator
async def test_simulator_writes_vm_operators_defaults(kube: Kube, namespace: str, simulator: Path) -> None:
    """What VM Operator's mutating webhook writes into a new VM, as the storage version has it."""
    body = vm_body("defaults", namespace, imageName=samples.VM_IMAGE_DISPLAY_NAME)
    body["spec"]["bootstrap"] = {"cloudInit": {"rawCloudConfig": {"name": "defaults-user-data", "key": "user-data"}}}
    await kube.create(VMS, body, namespace)

    async def defaulted() -> dict[str, Any] | None:
        vm = await kube.get(VMS, "defaults", namespace)
        return vm if CREATED_AT_SCHEMA_VERSION in ((vm or {})["metadata"].get("annotations") or {}) else None

    vm = await wait_for(defaulted, what="VM Operator's defaults")
    spec = vm["spec"]
    assert vm["metadata"]["annotations"][CREATED_AT_SCHEMA_VERSION] == VMOP_STORAGE
    assert spec["network"]["interfaces"][0]["name"] == "eth0"
    assert spec["network"]["interfaces"][0]["network"]["kind"] == "Network"
    if VMOP_STORAGE != "v1alpha2":
        assert spec["biosUUID"] == spec["bootstrap"]["cloudInit"]["instanceID"]
        assert spec["instanceUUID"]
        assert spec["image"] == {"kind": "VirtualMachineImage", "name": samples.VM_IMAGE}  # resolved display name
    assert spec["bootstrap"]["cloudInit"]["rawCloudConfig"] == {"name": "defaults-user-data", "key": "user-data"}


@pytest.mark.simulator
async def test_simulator_accepts_an_image_by_display_name(kube: Kube, namespace: str, simulator: Path) -> None:
    body = vm_body("by-display", namespace, imageName=samples.VM_IMAGE_DISPLAY_NAME)
    await kube.create(VMS, body, namespace)

    async def on() -> bool:
        vm = await get_vm(kube, namespace, "by-display")
        return bool((vm or {}).get("status", {}).get("powerState") == "PoweredOn")

    await wait_for(on, what="VM from an image named by display name powered on")


@pytest.mark.simulator
async def test_missing_prerequisites_are_conditions_and_recover(kube: Kube, namespace: str, simulator: Path) -> None:
    body = vm_body("needs-class", namespace, className="gpu-large", imageName="vmi-missing")
    await kube.create(VMS, body, namespace)

    async def reported() -> dict[str, Any] | None:
        vm = await get_vm(kube, namespace, "needs-class")
        conditions = (vm or {}).get("status", {}).get("conditions", [])
        return vm if find(conditions, "VirtualMachineClassReady") else None

    vm = await reported_vm(reported)
    conditions = vm["status"]["conditions"]
    class_ready = find(conditions, "VirtualMachineClassReady")
    image_ready = find(conditions, "VirtualMachineImageReady")
    assert class_ready is not None
    assert class_ready["status"] == "False"
    assert "gpu-large" in class_ready["message"]
    assert image_ready is not None
    assert image_ready["status"] == "False"
    assert "vmi-missing" in image_ready["message"]
    assert vm["status"].get("powerState") is None

    classes = r.VIRTUAL_MACHINE_CLASSES
    await kube.create(classes, samples.vm_class("gpu-large", 8, classes.api_version), namespace)
    images = r.VIRTUAL_MACHINE_IMAGES  # the image appears (imageName is immutable, as in VM Operator)
    await kube.create(images, samples.vm_image("vmi-missing", images.api_version, namespace), namespace)

    async def recovered() -> bool:
        vm = await get_vm(kube, namespace, "needs-class")
        return bool((vm or {}).get("status", {}).get("network", {}).get("primaryIP4"))

    await wait_for(recovered, what="VM recovered once its class and image exist")


async def reported_vm(probe: Any) -> dict[str, Any]:
    result: dict[str, Any] = await wait_for(probe, what="prerequisite conditions")
    return result


@pytest.mark.simulator
async def test_power_off_and_delete_release_the_address(kube: Kube, namespace: str, simulator: Path) -> None:
    await kube.create(VMS, vm_body("vm-off", namespace), namespace)

    async def address() -> str | None:
        vm = await get_vm(kube, namespace, "vm-off")
        ip: str | None = (vm or {}).get("status", {}).get("network", {}).get("primaryIP4")
        return ip

    first_ip = await wait_for(address, what="vm-off address")
    await kube.patch(VMS, "vm-off", {"spec": {"powerState": "PoweredOff"}}, namespace)

    async def off() -> bool:
        vm = await get_vm(kube, namespace, "vm-off")
        status = (vm or {}).get("status", {})
        return status.get("powerState") == "PoweredOff" and not status.get("network")

    await wait_for(off, what="vm-off powered off")

    await kube.delete(VMS, "vm-off", namespace)

    async def gone() -> bool:
        return await get_vm(kube, namespace, "vm-off") is None

    await wait_for(gone, what="vm-off deleted once the simulator released it")

    # The released address is free again: the lowest free one is handed out next, so the next VM gets
    # it or an even lower one (other tests release addresses too). No two VMs ever share one.
    await kube.create(VMS, vm_body("vm-next", namespace), namespace)

    async def next_address() -> str | None:
        vm = await get_vm(kube, namespace, "vm-next")
        ip: str | None = (vm or {}).get("status", {}).get("network", {}).get("primaryIP4")
        return ip

    next_ip = await wait_for(next_address, what="vm-next address")
    assert ipaddress.IPv4Address(next_ip) <= ipaddress.IPv4Address(first_ip)
    all_ips = [
        vm["status"]["network"]["primaryIP4"]
        for vm in await kube.list(VMS)
        if (vm.get("status") or {}).get("network", {}).get("primaryIP4")
    ]
    assert len(all_ips) == len(set(all_ips))


@pytest.mark.simulator
async def test_load_balancer_service_gets_an_external_address(kube: Kube, namespace: str, simulator: Path) -> None:
    services = SERVICES
    await kube.create(
        services,
        {
            "apiVersion": services.api_version,
            "kind": "VirtualMachineService",
            "metadata": {"name": "head", "namespace": namespace},
            "spec": {
                "type": "LoadBalancer",
                "selector": {"app": "x"},
                "ports": [{"name": "dashboard", "protocol": "TCP", "port": 8265, "targetPort": 8265}],
            },
        },
        namespace,
    )

    async def ingress() -> str | None:
        service = await kube.get(services, "head", namespace)
        items = (service or {}).get("status", {}).get("loadBalancer", {}).get("ingress", [])
        return items[0]["ip"] if items else None

    assert (await wait_for(ingress, what="load balancer address")).startswith("10.212.")


async def test_service_account_token_authenticates(kube: Kube, kubeconfig: Path, namespace: str) -> None:
    name = "robot"
    await kube.create(
        r.SERVICE_ACCOUNTS,
        {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
        namespace,
    )
    request = await kube.request(
        "POST",
        r.SERVICE_ACCOUNTS.path(namespace, name, "token"),
        body={
            "apiVersion": "authentication.k8s.io/v1",
            "kind": "TokenRequest",
            "spec": {"expirationSeconds": 600},
        },
    )
    token = request["status"]["token"]
    as_robot = Kube(kube_configuration_with_token(kube, token))
    try:
        review = await as_robot.request(
            "POST",
            "/apis/authentication.k8s.io/v1/selfsubjectreviews",
            body={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
        )
        assert review["status"]["userInfo"]["username"] == f"system:serviceaccount:{namespace}:{name}"
    finally:
        as_robot.close()

    bogus = Kube(kube_configuration_with_token(kube, token[:-4] + "AAAA"))
    try:
        with pytest.raises(Unauthorized):
            await bogus.request("GET", "/api/v1/namespaces")
    finally:
        bogus.close()


def kube_configuration_with_token(kube: Kube, token: str) -> Any:
    import kubernetes.client

    base = kube.configuration
    configuration = kubernetes.client.Configuration()
    configuration.host = base.host
    configuration.ssl_ca_cert = base.ssl_ca_cert
    configuration.api_key = {"BearerToken": f"Bearer {token}"}
    return configuration


def _port_open(port: int) -> bool:
    with socket.socket() as sock:
        sock.settimeout(0.5)
        return sock.connect_ex(("127.0.0.1", port)) == 0


def test_local_up_and_down_leave_nothing_behind(tmp_path: Path) -> None:
    state_dir = tmp_path / f"cloud-{uuid.uuid4().hex[:6]}"
    up = run_cli("local", "up", "--dir", str(state_dir))
    assert up.returncode == 0, up.stderr
    assert "local cloud up in" in up.stdout
    try:
        running = processes.recorded(state_dir)
        assert set(running) == {"etcd", "kube-apiserver", "kube-controller-manager", "simulator"}
        endpoints = controlplane.load_endpoints(state_dir)
        assert endpoints is not None
        assert all(_port_open(port) for port in (endpoints.etcd_client_port, endpoints.apiserver_port))
        status = run_cli("local", "status", "--dir", str(state_dir))
        assert status.returncode == 0
        assert "kube-apiserver" in status.stdout
    finally:
        down = run_cli("local", "down", "--dir", str(state_dir))
    assert down.returncode == 0, down.stderr
    assert processes.recorded(state_dir) == {}
    assert not any(processes.is_alive(pid) for pid in running.values())
    assert not any(_port_open(port) for port in endpoints.ports)
    assert run_cli("local", "status", "--dir", str(state_dir)).returncode == 1
