"""Validates user-data with cloud-init's own JSON schema (from Debian's cloud-init package, fetched by
ci/scripts/install-tools.sh), the way cloud-init in a guest would judge it."""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

from vmray_operator.local.tools import cache_dir

SCHEMA_FILE = "schema-cloud-config-v1.json"


def schema_path() -> Path:
    path = cache_dir() / SCHEMA_FILE
    if not path.exists():
        raise FileNotFoundError(f"cloud-init's schema is not installed ({path}): run 'make tools'")
    return path


@cache
def _validator() -> jsonschema.Draft4Validator:
    schema: dict[str, Any] = json.loads(schema_path().read_text())
    return jsonschema.Draft4Validator(schema)


def validate_user_data(text: str) -> list[str]:
    """Problems of a user-data document, each naming where it is; empty when cloud-init accepts it."""
    if not text.startswith("#cloud-config"):
        return ["user-data does not start with '#cloud-config'"]
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as error:
        return [f"user-data is not valid YAML: {error}"]
    if not isinstance(document, dict):
        return ["user-data is not a mapping"]
    errors = sorted(_validator().iter_errors(document), key=lambda e: list(e.absolute_path))
    return [f"{'.'.join(str(p) for p in e.absolute_path) or '(top)'}: {e.message}" for e in errors]
