"""ConcurrencyLimiter: it counts the calls in flight, and a release never takes it below zero."""

from __future__ import annotations

from telemetry.governance.ratelimit import ConcurrencyLimiter

# --------------------------------------------------------------------------- concurrency


def test_concurrency_counts_calls_in_flight() -> None:
    lim = ConcurrencyLimiter(2)
    assert lim.retry_after() == 0.0
    assert lim.try_acquire() and lim.try_acquire()
    assert not lim.try_acquire()
    assert lim.in_flight == 2
    assert lim.retry_after() == 0.05  # the constant hint: it cannot know when a call ends
    lim.release()
    assert lim.in_flight == 1
    assert lim.try_acquire()
    assert not lim.try_acquire()


def test_concurrency_release_never_goes_below_zero() -> None:
    lim = ConcurrencyLimiter(1, retry_hint=0.2)
    lim.release()
    lim.release()
    assert lim.in_flight == 0
    assert lim.try_acquire()
    assert not lim.try_acquire()  # extra releases did not raise the limit
    assert lim.retry_after() == 0.2
