"""The local cloud: a real Kubernetes control plane and a VM Operator simulator, for demos and tests."""
