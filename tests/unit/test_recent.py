"""A creation the watch has not shown yet is not sent again; once seen, or after the window, it may be. An update
sent against the version the watch still shows is not sent again either."""

from __future__ import annotations

from vmray_operator.controller.recent import RecentWrites
from vmray_operator.reconcile.observed import Observed
from vmray_operator.reconcile.plan import Create, Delete, Kind, Update

KEY = ("ns", "c")
VM = Create(Kind.VM, {"metadata": {"name": "c-w-aaaaaaaa"}})
SECRET = Create(Kind.SECRET, {"metadata": {"name": "c-worker"}})
GONE = Delete(Kind.VM, "c-w-bbbbbbbb", "u", "not wanted")


def test_a_creation_not_seen_yet_is_left_out_and_looked_at_again() -> None:
    recent = RecentWrites(window=10)
    recent.record(KEY, "uid-1", [VM, GONE])
    actions, recheck = recent.without_recent(KEY, "uid-1", [VM, SECRET, GONE], Observed())
    assert actions == [SECRET, GONE]
    assert recheck is not None
    assert 9 < recheck <= 10


def test_once_seen_a_later_creation_goes_out_at_once() -> None:
    recent = RecentWrites(window=10)
    recent.record(KEY, "uid-1", [VM])
    seen = Observed(vms={"c-w-aaaaaaaa": {"metadata": {"name": "c-w-aaaaaaaa"}}})
    assert recent.without_recent(KEY, "uid-1", [], seen) == ([], None)
    assert recent.without_recent(KEY, "uid-1", [VM], Observed()) == ([VM], None)  # deleted since: made again


def test_after_the_window_it_is_made_again() -> None:
    recent = RecentWrites(window=0)
    recent.record(KEY, "uid-1", [VM])
    assert recent.without_recent(KEY, "uid-1", [VM], Observed()) == ([VM], None)


def test_a_new_cluster_of_the_same_name_starts_afresh() -> None:
    recent = RecentWrites(window=10)
    recent.record(KEY, "uid-1", [VM])
    assert recent.without_recent(KEY, "uid-2", [VM], Observed()) == ([VM], None)


SLICE = Update(Kind.ENDPOINT_SLICE, "ray-metrics-c-workers", {"endpoints": [{"addresses": ["10.0.0.5"]}]}, "41")


def test_an_update_sent_against_the_version_still_seen_is_left_out_and_looked_at_again() -> None:
    recent = RecentWrites(window=10)
    recent.record(KEY, "uid-1", [SLICE])
    actions, recheck = recent.without_recent(KEY, "uid-1", [SLICE, VM], Observed())
    assert actions == [VM]
    assert recheck is not None
    assert 9 < recheck <= 10


def test_an_update_against_a_newer_version_or_with_other_content_goes_out() -> None:
    recent = RecentWrites(window=10)
    recent.record(KEY, "uid-1", [SLICE])
    newer = Update(SLICE.kind, SLICE.name, SLICE.patch, "43")  # someone changed the slice since
    other = Update(SLICE.kind, SLICE.name, {"endpoints": []}, "41")
    assert recent.without_recent(KEY, "uid-1", [newer, other], Observed()) == ([newer, other], None)


def test_an_update_without_its_basis_is_never_held_back() -> None:
    recent = RecentWrites(window=10)
    untold = Update(Kind.VM, "c-w-aaaaaaaa", {"spec": {"powerState": "PoweredOn"}})
    recent.record(KEY, "uid-1", [untold])
    assert recent.without_recent(KEY, "uid-1", [untold], Observed()) == ([untold], None)
