"""Whether a node's user-data fits the Secret that carries it and, when it does not, which field of the spec
makes it large: a spec the CRD accepts can render more than a Secret holds, and the API server's refusal
would not say what to shorten."""

from __future__ import annotations

from vmray_operator.api.models import VMRayClusterSpec
from vmray_operator.render.names import ROLE_HEAD

KIB = 1024
MIB = 1024 * KIB
SECRET_DATA_LIMIT = MIB  # Kubernetes refuses a Secret whose data values add up to more
# The API server counts only the data against the limit, but the Secret travels and is stored as one object
# with its metadata (name, labels, owner reference, managed fields): some room is kept for those.
METADATA_MARGIN = 32 * KIB
USER_DATA_BUDGET = SECRET_DATA_LIMIT - METADATA_MARGIN


def _size(values: list[str]) -> int:
    return sum(len(value.encode()) for value in values)


def _sizes(role: str, node_type: str, spec: VMRayClusterSpec) -> dict[str, int]:
    """The bytes each field a user can make large takes in the spec, for the fields that reach this node's
    user-data (a field rendered more than once weighs more there; the ranking stays the same)."""
    common = spec.common_node_config
    fields: dict[str, list[str]] = {
        "common_node_config.setup_commands": common.setup_commands,
        "common_node_config.initialization_commands": common.initialization_commands,
        "api_server.ca_cert": [spec.api_server.ca_cert or ""],
        "api_server.location": [spec.api_server.location or ""],
        "ray_docker_image": [spec.ray_docker_image],
        "common_node_config.vm_password_salt_hash": [common.vm_password_salt_hash or ""],
    }
    if role == ROLE_HEAD:
        fields["head_node.setup_commands"] = spec.head_node.setup_commands
        fields["head_node.head_setup_commands"] = spec.head_node.head_setup_commands
        if spec.autoscaling.enabled:  # the head's autoscaler config names every node type
            fields["common_node_config.available_node_types"] = [
                text
                for name, described in common.available_node_types.items()
                for text in (name, described.vm_class, *described.resources)
            ]
    else:
        fields["worker_node.setup_commands"] = spec.worker_node.setup_commands
    own_type = common.available_node_types.get(node_type)
    if own_type is not None:
        prefix = f"common_node_config.available_node_types.{node_type}"
        fields[f"{prefix}.resources"] = list(own_type.resources)
        fields[f"{prefix}.ray_labels"] = [*own_type.ray_labels, *own_type.ray_labels.values()]
    storage = common.shared_storage
    if storage is not None:
        fields["common_node_config.shared_storage.export_path"] = [storage.export_path]
        fields["common_node_config.shared_storage.mount_path"] = [storage.mount_path]
        fields["common_node_config.shared_storage.mount_options"] = [storage.mount_options]
    return {path: _size(values) for path, values in fields.items()}


def readable_size(size: int) -> str:
    if size < KIB:
        return f"{size} bytes"
    if size < MIB:
        return f"{size / KIB:.0f} KiB"
    return f"{size / MIB:.2f}".rstrip("0").rstrip(".") + " MiB"


def user_data_over_budget(user_data: str, role: str, node_type: str, spec: VMRayClusterSpec) -> str | None:
    """None when the user-data of a node of this role and type fits its Secret; otherwise one line that names
    the node, the size, the limit and the spec field that takes the most bytes."""
    size = len(user_data.encode())
    if size <= USER_DATA_BUDGET:
        return None
    message = (
        f"the cloud-init user-data of the {role} node (type {node_type}) is {size} bytes ({readable_size(size)}), "
        f"more than the {USER_DATA_BUDGET} bytes its Secret can hold ({readable_size(SECRET_DATA_LIMIT)} less "
        f"{readable_size(METADATA_MARGIN)} kept for the Secret's metadata)"
    )
    path, largest = max(_sizes(role, node_type, spec).items(), key=lambda item: item[1])
    if largest > 0:
        message += f"; the largest part is {path} ({readable_size(largest)})"
    return message
