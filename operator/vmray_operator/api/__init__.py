"""The VMRayCluster API: pydantic models are the single source of the CRD schema."""
