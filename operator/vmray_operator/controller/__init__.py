"""Runs reconciles: a work queue per cluster key, fed by watch events, driving reconcile/ and kube/."""
