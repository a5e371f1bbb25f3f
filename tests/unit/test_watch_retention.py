"""The grace after etcd lost its history (:class:`Retention`), on a fake clock: no etcd, no waiting."""

from __future__ import annotations

import pytest

from telemetry.discovery.watch import GraceOutcome, Retention
from telemetry.testing import FakeClock

A, B, C = "/services/order/a", "/services/order/b", "/services/order/c"
BEFORE = {A: b"a", B: b"b", C: b"c"}


def wiped(clock: FakeClock, grace: float = 10.0, fresh: dict[str, bytes] | None = None) -> Retention:
    """A retention right after etcd came back holding ``fresh`` (nothing by default)."""
    retention = Retention(grace, clock)
    kept = retention.reread(BEFORE, fresh or {}, lost=True)
    assert kept == {k: v for k, v in BEFORE.items() if k not in (fresh or {})}
    return retention


def test_lost_history_keeps_what_the_read_lacks_until_the_grace_ends() -> None:
    clock = FakeClock()
    retention = wiped(clock, fresh={A: b"a2"})
    assert retention.retained == {B, C}
    assert retention.remaining() == 10.0
    clock.advance(9.9)
    assert retention.settle() is None
    clock.advance(0.1)
    assert retention.settle() == GraceOutcome(returned=0, dropped=(B, C), deleted=0)
    assert retention.retained == frozenset() and retention.remaining() is None
    assert retention.settle() is None  # one outcome per grace


def test_a_put_replaces_a_retained_entry_and_the_last_one_back_ends_the_grace_early() -> None:
    clock = FakeClock()
    retention = wiped(clock)
    retention.seen(A, present=True)
    retention.seen("/services/order/new", present=True)  # never retained: not counted
    assert retention.retained == {B, C}
    assert retention.settle() is None
    retention.seen(B, present=True)
    retention.seen(C, present=True)
    assert retention.settle() == GraceOutcome(returned=3, dropped=(), deleted=0)


def test_a_delete_event_removes_a_retained_entry_at_once() -> None:
    retention = wiped(FakeClock())
    retention.seen(A, present=False)
    assert retention.retained == {B, C}
    retention.seen(B, present=True)
    retention.seen(C, present=True)
    assert retention.settle() == GraceOutcome(returned=2, dropped=(), deleted=1)


def test_a_later_truthful_read_counts_the_returned_and_keeps_the_rest_retained() -> None:
    clock = FakeClock()
    retention = wiped(clock)
    state = {**BEFORE, A: b"a2"}
    # e.g. a compaction during the grace: the read is the truth for what it holds.
    kept = retention.reread(state, {A: b"a2", "/services/order/d": b"d"}, lost=False)
    assert kept == {B: b"b", C: b"c"}
    assert retention.retained == {B, C}
    clock.advance(10)
    assert retention.settle() == GraceOutcome(returned=1, dropped=(B, C), deleted=0)


def test_a_plain_reread_without_a_grace_replaces_everything() -> None:
    retention = Retention(10.0, FakeClock())
    assert retention.reread(BEFORE, {A: b"a"}, lost=False) == {}
    assert retention.retained == frozenset() and retention.settle() is None


def test_a_second_loss_restarts_the_grace_for_everything_missing() -> None:
    clock = FakeClock()
    retention = wiped(clock, fresh={A: b"a"})
    clock.advance(8)
    retention.seen(B, present=True)  # B re-registered, then etcd was wiped again
    state = {A: b"a", B: b"b", C: b"c"}
    assert retention.reread(state, {}, lost=True) == state
    assert retention.remaining() == 10.0
    clock.advance(9)
    assert retention.settle() is None
    clock.advance(1)
    assert retention.settle() == GraceOutcome(returned=1, dropped=(A, B, C), deleted=0)


def test_a_loss_that_lost_nothing_starts_no_grace() -> None:
    retention = Retention(10.0, FakeClock())
    assert retention.reread(BEFORE, dict(BEFORE), lost=True) == {}
    assert retention.remaining() is None and retention.settle() is None


def test_hold_gives_a_whole_grace_from_when_etcd_answers_again() -> None:
    clock = FakeClock()
    retention = wiped(clock)
    clock.advance(6)
    retention.hold()  # etcd was unreachable meanwhile: owners could not re-register
    assert retention.remaining() == 10.0
    clock.advance(9)
    assert retention.settle() is None
    clock.advance(1)
    assert retention.settle() is not None
    retention.hold()  # no grace running: nothing to extend
    assert retention.remaining() is None


def test_zero_grace_disables_retention_and_a_negative_one_is_refused() -> None:
    assert Retention(0, FakeClock()).reread(BEFORE, {}, lost=True) == {}
    with pytest.raises(ValueError, match="grace"):
        Retention(-1)
