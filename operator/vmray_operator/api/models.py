"""VMRayCluster spec and status (vmray.broadcom.com/v1alpha1).

Field names are snake_case: they are the contract with the seed's sample and with Ray's own vSphere
autoscaler, which reads and patches this object. Descriptions become `kubectl explain` text; rules in
`x-kubernetes-validations` are enforced by the API server (CEL), so bad input is refused at apply time
with a message that names the field."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DNS_LABEL = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"
DNS_SUBDOMAIN = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"  # names of most Kubernetes objects
NODE_TYPE_NAME = r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
# registry/path/name[:tag][@sha256:digest]; lower-case path components as OCI requires
IMAGE_REFERENCE = (
    r"^([a-zA-Z0-9.-]+(:[0-9]+)?/)?[a-z0-9]+([._-][a-z0-9]+)*(/[a-z0-9]+([._-][a-z0-9]+)*)*"
    r"(:[A-Za-z0-9_][A-Za-z0-9_.-]{0,127})?(@sha256:[a-f0-9]{64})?$"
)
PASSWORD_HASH = r"^$|^\$(1|5|6|y|2[aby]?)\$[^\s:]+$"
MAX_CLUSTER_WORKERS = 1000
MAX_NODE_TYPES = 32
MAX_COMMANDS = 100
MAX_COMMAND_LENGTH = 4096

Rule = dict[str, str]


def rules(*items: Rule) -> dict[str, Any]:
    return {"x-kubernetes-validations": list(items)}


class _Model(BaseModel):
    # The API server prunes unknown fields before we see the object; ignoring extras here keeps the
    # operator working when a newer CRD adds fields.
    model_config = ConfigDict(extra="ignore", populate_by_name=True)


def _commands(text: str) -> Any:
    return Field(
        default_factory=list,
        description=text,
        max_length=MAX_COMMANDS,
        json_schema_extra={"items": {"type": "string", "minLength": 1, "maxLength": MAX_COMMAND_LENGTH}},
    )


class ApiServer(_Model):
    location: str | None = Field(
        default=None,
        max_length=253,
        description="Address (host or host:port) of the Supervisor's Kubernetes API that the head's Ray "
        "autoscaler talks to. Empty: the operator's configured default.",
    )
    ca_cert: str | None = Field(
        default=None,
        max_length=65536,
        description="PEM CA bundle that signs the API server's certificate. Empty: the operator's default.",
    )


class HeadNode(_Model):
    node_type: str = Field(
        min_length=1,
        max_length=63,
        pattern=NODE_TYPE_NAME,
        description="Name of the entry in common_node_config.available_node_types that describes the head VM. "
        "Immutable.",
    )
    port: int = Field(
        default=6379,
        ge=1024,
        le=65535,
        description="Port of Ray's GCS on the head (ray start --port). Immutable.",
    )
    setup_commands: list[str] = _commands("Shell commands run on the head VM before Ray starts, in order.")
    head_setup_commands: list[str] = _commands(
        "Commands written by Ray's `ray up` (its head_setup_commands); run after setup_commands."
    )


class WorkerNode(_Model):
    setup_commands: list[str] = _commands("Shell commands run on every worker VM before Ray starts, in order.")


Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[Weekday, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
TIME_OF_DAY = r"^([01][0-9]|2[0-3]):[0-5][0-9]$"


class ScheduleWindow(_Model):
    """A time of the week when the node type's workers may run."""

    days: list[Weekday] = Field(
        default_factory=lambda: list(WEEKDAYS),
        min_length=1,
        max_length=7,
        description="Days the window opens on (mon, tue, wed, thu, fri, sat, sun); all by default.",
    )
    start: str = Field(pattern=TIME_OF_DAY, description="When the window opens, HH:MM in the schedule's time zone.")
    end: str = Field(
        pattern=TIME_OF_DAY,
        description="When it closes, HH:MM; at or before start: the next day (18:00 to 06:00 runs overnight, and "
        "equal to start a whole day).",
    )


