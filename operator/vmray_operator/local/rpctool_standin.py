"""`vmware-rpctool` on a simulated VM (local/guest_bin/vmware-rpctool runs this module): `info-set guestinfo.KEY
VALUE` keeps the value where the simulator reads it, as vSphere keeps the guestinfo values a guest sets, and
`info-get guestinfo.KEY` reads it back. Standard library only: this starts with every call in a guest."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path

INFO_ENV = "VMRAY_GUEST_INFO"  # the VM's directory of guestinfo values: a file per key, holding the value


def read_values(directory: Path) -> dict[str, str]:
    """The guestinfo values a guest set, by key."""
    if not directory.is_dir():
        return {}
    return {path.name: path.read_text() for path in directory.iterdir() if path.name.startswith("guestinfo.")}


def _set(directory: Path, key: str, value: str) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=directory, prefix=".set-")  # a reader never sees half a value
    with os.fdopen(handle, "w") as file:
        file.write(value)
    os.replace(temporary, directory / key)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 1:
        print("vmware-rpctool: give the RPC command as one argument", file=sys.stderr)
        return 1
    verb, _, rest = args[0].partition(" ")
    key, _, value = rest.partition(" ")
    if not os.environ.get(INFO_ENV):
        print(f"vmware-rpctool: {INFO_ENV} is not set: the stand-in runs only in a simulated VM", file=sys.stderr)
        return 1
    directory = Path(os.environ[INFO_ENV])
    if verb not in ("info-set", "info-get"):
        print(f"Unknown command: {verb}", file=sys.stderr)
        return 1
    if not key.startswith("guestinfo.") or "/" in key:
        print("Permission denied: a guest sets and gets only guestinfo.* keys", file=sys.stderr)
        return 1
    if verb == "info-set":
        _set(directory, key, value)
        return 0
    values = read_values(directory)
    if key not in values:
        print("No value found", file=sys.stderr)
        return 1
    print(values[key])
    return 0


if __name__ == "__main__":
    sys.exit(main())
