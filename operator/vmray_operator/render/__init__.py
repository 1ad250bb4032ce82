"""Pure builders: the objects the operator wants to exist, from a cluster's spec. No I/O, no clock."""