class NodeTypeSchedule(_Model):
    windows: list[ScheduleWindow] = Field(
        min_length=1,
        max_length=14,
        description="When workers of this type may exist. Outside every window the type's min and max workers are "
        "0, for Ray's autoscaler and the operator alike.",
    )
    time_zone: str = Field(
        default="UTC",
        min_length=1,
        max_length=64,
        pattern=r"^[A-Za-z0-9_+/-]+$",
        description="IANA time zone of the windows (for example Europe/Berlin); daylight-saving changes follow it.",
    )
    drain_minutes_before_end: int = Field(
        default=15,
        ge=0,
        le=720,
        description="Minutes before a window closes when its workers are drained (Ray places no new work on them; "
        "running tasks finish or are retried elsewhere) and taken away; none are added after that.",
    )


class NodeType(_Model):
    """A kind of VM of the cluster: its VM class, how many of it, and the Ray resources and labels it offers."""

    vm_class: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="VirtualMachineClass of VMs of this type (kubectl get vmclass).",
    )
    min_workers: int = Field(
        default=0,
        ge=0,
        le=MAX_CLUSTER_WORKERS,
        description="Workers of this type kept at all times. Ignored for the head's type.",
    )
    max_workers: int = Field(
        default=2,
        ge=0,
        le=MAX_CLUSTER_WORKERS,
        description="Most workers of this type; at most common_node_config.max_workers.",
    )
    resources: dict[str, float] = Field(
        default_factory=dict,
        max_length=32,
        description="Ray resources a node of this type offers: cpu (or CPU), gpu (or GPU), memory (bytes, as "
        "Ray counts it) and any custom resource name. Empty: Ray detects CPUs and memory itself.",
        json_schema_extra={"additionalProperties": {"type": "number", "minimum": 0}},
    )
    ray_labels: dict[str, str] = Field(
        default_factory=dict,
        max_length=32,
        description="Ray node labels (ray start --labels) of nodes of this type.",
        json_schema_extra={"additionalProperties": {"type": "string", "maxLength": 63}},
    )
    schedule: NodeTypeSchedule | None = Field(
        default=None,
        description="Time windows when workers of this type run (a tier of nodes for nights, say); none: always. "
        "Not for the head's type.",
    )


class SecretKeyRef(_Model):
    name: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="Name of a Secret in the cluster's namespace.",
    )
    key: str = Field(
        default="password_hash",
        min_length=1,
        max_length=253,
        pattern=r"^[-._a-zA-Z0-9]+$",
        description="Key in the Secret's data.",
    )


class SharedStorage(_Model):
    nfs_server: str = Field(
        min_length=1,
        max_length=253,
        pattern=r"^[A-Za-z0-9]([-A-Za-z0-9.:]*[A-Za-z0-9])?$",
        description="Host name or address of the NFS server, for example a vSAN File Service share's address.",
    )
    export_path: str = Field(
        min_length=1,
        max_length=1024,
        pattern=r"^/[^\s,]*$",
        description="Exported path on the server, as the file share shows it.",
    )
    mount_path: str = Field(
        default="/mnt/shared_storage",
        min_length=2,
        max_length=1024,
        pattern=r"^/[A-Za-z0-9._/-]*$",
        description="Where every VM mounts it; the Ray container sees it at the same path (for Ray Train and "
        "Tune's storage_path).",
    )
    mount_options: str = Field(
        default="nfsvers=4.1,nofail",
        max_length=512,
        pattern=r"^[A-Za-z0-9=,._:-]*$",
        description="NFS mount options; nofail is added if missing, so a VM boots even while the server is away.",
    )


