"""`make generate`: the files of crds/ the API models give (the VMRayCluster CRD and the admission policy of a
cluster's token). A test fails when a checked-in file differs from what the models give.

    python -m vmray_operator.api.generated [DIRECTORY]    (default crds)
"""

from __future__ import annotations

import sys
from pathlib import Path

GENERATED_HEADER = "# Generated from operator/vmray_operator/api/models.py by `make generate`; do not edit.\n"


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
