"""Times as Kubernetes writes them (RFC 3339, UTC, whole seconds): one way to make and read them."""

from __future__ import annotations

import datetime


def utc_now() -> datetime.datetime:
    return datetime.datetime.now(datetime.UTC)


def rfc3339(moment: datetime.datetime) -> str:
    return moment.astimezone(datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse(text: str) -> datetime.datetime:
    """A timestamp of an object's metadata or status (2026-01-01T12:00:00Z)."""
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00"))