class CommonNodeConfig(_Model):
    vm_image: str = Field(
        min_length=1,
        max_length=253,
        description="VirtualMachineImage or ClusterVirtualMachineImage (object or display name) of every VM "
        "(kubectl get vmi).",
    )
    storage_class: str = Field(
        min_length=1,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="Storage class of the VMs' disks, one assigned to the namespace. Immutable.",
    )
    vm_user: str = Field(
        default="ray",
        min_length=1,
        max_length=32,
        pattern=r"^[a-z_][a-z0-9_-]*$",
        description="Login user created on every VM. Immutable.",
    )
    vm_password_salt_hash: str | None = Field(
        default=None,
        max_length=512,
        pattern=PASSWORD_HASH,
        description="crypt(3) hash of vm_user's password (for example from `mkpasswd -m sha-512`). Empty, and "
        "no vm_password_secret: password login is locked.",
    )
    vm_password_secret: SecretKeyRef | None = Field(
        default=None,
        description="A Secret holding the crypt(3) hash of vm_user's password, instead of vm_password_salt_hash.",
    )
    shared_storage: SharedStorage | None = Field(
        default=None,
        description="An NFS share every VM mounts before Ray starts (for example from vSAN File Service).",
    )
    max_workers: int = Field(
        default=2,
        ge=0,
        le=MAX_CLUSTER_WORKERS,
        description="Most worker VMs of the whole cluster (Ray's max_workers).",
    )
    available_node_types: dict[str, NodeType] = Field(
        min_length=1,
        max_length=MAX_NODE_TYPES,
        description="Node types by name: the head's type and the worker types Ray may scale.",
        json_schema_extra=rules(
            {
                "rule": "self.all(k, k.matches('" + NODE_TYPE_NAME + "') && size(k) <= 63)",
                "message": "node type names must be 1-63 letters, digits, '-', '_' or '.', starting and ending "
                "with a letter or digit",
            },
        ),
    )
    network: dict[str, Any] | None = Field(
        default=None,
        description="VM network settings, passed to each VirtualMachine's spec.network as written. Immutable.",
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
    idle_timeout_minutes: int = Field(
        default=5,
        ge=1,
        le=10080,
        description="Minutes a worker stays idle before Ray's autoscaler removes it.",
    )
    setup_commands: list[str] = _commands("Shell commands run on every VM before Ray starts, first of all.")
    initialization_commands: list[str] = _commands(
        "Shell commands run on every VM before the Ray container is pulled (on the VM, not in the container)."
    )


class DockerConfig(_Model):
    auth_secret_name: str | None = Field(
        default=None,
        max_length=253,
        pattern=DNS_SUBDOMAIN,
        description="Secret in this namespace with registry credentials (keys username, password and "
        "optionally registry) for pulling ray_docker_image.",
    )


class Autoscaling(_Model):
    enabled: bool = Field(
        default=True,
        description="Run Ray's autoscaler on the head. Off: the operator keeps each type's min_workers itself.",
    )
    upscaling_speed: float = Field(
        default=1.0,
        ge=0,
        le=100,
        description="How fast Ray's autoscaler adds nodes (Ray's upscaling_speed).",
    )


class DeletionPolicy(_Model):
    wait_for_jobs: bool = Field(
        default=False,
        description="On deletion, wait while Ray reports running or pending jobs (at most max_wait_minutes), then "
        "take the cluster down.",
    )
    max_wait_minutes: int = Field(default=60, ge=1, le=10080, description="Longest a deletion waits for running jobs.")


# Where Ray's dashboard reaches Prometheus and Grafana: http(s), no spaces or quotes (they go into an environment).
HTTP_URL = r"^https?://[^\s\"'\\`$]+$"


class Monitoring(_Model):
    """Where the Ray dashboard's metrics views find Prometheus and Grafana. Every node serves Ray's metrics on a
    fixed port either way, published for Prometheus in a Service and EndpointSlices named ray-metrics-<cluster>."""

    prometheus_url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=HTTP_URL,
        description="Prometheus that scrapes this cluster, as the head VM reaches it (RAY_PROMETHEUS_HOST), for "
        "example http://prometheus.example.com:9090. Changing it replaces the head VM.",
    )
    grafana_url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=HTTP_URL,
        description="Grafana holding Ray's dashboards, as the head VM reaches it (RAY_GRAFANA_HOST). Changing it "
        "replaces the head VM.",
    )
    grafana_iframe_url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=HTTP_URL,
        description="Grafana as the browsers of the dashboard's users reach it (RAY_GRAFANA_IFRAME_HOST), when that "
        "differs from grafana_url. Changing it replaces the head VM.",
    )


