"""Where the project's pinned tools live (built by ci/scripts/install-tools.sh)."""

from __future__ import annotations

import os
import shutil
from pathlib import Path


def cache_dir() -> Path:
    return Path(os.environ.get("VMRAY_CACHE", Path.home() / ".cache" / "vmray-dev"))


def tool_path(name: str) -> Path:
    """The pinned build of a tool, falling back to PATH; raises when it is nowhere."""
    pinned = cache_dir() / "bin" / name
    if pinned.exists():
        return pinned
    found = shutil.which(name)
    if found:
        return Path(found)
    raise FileNotFoundError(
        f"{name} is not installed: run 'make tools' (ci/scripts/install-tools.sh) to build the pinned tools"
    )
