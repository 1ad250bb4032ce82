"""The package installed with kapp onto the local control plane the way kapp-controller installs it
(ytt, then kbld with the bundle's images.yml, then kapp), and the operator running with the packaged
ServiceAccount's token: the ClusterRole is enough for a full cluster lifecycle, and no more."""

from __future__ import annotations

import asyncio
import copy
import json
import logging
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.carvel.conftest import Build, documents, install_values, run, tool
from tests.conftest import running_operator
from tests.support.clusters import delete_cluster, sample, wait_condition
from vmray_operator.api import admission
from vmray_operator.config import Settings
from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Forbidden, Kube
from vmray_operator.kube.resources import Resource

pytestmark = pytest.mark.simulator

NO_WAIT_OVERLAY = Path(__file__).with_name("no-wait-overlay.yaml")
APP = "vmray-operator"
PODS = Resource("", "v1", "pods")


@dataclass(frozen=True)
class Install:
    namespace: str  # the service namespace vSphere would make
    manifest: Path  # what kapp deployed
    objects: list[dict[str, Any]]
    token_kubeconfig: Path  # the packaged ServiceAccount's identity


def kapp(kubeconfig: Path, *args: str | Path) -> dict[str, Any]:
    """Runs kapp; returns its JSON report."""
    report: dict[str, Any] = json.loads(
        run(tool("kapp"), *args, "--kubeconfig", kubeconfig, "--json", timeout=180).stdout
    )
    return report


@pytest.fixture(scope="module")
async def installed(
    kubeconfig: Path, kube: Kube, package_build: Build, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Install]:
    workdir = tmp_path_factory.mktemp("install")
    namespace = f"svc-vmray-{uuid.uuid4().hex[:6]}"
    # The strictest pod security a service namespace can have: the operator's pods must pass it.
    labels = {"pod-security.kubernetes.io/enforce": "restricted"}
    body = {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace, "labels": labels}}
    await kube.create(r.NAMESPACES, body)
    bundle = package_build.bundle
    # No install values at all: the namespace is the install's, given by kapp-controller's downward API as the
    # Package file says (a real install names no value either).
    template = package_build.package_documents()["Package"]["spec"]["template"]["spec"]
    values = install_values(template, namespace, APP)
    rendered = run(tool("ytt"), "-f", bundle / "config", "-f", NO_WAIT_OVERLAY, *values).stdout
    manifest = workdir / "manifest.yaml"
    manifest.write_text(run(tool("kbld"), "-f", "-", "-f", bundle / ".imgpkg" / "images.yml", stdin=rendered).stdout)
    kapp(kubeconfig, "deploy", "--app", APP, "--namespace", namespace, "--file", manifest, "--yes")
    token_kubeconfig = workdir / "operator-kubeconfig"
    cluster = yaml.safe_load(await asyncio.to_thread(kubeconfig.read_text))["clusters"][0]["cluster"]
    token_kubeconfig.write_text(await service_account_kubeconfig(kube, cluster, namespace, APP))
    try:
        yield Install(namespace, manifest, documents(manifest.read_text()), token_kubeconfig)
    finally:
        kapp(kubeconfig, "delete", "--app", APP, "--namespace", namespace, "--yes")
        await kube.delete(r.NAMESPACES, namespace)


async def service_account_kubeconfig(kube: Kube, cluster: dict[str, Any], namespace: str, account: str) -> str:
    """A kubeconfig for cluster (server and CA) whose user is the ServiceAccount, with a token from a
    TokenRequest (as the kubelet gets one for the operator's pod)."""
    request = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": {"expirationSeconds": 3600}}
    path = r.SERVICE_ACCOUNTS.path(namespace, account, "token")
    token = (await kube.request("POST", path, body=request))["status"]["token"]
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "local", "cluster": cluster}],
        "users": [{"name": account, "user": {"token": token}}],
        "contexts": [{"name": "operator", "context": {"cluster": "local", "user": account}}],
        "current-context": "operator",
    }
    return yaml.safe_dump(config)


