"""`make generate`: the files of crds/ the API models give (the VMRayCluster CRD and the admission policy of a
cluster's token). A test fails when a checked-in file differs from what the models give.

    python -m vmray_operator.api.generated [DIRECTORY]    (default crds)
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import yaml

GENERATED_HEADER = "# Generated from operator/vmray_operator/api/models.py by `make generate`; do not edit.\n"


class _FullDumper(yaml.SafeDumper):
    """Writes a value that occurs twice out twice: no anchors and aliases (&id001) for a reader to resolve."""

    def ignore_aliases(self, data: Any) -> bool:
        return True


def generated_yaml(*documents: Any) -> str:
    """The text of a generated file: the header, then the documents in their own key order."""
    return GENERATED_HEADER + yaml.dump_all(documents, Dumper=_FullDumper, sort_keys=False, width=110)


def generated_files() -> dict[str, str]:
    from vmray_operator.api import admission, crd

    return {crd.CRD_FILE: crd.render(), admission.POLICY_FILE: admission.render()}


def main(argv: list[str]) -> int:
    directory = Path(argv[1] if len(argv) > 1 else "crds")
    for name, text in generated_files().items():
        (directory / name).write_text(text)
        print(f"wrote {directory / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