class VMRayClusterSpec(_Model):
    """The Ray cluster wanted: its VMs, how Ray runs on them, and who may scale it. Ray's vSphere autoscaler reads
    and patches it by these names."""

    api_server: ApiServer = Field(
        default_factory=ApiServer, description="Where the head's autoscaler reaches Kubernetes."
    )
    ray_docker_image: str = Field(
        min_length=1,
        max_length=512,
        pattern=IMAGE_REFERENCE,
        description="Container image that runs Ray on every VM, for example rayproject/ray:2.60.0.",
    )
    head_node: HeadNode = Field(description="The head VM.")
    worker_node: WorkerNode = Field(default_factory=WorkerNode, description="Settings of every worker VM.")
    common_node_config: CommonNodeConfig = Field(description="Settings shared by every VM of the cluster.")
    autoscaler_desired_workers: dict[str, str] = Field(
        default_factory=dict,
        max_length=MAX_CLUSTER_WORKERS,
        description="Worker VMs that should exist: VM name -> node type. Ray's autoscaler adds and removes "
        "entries; the operator seeds it with each type's min_workers.",
    )
    autoscaling: Autoscaling = Field(default_factory=Autoscaling, description="Ray's autoscaler on the head.")
    enable_tls: bool = Field(
        default=True, description="Mutual TLS between Ray nodes, with a CA per cluster. Immutable."
    )
    enable_token_auth: bool = Field(
        default=True,
        description="Ray's token authentication (RAY_AUTH_MODE=token, Ray 2.52 and later): the dashboard, the job "
        "API and every Ray service ask for the cluster's token, kept in the Secret status.endpoints.auth_token_secret "
        "names. Turn it off only for Ray images older than 2.52. Immutable.",
    )
    docker_config: DockerConfig = Field(default_factory=DockerConfig, description="Registry credentials.")
    monitoring: Monitoring = Field(
        default_factory=Monitoring, description="Prometheus and Grafana for the Ray dashboard's metrics views."
    )
    suspend: bool = Field(
        default=False,
        description="True: the workers are drained and removed and the head VM is powered off softly (Ray drains; its "
        "disk stays), while the load balancer, the cluster's CA, identity and endpoints stay. False again: the head "
        "boots, Ray starts, the workers come back.",
    )
    idle_suspend_minutes: int | None = Field(
        default=None,
        ge=1,
        le=10080,
        description="Suspend the cluster (set suspend) once Ray has been idle this long: no job running or pending, "
        "no task running, no actor alive. Unset: never.",
    )
    deletion_policy: DeletionPolicy = Field(
        default_factory=lambda: DeletionPolicy(), description="What deleting the cluster waits for."
    )


VmStatus = Literal["initialized", "running", "failure"]


class NodeStatus(_Model):
    """One VM of the cluster as VM Operator and Ray report it."""

    ip: str | None = Field(default=None, description="Primary IPv4 address of the VM.")
    vm_status: VmStatus = Field(
        default="initialized",
        description="initialized while the VM and Ray start, running when it is up, failure when it failed.",
    )
    node_type: str | None = Field(default=None, description="Node type of the VM.")
    power_state: str | None = Field(default=None, description="Power state VM Operator reports.")
    reason: str | None = Field(default=None, description="Why the VM is not running yet, as one word.")
    ray_status: str | None = Field(default=None, description="ALIVE or DEAD, as Ray reports the VM's node.")
    ray_node_id: str | None = Field(default=None, description="Ray's id of the VM's node.")
    outdated: bool | None = Field(
        default=None,
        description="true while the VM runs an outdated bootstrap or VM class and waits to be replaced (drained, "
        "deleted and created again under the same name); absent otherwise.",
    )


