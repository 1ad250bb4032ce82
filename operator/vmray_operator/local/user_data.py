"""What a simulated guest takes from its cloud-config user-data, as cloud-init reads it: the files to write,
the commands of runcmd in order, and the mount points of `mounts`."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import yaml


@dataclass(frozen=True)
class GuestFile:
    path: str
    content: bytes
    mode: int


@dataclass(frozen=True)
class CloudConfig:
    files: list[GuestFile]
    runcmd: list[list[str]]  # each an argv; a string entry of runcmd becomes `sh -c` as cloud-init runs it
    mount_points: list[str]


def _file(entry: dict[str, Any]) -> GuestFile:
    content = entry.get("content", "")
    data = base64.b64decode(content) if entry.get("encoding") in ("b64", "base64") else str(content).encode()
    return GuestFile(str(entry["path"]), data, int(str(entry.get("permissions", "0644")), 8))


def parse_user_data(text: str) -> CloudConfig:
    document = yaml.safe_load(text) or {}
    files = [_file(entry) for entry in document.get("write_files") or [] if entry.get("path")]
    runcmd = [
        ["sh", "-c", entry] if isinstance(entry, str) else [str(arg) for arg in entry]
        for entry in document.get("runcmd") or []
    ]
    mount_points = [str(row[1]) for row in document.get("mounts") or [] if isinstance(row, list) and len(row) > 1]
    return CloudConfig(files, runcmd, mount_points)
