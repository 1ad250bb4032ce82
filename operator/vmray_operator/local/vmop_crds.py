"""Reduced structural CRDs for VM Operator (vmoperator.vmware.com), written for the local cloud.

The real CRDs are very large; these keep the names, scopes, versions, short names, printer columns
and the status subresource, and leave spec and status open so that objects of every served version
round-trip unchanged (from v1alpha2 on, the fields we use have the same shape)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GROUP = "vmoperator.vmware.com"
SUPPORTED_VERSIONS = ("v1alpha2", "v1alpha3", "v1alpha4", "v1alpha5")


@dataclass(frozen=True)
class Kind:
    kind: str
    plural: str
    short_names: tuple[str, ...]
    namespaced: bool
    columns: tuple[tuple[str, str, str], ...]  # (name, type, jsonPath)


KINDS = (
    Kind(
        "VirtualMachine",
        "virtualmachines",
        ("vm",),
        True,
        (
            ("Power-State", "string", ".status.powerState"),
            ("Class", "string", ".spec.className"),
            ("Image", "string", ".spec.imageName"),
            ("Primary-IP4", "string", ".status.network.primaryIP4"),
        ),
    ),
    Kind(
        "VirtualMachineService",
        "virtualmachineservices",
        ("vmservice",),
        True,
        (
            ("Type", "string", ".spec.type"),
            ("External-IP", "string", ".status.loadBalancer.ingress[0].ip"),
        ),
    ),
    Kind(
        "VirtualMachineClass",
        "virtualmachineclasses",
        ("vmclass",),
        True,
        (
            ("CPU", "string", ".spec.hardware.cpus"),
            ("Memory", "string", ".spec.hardware.memory"),
        ),
    ),
    Kind(
        "VirtualMachineImage",
        "virtualmachineimages",
        ("vmi", "vmimage"),
        True,
        (("Display-Name", "string", ".status.name"),),
    ),
    Kind(
        "ClusterVirtualMachineImage",
        "clustervirtualmachineimages",
        ("cvmi", "cvmimage"),
        False,
        (("Display-Name", "string", ".status.name"),),
    ),
)


def _version(name: str, storage: bool, kind: Kind) -> dict[str, Any]:
    open_object = {"type": "object", "x-kubernetes-preserve-unknown-fields": True}
    return {
        "name": name,
        "served": True,
        "storage": storage,
        "subresources": {"status": {}},
        "additionalPrinterColumns": [
            *({"name": n, "type": t, "jsonPath": p} for n, t, p in kind.columns),
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
        "schema": {
            "openAPIV3Schema": {
                "type": "object",
                "properties": {
                    "apiVersion": {"type": "string"},
                    "kind": {"type": "string"},
                    "metadata": {"type": "object"},
                    "spec": open_object,
                    "status": open_object,
                },
            }
        },
    }


def crds(versions: tuple[str, ...] = SUPPORTED_VERSIONS) -> list[dict[str, Any]]:
    """The CRDs serving the given versions; the first one is the storage version."""
    if not versions:
        raise ValueError("at least one VM Operator API version must be served")
    return [
        {
            "apiVersion": "apiextensions.k8s.io/v1",
            "kind": "CustomResourceDefinition",
            "metadata": {"name": f"{kind.plural}.{GROUP}"},
            "spec": {
                "group": GROUP,
                "scope": "Namespaced" if kind.namespaced else "Cluster",
                "names": {
                    "kind": kind.kind,
                    "listKind": f"{kind.kind}List",
                    "plural": kind.plural,
                    "singular": kind.kind.lower(),
                    "shortNames": list(kind.short_names),
                },
                "versions": [_version(v, i == 0, kind) for i, v in enumerate(versions)],
            },
        }
        for kind in KINDS
    ]
