"""The API contract, in one place: the VMRayCluster API and VM Operator's, the labels, annotations and finalizer
the operator puts on objects, and the condition types and reasons its status speaks.

Ray's own vSphere provider reads and writes VMRayClusters by these names (see DESIGN.md): they never change
lightly. VM Operator's versions: the fields this operator writes into a VirtualMachine and a VirtualMachineService
have one shape from v1alpha2 to v1alpha6 (the per-version strict-write test proves it against VM Operator's own
CRDs); should a version need a different body, this module is where that difference belongs."""

from __future__ import annotations

import enum
from typing import Any

Body = dict[str, Any]  # a Kubernetes object as JSON

# The VMRayCluster API
GROUP = "vmray.broadcom.com"
VERSION = "v1alpha1"
PLURAL = "vmrayclusters"
KIND = "VMRayCluster"
API_VERSION = f"{GROUP}/{VERSION}"

# VM Operator's API
VMOP_GROUP = "vmoperator.vmware.com"
# Oldest first; the operator speaks the highest one the Supervisor serves unless told otherwise.
SUPPORTED_VMOP_VERSIONS = ("v1alpha2", "v1alpha3", "v1alpha4", "v1alpha5", "v1alpha6")


def vmop_api_version(version: str) -> str:
    return f"{VMOP_GROUP}/{version}"


# Labels, annotations and the finalizer of the operator's objects
LABEL_CLUSTER = f"{GROUP}/cluster"
LABEL_ROLE = f"{GROUP}/role"
LABEL_NODE_TYPE = f"{GROUP}/node-type"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGER = "vmray-operator"
HEAD_NOUNCE_LABEL = "vmray.kubernetes.io/head-nounce"  # read by Ray's vSphere autoscaler
CREATED_BY_LABEL = "vmray.io/created-by"  # "ray-cli" on clusters made by `ray up`
FINALIZER = f"{GROUP}/finalizer"
# A hash of everything of a VM that VM Operator cannot change in place: another value makes the VM outdated.
ANNOTATION_ROLLOUT_HASH = f"{GROUP}/rollout-hash"
ANNOTATION_RAY_IMAGE = f"{GROUP}/ray-image"  # the image the VM's Ray runs in: a change goes head first
ANNOTATION_DRAIN_STARTED = f"{GROUP}/drain-started"
# On a cluster the operator suspended itself (Ray was idle): why; a person's suspend carries none.
ANNOTATION_SUSPENDED_BY = f"{GROUP}/suspended-by"
SUSPENDED_BY_IDLE = "idle"

# Every Ray node serves its Prometheus metrics here (ray start --metrics-export-port); the operator publishes each
# node's address with it for Prometheus to find (render/monitoring.py). KubeRay's choice, free on a Ray VM.
RAY_METRICS_EXPORT_PORT = 8080

# Ray's vSphere provider's view of a VM (status.head_node_status and current_workers[*].vm_status)
VM_STATUS_INITIALIZED = "initialized"
VM_STATUS_RUNNING = "running"
VM_STATUS_FAILURE = "failure"


class ConditionType(enum.StrEnum):
    """The conditions of a VMRayCluster's status."""

    READY = "Ready"
    SPEC_VALID = "SpecValid"
    DEPENDENCIES_READY = "DependenciesReady"
    HEAD_READY = "HeadReady"
    RAY_HEALTHY = "RayHealthy"
    WORKERS_READY = "WorkersReady"
    UP_TO_DATE = "UpToDate"  # not part of Ready: a cluster being rolled serves
    TLS = "TLS"  # not part of Ready
    SUSPENDED = "Suspended"


class Reason(enum.StrEnum):
    """The reasons of the conditions (and of a node's status) the operator writes."""

    # a VM's way up, the readiness ladder
    PROVISIONING = "Provisioning"
    POWERING_ON = "PoweringOn"
    WAITING_FOR_NETWORK_ADDRESS = "WaitingForNetworkAddress"
    WAITING_FOR_LOAD_BALANCER = "WaitingForLoadBalancer"
    WAITING_FOR_RAY = "WaitingForRay"
    RUNNING = "Running"
    WORKERS_PROVISIONING = "WorkersProvisioning"
    # and out
    DRAINING = "Draining"
    DELETING = "Deleting"
    DELETION_STUCK = "DeletionStuck"
    WAITING_FOR_JOBS = "WaitingForJobs"  # a deletion waits for Ray's running jobs (deletion_policy)
    POWERED_OFF = "PoweredOff"
    # suspension
    SUSPENDED = "Suspended"  # by spec.suspend
    IDLE = "IdleTimeout"  # by the operator: Ray was idle for idle_suspend_minutes
    SUSPENDING = "Suspending"
    RESUMING = "Resuming"
    ACTIVE = "Active"
    # what is wrong
    INVALID_SPEC = "InvalidSpec"
    DEPENDENCY_NOT_FOUND = "DependencyNotFound"
    APPLY_FAILED = "ApplyFailed"  # the API server refused a write: the message names the object and quotes it
    WORKER_FAILED = "WorkerFailed"
    DASHBOARD_UNREACHABLE = "DashboardUnreachable"
    GCS_UNHEALTHY = "GcsUnhealthy"
    HEAD_NODE_DOWN = "HeadNodeDown"
    ROLLOUT_STALLED = "RolloutStalled"  # a node of the current spec did not come up: no further VM is replaced
    # what is right
    VALID = "Valid"
    FOUND = "Found"
    HEALTHY = "Healthy"
    UP_TO_DATE = "UpToDate"
    ROLLING_UPDATE = "RollingUpdate"
    ENABLED = "Enabled"
    WAITING_FOR_DEPENDENCIES = "WaitingForDependencies"


# Reasons of the steps a healthy cluster passes through on its way up (or out): not failures.
PROGRESS_REASONS = frozenset(
    {
        Reason.PROVISIONING,
        Reason.POWERING_ON,
        Reason.WAITING_FOR_NETWORK_ADDRESS,
        Reason.WAITING_FOR_LOAD_BALANCER,
        Reason.WAITING_FOR_RAY,
        Reason.WORKERS_PROVISIONING,
        Reason.DRAINING,
        Reason.DELETING,
        Reason.POWERED_OFF,  # a suspended cluster's head, or one being powered on again
    }
)

# VM Operator's VirtualMachine conditions that, False, say the VM cannot come up as it is: its prerequisites, and
# what the guest reports of its own bootstrap (guestinfo.vmservice.bootstrap.condition).
VM_PREREQUISITE_CONDITIONS = (
    "VirtualMachineClassReady",
    "VirtualMachineImageReady",
    "VirtualMachineStorageReady",
    "VirtualMachineBootstrapReady",
)
VM_CREATED_CONDITION = "VirtualMachineCreated"
GUEST_BOOTSTRAP_CONDITION = "GuestBootstrap"
