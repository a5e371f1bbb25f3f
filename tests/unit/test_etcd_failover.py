"""How the etcd client picks members and spends one call's deadline across them (no etcd here:
the real cluster is in tests/integration/test_etcd_cluster*.py)."""

from __future__ import annotations

import logging

import pytest

from telemetry.discovery.etcd_failover import Attempts, Members
from telemetry.testing.clock import FakeClock

ENDPOINTS = ("10.0.0.1:2379", "10.0.0.2:2379", "10.0.0.3:2379")


def test_a_failed_member_hands_over_to_the_next_and_is_counted() -> None:
    members = Members(ENDPOINTS, clock=FakeClock())
    assert (members.current, members.failovers) == (ENDPOINTS[0], 0)
    members.failed(0, "UNAVAILABLE: connection refused")
    assert (members.current, members.failovers) == (ENDPOINTS[1], 1)
    members.failed(0, "a second thread's failure on the member already left")  # no double move
    assert (members.current, members.failovers) == (ENDPOINTS[1], 1)
    members.failed(1, "x")
    members.failed(2, "x")
    assert (members.current, members.failovers) == (ENDPOINTS[0], 3)  # round and round


def test_one_member_has_nowhere_to_go() -> None:
    members = Members(ENDPOINTS[:1])
    members.failed(0, "x")
    assert (members.current, members.failovers) == (ENDPOINTS[0], 0)


def test_failovers_are_logged_at_most_once_a_second(caplog: pytest.LogCaptureFixture) -> None:
    clock = FakeClock()
    members = Members(ENDPOINTS, clock=clock)
    with caplog.at_level(logging.INFO, logger="telemetry.discovery"):
        members.failed(0, "UNAVAILABLE: connection refused")
        members.failed(1, "DEADLINE_EXCEEDED")
        members.failed(2, "DEADLINE_EXCEEDED")
        clock.advance(1.0)
        members.failed(0, "UNAVAILABLE")
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2
    assert lines[0].startswith(f"etcd member {ENDPOINTS[0]} failed (UNAVAILABLE: connection refused)")
    assert lines[0].endswith(f"now using {ENDPOINTS[1]}")
    assert lines[1].endswith(f"now using {ENDPOINTS[1]} (2 more member changes since the last line)")
    assert all(r.levelno == logging.INFO for r in caplog.records)


def test_attempts_share_the_call_deadline() -> None:
    clock = FakeClock()
    attempts = Attempts(3, 2.0, clock=clock, sleep=clock.sleep)
    assert attempts.budget() == 0.25  # the first attempt: an eighth of the deadline
    assert attempts.again(reachable=True)  # it failed (held, or no leader)
    assert attempts.budget() == 0.125  # then a held request gives way after a sixteenth ...
    clock.advance(0.9)
    assert attempts.budget() == 0.125
    clock.advance(0.1)
    assert attempts.budget() == pytest.approx(1.0)  # ... in the first half; then it takes the rest
    clock.advance(0.9)
    assert attempts.budget() == pytest.approx(0.1)  # never past the call's deadline
    assert Attempts(1, 2.0, clock=clock).budget() == 2.0  # one member: the attempt is the call
    short = Attempts(3, 0.5, clock=clock)
    short.again(reachable=True)
    assert short.budget() == 0.1  # never under 0.1 s


def test_a_slow_etcd_answers_the_first_attempt() -> None:
    # Every write takes 0.2 s: the first attempt waits for it (the write is not sent twice).
    assert Attempts(3, 2.0, clock=FakeClock()).budget() >= 0.2


def test_a_slower_etcd_still_answers_within_the_deadline() -> None:
    # Every write takes 0.7 s: short attempts time out, the one begun at half the deadline does not.
    clock = FakeClock()
    attempts = Attempts(3, 2.0, clock=clock, sleep=clock.sleep)
    while (budget := attempts.budget()) < 0.7:
        clock.advance(budget)
        attempts.pause()
        assert attempts.again(reachable=True)
    assert clock() + 0.7 <= attempts.deadline


def test_nothing_listening_anywhere_fails_at_once() -> None:
    clock = FakeClock()
    attempts = Attempts(3, 2.0, clock=clock, sleep=clock.sleep)
    assert attempts.again(reachable=False)
    assert attempts.again(reachable=False)
    assert not attempts.again(reachable=False)  # the whole round refused connections


def test_an_election_is_waited_out_until_the_deadline() -> None:
    clock = FakeClock()
    attempts = Attempts(3, 2.0, clock=clock, sleep=clock.sleep)
    rounds = 0
    while attempts.again(reachable=True):  # members answer "no leader" / hold the request
        clock.advance(min(attempts.budget(), 0.25))
        before = clock()
        attempts.pause()
        rounds += clock() > before
    assert clock() >= attempts.deadline - 0.25
    assert rounds >= 2  # paused between rounds, not between members


def test_a_member_that_refused_connections_is_passed_over_for_a_while() -> None:
    clock = FakeClock()
    members = Members(ENDPOINTS, clock=clock)
    members.failed(0, "UNAVAILABLE: connection refused", reachable=False)  # killed
    members.failed(1, "DEADLINE_EXCEEDED")  # held a write during the election
    assert members.current == ENDPOINTS[2]
    members.failed(2, "DEADLINE_EXCEEDED")
    assert members.current == ENDPOINTS[1]  # not back to the dead one
    clock.advance(5.0)
    members.failed(1, "DEADLINE_EXCEEDED")
    assert members.current == ENDPOINTS[2]
    members.failed(2, "x")
    assert members.current == ENDPOINTS[0]  # its time is up: tried again


def test_when_every_member_refuses_they_are_all_tried() -> None:
    members = Members(ENDPOINTS, clock=FakeClock())
    for index in (0, 1, 2):
        members.failed(index, "UNAVAILABLE: connection refused", reachable=False)
    assert members.current == ENDPOINTS[0]
