"""CircuitBreaker under threads: calls through one breaker run concurrently (it never serialises
them) and concurrent failures are counted exactly.
"""

from __future__ import annotations

import threading

from breaker_helpers import CLOSED

from telemetry.governance.breaker import CircuitBreaker

# -- concurrency --------------------------------------------------------------------------------


def test_calls_through_one_breaker_run_concurrently() -> None:
    threads, rounds = 8, 25
    breaker = CircuitBreaker(window_size=1000, minimum_calls=1000)
    # Every thread must be inside the protected call at once for the barrier to open: any
    # serialisation of calls by the breaker would break it (BrokenBarrierError after the timeout).
    inside = threading.Barrier(threads, timeout=10.0)
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            for _ in range(rounds):
                assert breaker.try_acquire()
                inside.wait()  # the "protected call"
                breaker.on_success(0.001)
        except BaseException as exc:
            errors.append(exc)
            inside.abort()

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join(timeout=30.0)
    assert not errors
    assert breaker.state is CLOSED
    assert breaker.failure_rate == 0.0


def test_concurrent_failures_count_exactly() -> None:
    threads, per_thread = 8, 500
    breaker = CircuitBreaker(window_size=threads * per_thread, minimum_calls=threads * per_thread)
    start = threading.Barrier(threads)

    def worker(index: int) -> None:
        start.wait()
        for i in range(per_thread):
            assert breaker.try_acquire()
            if index % 2 and i % 2:
                breaker.on_failure(0.001)
            else:
                breaker.on_success(0.001)

    pool = [threading.Thread(target=worker, args=(n,)) for n in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    # Half the threads fail every other call: exactly 1/4 of all calls, none lost to a race.
    assert breaker.failure_rate == 0.25
    assert breaker.state is CLOSED
