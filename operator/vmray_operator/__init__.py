"""vmray-operator: Ray clusters on vSphere Supervisor VMs."""

__version__ = "0.1.0"
