"""InstancePool ejection and readmission on a fake clock: failures eject an instance and the others
take its calls, ignored and successful calls never eject, readmission after the open wait through
a probe (a failed probe ejects again, an ignored one hands its permit back), the default breaker,
and panic picks when every candidate is ejected (or refusal with panic off).
"""

from __future__ import annotations

from collections import Counter

from instance_pool_fakes import OPEN_WAIT, A, B, C, call, fail, make_pool, pick, running

from telemetry.discovery.instance_pool import PanicPick, Verdict, default_breaker
from telemetry.governance.breaker import BreakerState
from telemetry.testing.clock import FakeClock

# -- ejection and readmission ----------------------------------------------------------------------


def test_failures_eject_an_instance_and_the_others_take_its_calls() -> None:
    pool, _, _, _ = make_pool()
    fail(pool, A, times=1)
    assert pool.ejected() == []  # one failure is not enough
    fail(pool, A, times=1)
    assert pool.ejected() == [A.address]
    assert pool.breakers()[A.address].state is BreakerState.OPEN
    counts = Counter(call(pool).id for _ in range(100))
    assert set(counts) == {"b", "c"} and min(counts.values()) >= 20, counts


def test_ignored_and_successful_calls_never_eject() -> None:
    pool, _, _, _ = make_pool([A])
    for _ in range(20):
        call(pool, Verdict.IGNORED)
    call(pool, Verdict.FAILURE)
    call(pool, Verdict.SUCCESS)  # resets the run of failures
    call(pool, Verdict.FAILURE)
    assert pool.ejected() == []


def test_readmitted_after_the_open_wait_through_a_probe() -> None:
    pool, _, clock, _ = make_pool()
    fail(pool, A)
    clock.advance(0.75 * OPEN_WAIT)
    assert "a" not in {call(pool).id for _ in range(20)}  # still cooling off
    clock.advance(0.25 * OPEN_WAIT)
    probe, endpoint = pick(pool, exclude=(B.address, C.address))
    assert probe == A
    assert pool.breakers()[A.address].state is BreakerState.HALF_OPEN
    # One probe at a time: meanwhile the others take the calls.
    assert "a" not in {call(pool).id for _ in range(20)}
    pool.report(probe, endpoint, Verdict.SUCCESS, 0.01)
    assert pool.ejected() == []
    assert Counter(call(pool).id for _ in range(300)) == {"a": 100, "b": 100, "c": 100}


def test_a_failed_probe_ejects_again_for_another_open_wait() -> None:
    pool, _, clock, _ = make_pool([A, B])
    fail(pool, A)
    clock.advance(OPEN_WAIT)
    probe, endpoint = pick(pool, exclude=(B.address,))
    pool.report(probe, endpoint, Verdict.FAILURE, 0.01)
    assert pool.ejected() == [A.address]
    clock.advance(OPEN_WAIT / 2)
    assert {call(pool).id for _ in range(10)} == {"b"}
    clock.advance(OPEN_WAIT / 2)
    assert {call(pool).id for _ in range(10)} == {"a", "b"}


def test_an_ignored_probe_hands_its_permit_back() -> None:
    pool, _, clock, _ = make_pool([A, B])
    fail(pool, A)
    clock.advance(OPEN_WAIT)
    probe, endpoint = pick(pool, exclude=(B.address,))
    pool.report(probe, endpoint, Verdict.IGNORED, 0.01)
    again, endpoint = pick(pool, exclude=(B.address,))  # a new probe at once: no new open wait
    assert again == A
    pool.report(again, endpoint, Verdict.SUCCESS, 0.01)
    assert pool.ejected() == []


def test_default_breaker_ejects_after_five_failures_for_one_second() -> None:
    clock = FakeClock()
    pool, _, _, _ = make_pool([A, B], breaker_factory=lambda: default_breaker(clock))
    fail(pool, A, times=4)
    assert pool.ejected() == []
    fail(pool, A, times=1)
    assert pool.ejected() == [A.address]
    clock.advance(0.75)
    assert pool.pick(pool.view(), None, (B.address,), panic=False) is None
    clock.advance(0.25)
    probe, endpoint = pick(pool, exclude=(B.address,))
    assert probe == A
    pool.report(probe, endpoint, Verdict.SUCCESS, 0.01)


def test_every_candidate_ejected_gives_a_first_attempt_a_panic_pick() -> None:
    pool, _, _, _ = make_pool([A, B])
    fail(pool, A)
    fail(pool, B)
    instance, endpoint = pick(pool)
    assert isinstance(endpoint, PanicPick)
    assert endpoint.address == instance.address
    breaker = pool.breakers()[instance.address]
    for _ in range(3):  # a panic pick's outcome counts for no breaker
        pool.report(instance, endpoint, Verdict.SUCCESS, 0.01)
        instance, endpoint = pick(pool)
    assert breaker.state is BreakerState.OPEN
    pool.report(instance, endpoint, Verdict.SUCCESS, 0.01)
    assert running(pool) == 0
    # A retry (something excluded) or a call with panic off gets nothing.
    view = pool.view()
    assert pool.pick(view, None, (A.address,)) is None
    assert pool.pick(view, None, panic=False) is None


def test_panic_off_refuses_when_every_candidate_is_ejected() -> None:
    pool, _, _, _ = make_pool([A], panic=False)
    fail(pool, A)
    assert pool.pick(pool.view(), None) is None
