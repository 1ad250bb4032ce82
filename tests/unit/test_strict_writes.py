"""Every write the client sends asks for strict field validation: an unknown or misplaced field is an error."""

from __future__ import annotations

from typing import Any

import kubernetes.client
import pytest

from vmray_operator.kube import resources as r
from vmray_operator.kube.client import Kube


class Recording(Kube):
    """A client that records what it would send instead of sending it."""

    def __init__(self) -> None:
        configuration = kubernetes.client.Configuration()
        configuration.host = "https://127.0.0.1:1"
        super().__init__(configuration, concurrency=1)
        self.sent: list[tuple[str, str, dict[str, str]]] = []

    def _call(self, call: Any) -> Any:
        self.sent.append((call.method, call.path, dict(call.query)))
        return {"items": []} if call.method == "GET" else {}


@pytest.fixture
def kube() -> Recording:
    return Recording()


async def test_create_patch_apply_and_put_are_strict(kube: Recording) -> None:
    vm = {"apiVersion": "vmoperator.vmware.com/v1alpha5", "kind": "VirtualMachine", "metadata": {"name": "v"}}
    await kube.create(r.VIRTUAL_MACHINES, vm, "n")
    await kube.patch(r.VIRTUAL_MACHINES, "v", {"spec": {"powerState": "PoweredOff"}}, "n")
    await kube.patch(r.VMRAYCLUSTERS, "c", {"status": {}}, "n", subresource="status")
    await kube.apply(r.VIRTUAL_MACHINES, vm, field_manager="m", namespace="n")
    await kube.request("PUT", r.VIRTUAL_MACHINES.path("n", "v"), body=vm)
    await kube.request("POST", r.VIRTUAL_MACHINES.path("n"), {"dryRun": "All"}, body=vm)
    assert [m for m, _, _ in kube.sent] == ["POST", "PATCH", "PATCH", "PATCH", "PUT", "POST"]
    assert all(q.get("fieldValidation") == "Strict" for _, _, q in kube.sent)
    assert kube.sent[3][2]["fieldManager"] == "m"  # the caller's parameters stay
    assert kube.sent[5][2]["dryRun"] == "All"


async def test_reads_and_deletes_carry_no_validation(kube: Recording) -> None:
    await kube.get(r.VIRTUAL_MACHINES, "v", "n")
    await kube.list(r.VIRTUAL_MACHINES, "n")
    await kube.delete(r.VIRTUAL_MACHINES, "v", "n")
    assert [m for m, _, _ in kube.sent] == ["GET", "GET", "DELETE"]
    assert not any("fieldValidation" in q for _, _, q in kube.sent)
