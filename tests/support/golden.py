"""Golden files: rendered output compared with a checked-in copy. VMRAY_UPDATE_GOLDEN=1 rewrites them."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import yaml

GOLDEN_DIR = Path(__file__).resolve().parents[1] / "unit" / "golden"


def assert_golden(name: str, value: Any) -> None:
    text = value if isinstance(value, str) else yaml.safe_dump(value, sort_keys=True, width=120)
    path = GOLDEN_DIR / name
    if os.environ.get("VMRAY_UPDATE_GOLDEN") == "1":
        path.write_text(text)
    assert path.exists(), f"{path} is missing: run with VMRAY_UPDATE_GOLDEN=1 to write it"
    assert text == path.read_text(), f"{name} differs from its golden file (VMRAY_UPDATE_GOLDEN=1 updates it)"
