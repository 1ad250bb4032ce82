"""Operator settings, from the environment (the Deployment sets them from the package's values)."""

from __future__ import annotations

import os
from dataclasses import dataclass


@dataclass(frozen=True)
class Settings:
    vmop_api_version: str | None = None  # None: discover the highest supported version
    api_server_location: str = ""  # default for spec.api_server.location
    api_server_ca_cert: str = ""
    deletion_timeout: float = 600.0  # seconds before a stuck deletion is reported
    drain_timeout: float = 120.0  # seconds a soft power-off (Ray draining) may take before the VM is deleted
    dependency_recheck: float = 5.0  # seconds between checks while a VM class, image, ... is missing
    resync_interval: float = 300.0  # safety net: every cluster is reconciled at least this often
    workers: int = 16  # reconciles running at once
    # A watch event waits this long before its cluster is reconciled, so that a burst (five VMs powering on
    # together) folds into one reconcile and one status write; it bounds the delay a change can add.
    settle: float = 0.1
    # seconds a replaced node may take to come up (alive in Ray) before the rollout is reported stalled
    rollout_node_timeout: float = 600.0
    probe_ray: bool = True  # off: readiness stops at the VM level (no route to the clusters' load balancers)

    @classmethod
    def from_env(cls) -> Settings:
        env = os.environ
        return cls(
            vmop_api_version=env.get("VMRAY_VMOP_API_VERSION") or None,
            api_server_location=env.get("VMRAY_API_SERVER_LOCATION", ""),
            api_server_ca_cert=env.get("VMRAY_API_SERVER_CA_CERT", ""),
            deletion_timeout=float(env.get("VMRAY_DELETION_TIMEOUT", "600")),
            drain_timeout=float(env.get("VMRAY_DRAIN_TIMEOUT", "120")),
            dependency_recheck=float(env.get("VMRAY_DEPENDENCY_RECHECK", "5")),
            resync_interval=float(env.get("VMRAY_RESYNC_INTERVAL", "300")),
            workers=int(env.get("VMRAY_WORKERS", "16")),
            settle=float(env.get("VMRAY_SETTLE", "0.1")),
            rollout_node_timeout=float(env.get("VMRAY_ROLLOUT_NODE_TIMEOUT", "600")),
            probe_ray=env.get("VMRAY_PROBE_RAY", "true").lower() not in ("0", "false", "no"),
        )