async def test_operator_pod_passes_restricted_pod_security(installed: Install, kube: Kube) -> None:
    """No kubelet runs here, so the Deployment makes no pods; its pod template is checked the way the API
    server admits a pod (a dry run) in the install namespace, which enforces the restricted profile."""
    (deployment,) = [d for d in installed.objects if d["kind"] == "Deployment"]
    template = deployment["spec"]["template"]
    metadata = {"name": "operator-pod", **template["metadata"]}
    pod: dict[str, Any] = {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": template["spec"]}
    path = PODS.path(installed.namespace)
    admitted = await kube.request("POST", path, {"dryRun": "All"}, body=pod)
    assert admitted["metadata"]["namespace"] == installed.namespace
    # The same pod allowed to run as root is refused: the namespace really enforces the profile.
    as_root = copy.deepcopy(pod)
    del as_root["spec"]["securityContext"]["runAsNonRoot"]
    del as_root["spec"]["containers"][0]["securityContext"]["runAsNonRoot"]
    with pytest.raises(Forbidden, match=r"restricted.*runAsNonRoot"):
        await kube.request("POST", path, {"dryRun": "All"}, body=as_root)


def test_every_rendered_object_is_accepted(installed: Install, kubeconfig: Path) -> None:
    names = run(tool("kubectl"), "--kubeconfig", kubeconfig, "get", "-f", installed.manifest, "-o", "name").stdout
    assert len(names.split()) == len(installed.objects) == 9
    (deployment,) = [d for d in installed.objects if d["kind"] == "Deployment"]
    assert "@sha256:" in deployment["spec"]["template"]["spec"]["containers"][0]["image"]
    # A second deploy of the same manifest changes nothing: no field fights with the API server's defaults.
    report = kapp(
        kubeconfig, "deploy", "--app", APP, "--namespace", installed.namespace, "--file", installed.manifest, "--yes"
    )
    (table,) = report["Tables"]
    assert table["Rows"] == [], table


async def test_the_package_brings_the_admission_policy(installed: Install, kube: Kube) -> None:
    """kapp deployed the policy and its binding (the local control plane had them already, as a Supervisor
    with an earlier install would): they carry the package's labels and kapp's."""
    for resource in (r.ADMISSION_POLICIES, r.ADMISSION_POLICY_BINDINGS):
        found = await kube.get(resource, admission.POLICY_NAME)
        assert found is not None
        labels = found["metadata"]["labels"]
        assert labels["app.kubernetes.io/name"] == APP
        assert "kapp.k14s.io/app" in labels


async def test_packaged_service_account_runs_a_cluster_through_its_life(
    installed: Install, kube: Kube, namespace: str, simulator: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    settings = Settings(dependency_recheck=0.5, deletion_timeout=30.0, probe_ray=False)
    async with running_operator(installed.token_kubeconfig, settings):
        await kube.create(r.VMRAYCLUSTERS, sample(namespace, "sa-ray"), namespace)
        cluster = await wait_condition(kube, namespace, "sa-ray", "Ready")
        assert cluster["status"]["ready_workers"] == 2

        await delete_cluster(kube, namespace, "sa-ray")
    refused = [
        rec.getMessage() for rec in caplog.records if "403" in rec.getMessage() or "ermission" in rec.getMessage()
    ]
    assert not refused, refused


# What the operator calls (carvel/config/rbac.yaml names the code behind each rule).
ALLOWED = [
    ("list", "vmrayclusters.vmray.broadcom.com", "--all-namespaces"),
    ("watch", "vmrayclusters.vmray.broadcom.com", "--all-namespaces"),
    ("patch", "vmrayclusters.vmray.broadcom.com", "--namespace=deploy-ray"),
    ("get", "vmrayclusters.vmray.broadcom.com", "--namespace=deploy-ray"),  # granted on in each cluster's Role
    ("patch", "vmrayclusters.vmray.broadcom.com", "--subresource=status --namespace=deploy-ray"),
    ("update", "vmrayclusters.vmray.broadcom.com", "--subresource=finalizers --namespace=deploy-ray"),
    ("create", "virtualmachines.vmoperator.vmware.com", "--namespace=deploy-ray"),
    ("patch", "virtualmachines.vmoperator.vmware.com", "--namespace=deploy-ray"),
    ("watch", "virtualmachines.vmoperator.vmware.com", "--all-namespaces"),
    ("delete", "virtualmachineservices.vmoperator.vmware.com", "--namespace=deploy-ray"),
    ("get", "virtualmachineclasses.vmoperator.vmware.com", "--namespace=deploy-ray"),
    ("list", "virtualmachineimages.vmoperator.vmware.com", "--namespace=deploy-ray"),
    ("list", "clustervirtualmachineimages.vmoperator.vmware.com", ""),
    ("get", "storageclasses.storage.k8s.io", ""),
    ("create", "secrets", "--namespace=deploy-ray"),
    ("get", "secrets", "--namespace=deploy-ray"),
    ("patch", "secrets", "--namespace=deploy-ray"),
    ("delete", "secrets", "--namespace=deploy-ray"),
    ("watch", "secrets", "--all-namespaces"),
    ("patch", "configmaps", "--namespace=deploy-ray"),
    ("create", "serviceaccounts", "--namespace=deploy-ray"),
    ("patch", "serviceaccounts", "--namespace=deploy-ray"),
    ("watch", "serviceaccounts", "--all-namespaces"),
    ("create", "roles.rbac.authorization.k8s.io", "--namespace=deploy-ray"),
    ("patch", "rolebindings.rbac.authorization.k8s.io", "--namespace=deploy-ray"),
    ("watch", "roles.rbac.authorization.k8s.io", "--all-namespaces"),
    ("create", "events", "--namespace=deploy-ray"),
    ("watch", "customresourcedefinitions.apiextensions.k8s.io", ""),
    ("create", "services", "--namespace=deploy-ray"),  # each cluster's Ray metrics Service
    ("watch", "services", "--all-namespaces"),
    ("patch", "endpointslices.discovery.k8s.io", "--namespace=deploy-ray"),
    ("watch", "endpointslices.discovery.k8s.io", "--all-namespaces"),
]
# What no cluster needs. Minting tokens above all: a token of any ServiceAccount, in any namespace, would be
# that account's rights.
REFUSED = [
    ("create", "serviceaccounts", "--subresource=token --namespace=deploy-ray"),
    ("create", "serviceaccounts", "--subresource=token --namespace=kube-system"),
    ("create", "serviceaccounts", "--subresource=token --all-namespaces"),
    ("impersonate", "users", ""),
    ("impersonate", "serviceaccounts", "--namespace=kube-system"),
    ("delete", "namespaces", ""),
    ("create", "namespaces", ""),
    ("patch", "namespaces", ""),
    ("create", "vmrayclusters.vmray.broadcom.com", "--namespace=deploy-ray"),
    ("delete", "vmrayclusters.vmray.broadcom.com", "--namespace=deploy-ray"),
    ("update", "vmrayclusters.vmray.broadcom.com", "--namespace=deploy-ray"),
    ("update", "vmrayclusters.vmray.broadcom.com", "--subresource=status --namespace=deploy-ray"),
    ("get", "customresourcedefinitions.apiextensions.k8s.io", ""),
    ("create", "customresourcedefinitions.apiextensions.k8s.io", ""),
    ("update", "customresourcedefinitions.apiextensions.k8s.io", ""),
    ("patch", "customresourcedefinitions.apiextensions.k8s.io", ""),
    ("delete", "customresourcedefinitions.apiextensions.k8s.io", ""),
    ("create", "clusterroles.rbac.authorization.k8s.io", ""),
    ("patch", "clusterroles.rbac.authorization.k8s.io", ""),
    ("create", "clusterrolebindings.rbac.authorization.k8s.io", ""),
    ("bind", "clusterroles.rbac.authorization.k8s.io", ""),
    ("escalate", "roles.rbac.authorization.k8s.io", "--namespace=deploy-ray"),
    ("delete", "validatingadmissionpolicies.admissionregistration.k8s.io", ""),
    ("patch", "validatingadmissionpolicies.admissionregistration.k8s.io", ""),
    ("create", "validatingadmissionpolicybindings.admissionregistration.k8s.io", ""),
    ("delete", "validatingadmissionpolicybindings.admissionregistration.k8s.io", ""),
    ("create", "validatingwebhookconfigurations.admissionregistration.k8s.io", ""),
    ("create", "mutatingwebhookconfigurations.admissionregistration.k8s.io", ""),
    ("get", "pods", "--namespace=deploy-ray"),
    ("create", "pods", "--namespace=deploy-ray"),
    ("delete", "pods", "--namespace=deploy-ray"),
    ("create", "pods/exec", "--namespace=deploy-ray"),
    ("create", "deployments.apps", "--namespace=deploy-ray"),
    ("patch", "deployments.apps", "--namespace=deploy-ray"),
    ("create", "daemonsets.apps", "--namespace=kube-system"),
    ("update", "configmaps", "--namespace=kube-system"),
    ("get", "nodes", ""),
    ("patch", "nodes", ""),
    ("delete", "nodes", ""),
    ("create", "virtualmachineclasses.vmoperator.vmware.com", "--namespace=deploy-ray"),
    ("delete", "virtualmachineclasses.vmoperator.vmware.com", "--namespace=deploy-ray"),
    ("delete", "virtualmachineimages.vmoperator.vmware.com", "--namespace=deploy-ray"),
    ("delete", "clustervirtualmachineimages.vmoperator.vmware.com", ""),
    ("delete", "storageclasses.storage.k8s.io", ""),
    ("update", "secrets", "--namespace=deploy-ray"),
    ("deletecollection", "secrets", "--namespace=deploy-ray"),
    ("create", "certificatesigningrequests.certificates.k8s.io", ""),
    ("create", "persistentvolumeclaims", "--namespace=deploy-ray"),
    ("create", "endpoints", "--namespace=deploy-ray"),  # the metrics addresses are EndpointSlices only
]


def can_i(kubeconfig: Path, verb: str, resource: str, scope: str) -> bool:
    argv = [tool("kubectl"), "--kubeconfig", str(kubeconfig), "auth", "can-i", verb, resource]
    result = run(*argv, *scope.split(), check=False)
    assert result.stdout.strip() in ("yes", "no"), result.stderr
    return result.stdout.strip() == "yes"


def test_packaged_service_account_can_do_what_the_operator_does(installed: Install) -> None:
    denied = [rule for rule in ALLOWED if not can_i(installed.token_kubeconfig, *rule)]
    assert not denied


def test_packaged_service_account_cannot_do_unrelated_things(installed: Install) -> None:
    granted = [rule for rule in REFUSED if can_i(installed.token_kubeconfig, *rule)]
    assert not granted