class RaySummary(_Model):
    version: str | None = Field(default=None, description="Ray version the head runs.")
    alive_nodes: int | None = Field(default=None, description="Ray nodes alive.")
    cpus: float | None = Field(default=None, description="CPUs of the live nodes.")
    gpus: float | None = Field(default=None, description="GPUs of the live nodes.")
    memory_bytes: int | None = Field(default=None, description="Memory of the live nodes, in bytes.")


class VmServiceStatus(_Model):
    ip: str | None = Field(default=None, description="External (load balancer) address of the head service.")


class Endpoints(_Model):
    dashboard: str | None = Field(default=None, description="URL of the Ray dashboard and job API.")
    client: str | None = Field(default=None, description="Ray client address (ray://host:10001).")
    gcs: str | None = Field(default=None, description="Address of Ray's GCS (host:port).")
    auth_token_secret: str | None = Field(
        default=None,
        description="Secret whose key `token` is the Ray token every request to the dashboard, the job API and "
        "the Ray client must carry (RAY_AUTH_TOKEN), with enable_token_auth.",
    )
    client_tls_secret: str | None = Field(
        default=None,
        description="Secret with a client certificate of the cluster's CA (tls.crt, tls.key, ca.crt) that a Ray "
        "client (ray://) needs with enable_tls; the cluster's own nodes cannot read it.",
    )


class Condition(_Model):
    """One aspect of the cluster's state, as Kubernetes conditions go: `kubectl wait --for=condition=Ready`."""

    type: str = Field(description="Condition type.")
    status: Literal["True", "False", "Unknown"] = Field(description="True, False or Unknown.")
    reason: str = Field(default="", description="One CamelCase word.")
    message: str = Field(default="", description="What is happening, for people.")
    lastTransitionTime: str | None = Field(  # noqa: N815
        default=None, description="When status last changed.", json_schema_extra={"format": "date-time"}
    )
    observedGeneration: int | None = Field(default=None, description="Generation the condition is about.")  # noqa: N815


ClusterState = Literal["pending", "provisioning", "running", "degraded", "failed", "suspended", "deleting"]


class TierStatus(_Model):
    """A scheduled node type now, and its next transition."""

    open: bool = Field(description="Whether the type's window is open (its workers may run).")
    draining: bool | None = Field(default=None, description="true while its workers are drained before the close.")
    next_change: str | None = Field(default=None, description="When the window next opens, drains or closes.")
    next_state: str | None = Field(default=None, description="What happens then: open, draining or closed.")


class VMRayClusterStatus(_Model):
    """What the operator observes of the cluster: its VMs, Ray's own view, how to reach it and its conditions.
    Written by the operator only."""

    cluster_state: ClusterState | None = Field(default=None, description="The cluster's state at a glance.")
    head_node_status: NodeStatus | None = Field(default=None, description="The head VM.")
    current_workers: dict[str, NodeStatus] = Field(
        default_factory=dict, description="Worker VMs that exist, by VM name."
    )
    vm_service_status: VmServiceStatus | None = Field(default=None, description="The head's load balancer.")
    endpoints: Endpoints | None = Field(default=None, description="How to reach the cluster.")
    ray: RaySummary | None = Field(default=None, description="Ray's own view: version, nodes and resources.")
    desired_workers: int | None = Field(default=None, description="Worker VMs wanted.")
    ready_workers: int | None = Field(default=None, description="Worker VMs running.")
    observed_generation: int | None = Field(default=None, description="Spec generation this status describes.")
    idle_since: str | None = Field(
        default=None, description="Since when Ray has been idle, with idle_suspend_minutes; absent while busy."
    )
    schedules: dict[str, TierStatus] | None = Field(
        default=None, description="Node types with a schedule: open or closed, and their next transition."
    )
    conditions: list[Condition] = Field(
        default_factory=list,
        description="Ready, HeadReady, WorkersReady, RayHealthy, DependenciesReady, SpecValid; UpToDate, False "
        "with reason RollingUpdate while outdated VMs are replaced one at a time (it does not affect Ready); "
        "Suspended, and TLS.",
        # one entry per type: server-side apply and strategic merges keep them apart by it
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )
