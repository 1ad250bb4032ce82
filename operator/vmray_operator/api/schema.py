"""Turns pydantic's JSON schema into a structural OpenAPI v3 schema that Kubernetes accepts:
references inlined, optional values as plain types (no anyOf/null), titles dropped."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

_KEEP = {
    "type",
    "description",
    "default",
    "properties",
    "required",
    "items",
    "additionalProperties",
    "minimum",
    "maximum",
    "exclusiveMinimum",
    "exclusiveMaximum",
    "minLength",
    "maxLength",
    "pattern",
    "minItems",
    "maxItems",
    "minProperties",
    "maxProperties",
    "enum",
    "format",
    "x-kubernetes-validations",
    "x-kubernetes-preserve-unknown-fields",
    "x-kubernetes-list-type",
    "x-kubernetes-list-map-keys",
    "nullable",
}
_RENAMES = {"const": "enum"}


def _resolve(node: Any, defs: dict[str, Any]) -> Any:
    if isinstance(node, list):
        return [_resolve(item, defs) for item in node]
    if not isinstance(node, dict):
        return node
    if "$ref" in node:
        target = defs[node["$ref"].rsplit("/", 1)[-1]]
        merged = {**_resolve(target, defs), **{k: v for k, v in node.items() if k != "$ref"}}
        return _resolve(merged, defs)
    if "anyOf" in node:
        branches = [b for b in node["anyOf"] if b.get("type") != "null"]
        if len(branches) != 1:
            raise ValueError(f"cannot make a structural schema of a union: {node}")
        rest = {k: v for k, v in node.items() if k != "anyOf"}
        if rest.get("default", ...) is None:
            rest.pop("default")
        # Clients such as Ray's autoscaler send null for unset optional values.
        return {**_resolve({**branches[0], **rest}, defs), "nullable": True}
    if "allOf" in node and len(node["allOf"]) == 1:
        rest = {k: v for k, v in node.items() if k != "allOf"}
        return _resolve({**node["allOf"][0], **rest}, defs)
    result: dict[str, Any] = {}
    for key, value in node.items():
        if key == "properties":
            result[key] = {name: _resolve(prop, defs) for name, prop in value.items()}
        elif key in ("items", "additionalProperties"):
            if isinstance(value, dict):
                result[key] = _resolve(value, defs)
            # additionalProperties: true is not structural; preserve-unknown-fields says it instead
        elif key in _RENAMES:
            result[_RENAMES[key]] = [value]
        elif key in _KEEP:
            result[key] = value
    if result.get("type") == "integer" and isinstance(result.get("default"), float):
        result["default"] = int(result["default"])
    return result


def structural(model: type[BaseModel]) -> dict[str, Any]:
    raw = model.model_json_schema(mode="validation", ref_template="#/$defs/{model}")
    defs = raw.pop("$defs", {})
    schema: dict[str, Any] = _resolve(raw, defs)
    return schema
