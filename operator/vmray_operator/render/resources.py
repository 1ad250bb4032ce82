"""A node type's Ray resources under Ray's own names."""

from __future__ import annotations

from vmray_operator.api.models import NodeType

_CPU_KEYS = ("cpu", "CPU")
_GPU_KEYS = ("gpu", "GPU")
_MEMORY_KEYS = ("memory",)


def ray_resources(node_type: NodeType) -> dict[str, float]:
    """A node type's resources under Ray's own names (CPU, GPU, memory, custom names as written)."""
    result: dict[str, float] = {}
    for key, value in sorted(node_type.resources.items()):
        if key in _CPU_KEYS:
            result["CPU"] = value
        elif key in _GPU_KEYS:
            result["GPU"] = value
        elif key in _MEMORY_KEYS:
            result["memory"] = float(int(value))
        else:
            result[key] = value
    return result


def gpus(node_type: NodeType) -> int:
    return int(next((node_type.resources[k] for k in _GPU_KEYS if k in node_type.resources), 0))
