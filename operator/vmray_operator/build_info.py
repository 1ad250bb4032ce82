"""What this operator is: its version and the versions it was built with, read from the installed package's
metadata (for `vmray-operator --version` and the `vmray_build_info` metric)."""

from __future__ import annotations

import importlib.metadata
import platform
import re
from dataclasses import dataclass
from functools import cache

from vmray_operator import __version__

DISTRIBUTION = "vmray-operator"
# pyproject.toml pins the Ray release of the `ray` extra (the local cloud, the demo and the end-to-end tests).
_RAY_PIN = re.compile(r"^ray(\[[^\]]*\])?\s*==\s*(?P<version>[^;\s]+)")


@dataclass(frozen=True)
class BuildInfo:
    version: str
    ray: str  # the Ray release the package is tested with
    kopf: str
    python: str

    def describe(self) -> str:
        return f"{DISTRIBUTION} {self.version} (Ray {self.ray}, kopf {self.kopf}, Python {self.python})"


def _installed(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def _pinned_ray() -> str:
    try:
        requirements = importlib.metadata.requires(DISTRIBUTION) or []
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
    for requirement in requirements:
        match = _RAY_PIN.match(requirement)
        if match:
            return match["version"]
    return "unknown"


@cache
def build_info() -> BuildInfo:
    version = _installed(DISTRIBUTION)
    return BuildInfo(
        version=__version__ if version == "unknown" else version,
        ray=_pinned_ray(),
        kopf=_installed("kopf"),
        python=platform.python_version(),
    )
