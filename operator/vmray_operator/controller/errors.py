"""Conditions a reconcile stops at and tries again later."""


class NameTaken(Exception):
    """An object the cluster needs exists under another owner (ownerReferences)."""
