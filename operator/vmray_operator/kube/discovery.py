"""Which VM Operator API version to speak: the highest one both the Supervisor serves and we support."""

from __future__ import annotations

from vmray_operator.api.contract import SUPPORTED_VMOP_VERSIONS, VMOP_GROUP
from vmray_operator.kube.client import Kube, NotFound


class UnsupportedVmOperator(RuntimeError):
    pass


def choose_version(served: list[str], override: str | None = None) -> str:
    if override:
        if override not in SUPPORTED_VMOP_VERSIONS:
            raise UnsupportedVmOperator(
                f"VM Operator API version {override!r} is not supported; "
                f"use one of {', '.join(SUPPORTED_VMOP_VERSIONS)}"
            )
        if override not in served:
            raise UnsupportedVmOperator(
                f"VM Operator API version {override!r} is not served here; served: {', '.join(served) or 'none'}"
            )
        return override
    usable = [v for v in SUPPORTED_VMOP_VERSIONS if v in served]
    if not usable:
        raise UnsupportedVmOperator(
            f"no supported VM Operator API version is served (served: {', '.join(served) or 'none'}; "
            f"supported: {', '.join(SUPPORTED_VMOP_VERSIONS)})"
        )
    return usable[-1]


async def served_versions(kube: Kube) -> list[str]:
    try:
        group = await kube.request("GET", f"/apis/{VMOP_GROUP}")
    except NotFound:
        return []
    return [str(v["version"]) for v in group.get("versions", [])]


async def vmop_version(kube: Kube, override: str | None = None) -> str:
    return choose_version(await served_versions(kube), override)
