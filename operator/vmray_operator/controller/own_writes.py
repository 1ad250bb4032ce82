"""What this operator last wrote to an object, until the watch shows it.

A reconcile can run before the watch brings back the operator's own last write: the object it sees then is
older than the one the API server holds. Compared with that, the same write would be sent again (and a
Ready Event told twice), or a certificate issued twice."""

from __future__ import annotations

import time
from collections.abc import Hashable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Write(Generic[T]):
    value: T  # what the object holds after the write (the part of it the caller keeps)
    owner: str  # uid of the cluster the write was for: a new cluster of the same name starts afresh
    older: frozenset[str]  # the object's versions this write supersedes ("": the object did not exist)
    made: str  # the version the write made
    at: float  # time.monotonic() of the write


class OwnWrites(Generic[T]):
    def __init__(self) -> None:
        self._writes: dict[Hashable, Write[T]] = {}

    def last(self, key: Hashable, owner: str) -> Write[T] | None:
        write = self._writes.get(key)
        return write if write is not None and write.owner == owner else None

    def held(self, key: Hashable, owner: str, seen: str) -> T | None:
        """What the object holds when the watch shows version `seen` ("" for no object), if that is older
        than this operator's last write; None when the watch is up to date."""
        write = self.last(key, owner)
        return write.value if write is not None and seen in write.older else None

    def record(self, key: Hashable, owner: str, seen: str, value: T, made: str) -> None:
        """A write made while the watch showed version `seen` of the object."""
        earlier = self.last(key, owner)
        older = {seen}
        if earlier is not None and seen in earlier.older:  # the watch is more than one write behind
            older |= earlier.older | {earlier.made}
        self._writes[key] = Write(value, owner, frozenset(older), made, time.monotonic())

    def forget(self, key: Hashable) -> None:
        self._writes.pop(key, None)
