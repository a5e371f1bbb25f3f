"""AdaptiveLimiter (fake clock): BBR shedding, overload factor, cool-off, Gradient2, loop lag."""

from __future__ import annotations

import threading

import pytest

from telemetry.governance.adaptive import AdaptiveLimiter, AdaptiveSnapshot
from telemetry.testing import FakeClock

BUCKET = 0.1  # the default window (1 s) over the default 10 buckets


class Signal:
    """A scripted pressure reading the test changes."""

    def __init__(self, value: float = 0.0) -> None:
        self.value = value

    def __call__(self) -> float:
        return self.value


def make(cpu: Signal, clock: FakeClock, **kwargs: object) -> AdaptiveLimiter:
    limiter = AdaptiveLimiter(pressure=cpu, clock=clock, **kwargs)  # type: ignore[arg-type]
    clock.advance(BUCKET / 2)  # act mid-bucket: away from float rounding at the boundaries
    return limiter


def run_bucket(
    limiter: AdaptiveLimiter, clock: FakeClock, calls: int, rt: float, together: int = 1
) -> int:
    """``calls`` calls of ``rt`` seconds, ``together`` in flight at once; then the bucket ends.
    Returns how many were admitted."""
    admitted = 0
    for _ in range(calls // together):
        held = sum(limiter.try_acquire() for _ in range(together))
        for _ in range(held):
            limiter.on_done(rt)
        admitted += held
    clock.advance(BUCKET)
    return admitted


def warm(limiter: AdaptiveLimiter, clock: FakeClock) -> None:
    """A full window of 100 calls per 100-ms bucket at 10 ms: 1000/s * 0.01 s = 10 in flight."""
    for _ in range(10):
        run_bucket(limiter, clock, 100, 0.010)


def pressed(cpu: Signal, clock: FakeClock) -> AdaptiveLimiter:
    """A warmed limiter whose CPU has just gone to 0.9 (over the 0.8 threshold), in a 5-s window
    that keeps the warm-up's pass rate while no call completes during the test."""
    limiter = make(cpu, clock, window=5.0, buckets=50)
    warm(limiter, clock)
    cpu.value = 0.9
    clock.advance(BUCKET)
    return limiter


def fill(limiter: AdaptiveLimiter, up_to: int) -> None:
    while limiter.in_flight < up_to:
        assert limiter.try_acquire()


def test_nothing_is_shed_at_low_cpu_however_many_are_in_flight() -> None:
    clock, cpu = FakeClock(), Signal(0.5)
    limiter = make(cpu, clock)
    warm(limiter, clock)
    assert all(limiter.try_acquire() for _ in range(5000))  # far beyond limit and max_limit
    assert limiter.in_flight == 5000
    assert limiter.reason == "" and limiter.last_shed is None


def test_limit_is_max_pass_rate_times_min_rt_plus_one() -> None:
    clock, cpu = FakeClock(), Signal(0.3)
    limiter = make(cpu, clock)
    assert limiter.limit == 20  # cold start: no completed bucket yet, the initial (gradient) limit
    run_bucket(limiter, clock, 100, 0.010)
    run_bucket(limiter, clock, 50, 0.004)  # the fastest bucket sets min RT, the busiest max pass
    snap = limiter.snapshot()
    assert snap.max_pass_per_second == pytest.approx(1000.0)
    assert snap.min_rt == pytest.approx(0.004)
    assert limiter.limit == 5  # round(1000 * 0.004 + 1)
    warm(limiter, clock)  # the 4 ms bucket has left the window
    assert limiter.snapshot().min_rt == pytest.approx(0.010)
    assert limiter.limit == 11  # 1000/s * 10 ms + 1


def test_the_current_bucket_is_ignored() -> None:
    clock, cpu = FakeClock(), Signal(0.3)
    limiter = make(cpu, clock)
    warm(limiter, clock)
    for _ in range(500):  # a burst in the still-open bucket changes nothing yet
        assert limiter.try_acquire()
        limiter.on_done(0.001)
    assert limiter.snapshot().max_pass_per_second == pytest.approx(1000.0)
    assert limiter.limit == 11
    clock.advance(BUCKET)
    assert limiter.snapshot().max_pass_per_second == pytest.approx(5000.0)


def test_failed_calls_free_their_slot_but_do_not_count_as_passes() -> None:
    clock, cpu = FakeClock(), Signal(0.3)
    limiter = make(cpu, clock)
    for _ in range(100):
        assert limiter.try_acquire()
        limiter.on_done(0.001, ok=False)
    clock.advance(BUCKET)
    assert limiter.in_flight == 0
    assert limiter.snapshot().max_pass_per_second == 0.0


def test_sheds_when_cpu_is_over_threshold_and_in_flight_reaches_the_limit() -> None:
    clock, cpu = FakeClock(), Signal(0.3)
    limiter = make(cpu, clock)
    warm(limiter, clock)
    cpu.value = 0.8  # at the threshold: overload factor still 1
    clock.advance(BUCKET)  # the pressure is read once per bucket
    assert limiter.limit == 11
    fill(limiter, 11)
    assert not limiter.try_acquire()
    assert limiter.in_flight == 11
    assert limiter.reason == "cpu"
    assert limiter.last_shed == clock()
    limiter.on_done(0.010)  # a slot frees: admitted again
    assert limiter.try_acquire()


def test_limit_shrinks_as_cpu_rises_above_the_threshold() -> None:
    clock, cpu = FakeClock(), Signal(0.3)
    limiter = make(cpu, clock)
    warm(limiter, clock)
    limits = {}
    # factor = clamp((1.0 - cpu) / (1.0 - 0.8), 0.1, 1): 1, 0.75, 0.4, 0.1, 0.1
    for value in (0.8, 0.85, 0.92, 0.98, 1.5):
        cpu.value = value
        clock.advance(BUCKET)
        limits[value] = limiter.limit
    assert limits == {0.8: 11, 0.85: 8, 0.92: 4, 0.98: 1, 1.5: 1}
    fill(limiter, 1)
    assert not limiter.try_acquire()


def test_cool_off_keeps_shedding_after_cpu_drops_then_stops() -> None:
    clock, cpu = FakeClock(), Signal(0.3)
    limiter = pressed(cpu, clock)
    assert limiter.limit == 6  # round(11 * 0.5)
    fill(limiter, 6)
    assert not limiter.try_acquire()
    shed_at = clock()

    cpu.value = 0.3  # pressure gone: the limit is back to 11, but we are in the cool-off
    clock.advance(BUCKET)
    fill(limiter, 11)
    assert not limiter.try_acquire()
    clock.advance(0.8)  # 0.9 s after the CPU shed
    assert not limiter.try_acquire()
    assert limiter.reason == "cpu"  # the signal that started it

    clock.advance(shed_at + 1.0 - clock() + 0.01)  # cool-off sheds did not extend the cool-off
    assert limiter.try_acquire()
    assert all(limiter.try_acquire() for _ in range(100))
    assert limiter.snapshot().shedding  # the last shed was under a second ago
    clock.advance(1.0)
    assert limiter.reason == ""
    assert not limiter.snapshot().shedding


def test_cpu_shed_during_cool_off_restarts_it() -> None:
    clock, cpu = FakeClock(), Signal(0.9)
    limiter = make(cpu, clock, cool_off=0.5, window=5.0, buckets=50)
    warm(limiter, clock)
    fill(limiter, limiter.limit)
    assert not limiter.try_acquire()
    clock.advance(0.4)
    assert not limiter.try_acquire()  # still hot: a new pressure shed, the cool-off restarts
    cpu.value = 0.1
    clock.advance(0.4)  # 0.8 s after the first shed, 0.4 s after the last
    fill(limiter, limiter.limit)  # factor back to 1: room up to 11
    assert not limiter.try_acquire()
    clock.advance(0.2)
    assert limiter.try_acquire()


def test_loop_lag_sheds_with_its_own_reason() -> None:
    clock, cpu, lag = FakeClock(), Signal(0.2), Signal(0.0)
    limiter = make(cpu, clock, loop_lag=lag, loop_lag_threshold=0.05)
    warm(limiter, clock)
    fill(limiter, 11)
    assert limiter.try_acquire()  # neither signal over its threshold
    limiter.on_done(0.010)
    lag.value = 0.2
    clock.advance(BUCKET)
    assert limiter.loop_lag == 0.2
    assert limiter.pressure == pytest.approx(4.0)  # lag / threshold, above cpu / threshold
    assert not limiter.try_acquire()
    assert limiter.reason == "loop_lag"


def test_the_signal_further_over_its_threshold_is_the_reason() -> None:
    clock, cpu, lag = FakeClock(), Signal(0.96), Signal(0.055)
    limiter = make(cpu, clock, loop_lag=lag, cpu_max=2.0)  # cpu_max 2: the limit stays above 1
    warm(limiter, clock)
    fill(limiter, limiter.limit)
    assert not limiter.try_acquire()
    assert limiter.reason == "cpu"  # 0.96 / 0.8 = 1.2 against 0.055 / 0.05 = 1.1
    cpu.value, lag.value = 0.84, 0.06  # 1.05 against 1.2
    clock.advance(BUCKET)
    admitted = [limiter.try_acquire() for _ in range(limiter.limit + 2)]
    assert not all(admitted)
    assert limiter.reason == "loop_lag"


def test_loop_lag_paces_admissions_when_the_loop_serialises_calls() -> None:
    # A loop running CPU-bound handlers never has more than one in flight: lag is its queue.
    clock, cpu, lag = FakeClock(), Signal(0.5), Signal(0.15)  # three times the 0.05 threshold
    limiter = make(cpu, clock, loop_lag=lag)
    warm(limiter, clock)
    admitted = []
    for _ in range(9):
        ok = limiter.try_acquire()
        admitted.append(ok)
        if ok:
            limiter.on_done(0.01)
    assert admitted.count(True) == 3  # one call in ceil(0.15 / 0.05)
    assert limiter.reason == "loop_lag"
    lag.value = 0.0
    clock.advance(BUCKET)
    assert all(limiter.try_acquire() for _ in range(3))


def test_snapshot_fields() -> None:
    clock, cpu, lag = FakeClock(), Signal(0.3), Signal(0.01)
    limiter = make(cpu, clock, loop_lag=lag)
    warm(limiter, clock)
    fill(limiter, 3)
    snap = limiter.snapshot()
    assert snap == AdaptiveSnapshot(
        limit=11,
        in_flight=3,
        cpu=0.3,
        loop_lag=0.01,
        reason="",
        shedding=False,
        max_pass_per_second=pytest.approx(1000.0),  # type: ignore[arg-type]
        min_rt=pytest.approx(0.010),  # type: ignore[arg-type]
        gradient_limit=20,  # app-limited (one call at a time): the gradient limit did not move
    )
    with pytest.raises(AttributeError):
        snap.limit = 1  # type: ignore[misc]


def test_gradient_limit_falls_when_latency_degrades_and_recovers() -> None:
    clock, cpu = FakeClock(), Signal(0.1)  # CPU idle throughout: only latency can shed
    limiter = make(cpu, clock, initial_limit=20)

    # 15 in flight at 10 ms: the limit grows (gradient 1, + sqrt(L) queue) until 15 < L / 2.
    for _ in range(30):
        assert run_bucket(limiter, clock, 15, 0.010, together=15) == 15
    steady = limiter.snapshot().gradient_limit
    assert 28 <= steady <= 32

    # Latency triples, and so does concurrency (Little's law): gradient 1.5 * 10 / 30 = 0.5.
    admitted = [run_bucket(limiter, clock, 45, 0.030, together=45) for _ in range(15)]
    low = limiter.snapshot().gradient_limit
    assert low < steady / 2
    assert admitted[:3] == [45, 45, 45]  # shedding waits for 3 degraded buckets in a row
    assert admitted[-1] < 45  # then calls above the gradient limit are shed
    assert limiter.reason == "latency"
    assert sum(limiter.try_acquire() for _ in range(45)) == low  # exactly the gradient limit
    for _ in range(low):
        limiter.on_done(0.030)
    clock.advance(BUCKET)

    # Latency back to 10 ms: nothing is shed and the limit climbs back.
    admitted = [run_bucket(limiter, clock, 15, 0.010, together=15) for _ in range(40)]
    assert admitted[1:] == [15] * 39  # from the first bucket measured at 10 ms on
    assert limiter.snapshot().gradient_limit >= steady - 2
    assert limiter.reason == ""


def test_latency_shedding_needs_sustained_degradation() -> None:
    clock, cpu = FakeClock(), Signal(0.1)
    limiter = make(cpu, clock, latency_sustain=3)
    for _ in range(20):
        run_bucket(limiter, clock, 15, 0.010, together=15)
    for _ in range(5):  # single slow buckets between normal ones never shed
        assert run_bucket(limiter, clock, 15, 0.100, together=15) == 15
        assert run_bucket(limiter, clock, 15, 0.010, together=15) == 15
    assert limiter.last_shed is None


def test_long_idle_gap_empties_the_window() -> None:
    clock, cpu = FakeClock(), Signal(0.9)
    limiter = make(cpu, clock)
    warm(limiter, clock)
    assert limiter.snapshot().max_pass_per_second > 0
    clock.advance(60)
    snap = limiter.snapshot()
    assert (snap.max_pass_per_second, snap.min_rt) == (0.0, 0.0)
    assert snap.limit == 10  # no BBR term: the gradient limit (20) scaled by factor 0.5


def test_concurrent_acquire_and_done_keep_in_flight_consistent() -> None:
    clock, cpu = FakeClock(), Signal(0.3)
    limiter = make(cpu, clock)
    barrier = threading.Barrier(8)

    def worker() -> None:
        barrier.wait()
        for i in range(2000):
            if limiter.try_acquire():
                if i % 100 == 0:
                    clock.advance(0.01)
                limiter.on_done(0.001)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert limiter.in_flight == 0


@pytest.mark.parametrize(
    ("kwargs", "argument"),
    [
        ({"cpu_threshold": 0}, "cpu_threshold"),
        ({"cpu_threshold": 1.0}, "cpu_max"),
        ({"loop_lag_threshold": 0}, "loop_lag_threshold"),
        ({"cool_off": -1}, "cool_off"),
        ({"window": 0}, "window"),
        ({"buckets": 0}, "buckets"),
        ({"min_limit": 0}, "min_limit"),
        ({"max_limit": 0, "min_limit": 1, "initial_limit": 1}, "max_limit"),
        ({"initial_limit": 5000}, "initial_limit"),
        ({"tolerance": 0.9}, "tolerance"),
        ({"long_window": 0}, "long_window"),
        ({"latency_sustain": 0}, "latency_sustain"),
    ],
)
def test_invalid_arguments_are_named(kwargs: dict[str, object], argument: str) -> None:
    with pytest.raises(ValueError, match=argument):
        AdaptiveLimiter(pressure=Signal(), clock=FakeClock(), **kwargs)  # type: ignore[arg-type]


def test_samplers_must_be_callable() -> None:
    with pytest.raises(TypeError, match="pressure"):
        AdaptiveLimiter(pressure=0.5)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="loop_lag"):
        AdaptiveLimiter(pressure=Signal(), loop_lag=0.1)  # type: ignore[arg-type]


# -- admission cap (for refusing before the chain), sheds reported from there, probe RTT --------


def test_admission_cap_is_none_without_pressure_and_the_limit_under_it() -> None:
    clock, cpu = FakeClock(), Signal(0.3)
    limiter = make(cpu, clock)
    warm(limiter, clock)
    assert limiter.admission_cap() is None
    cpu.value = 0.8
    clock.advance(BUCKET)
    assert limiter.admission_cap() == limiter.limit == 11


def test_a_shed_elsewhere_starts_the_cool_off_like_a_shed_here() -> None:
    clock, cpu = FakeClock(), Signal(0.3)
    limiter = pressed(cpu, clock)
    limiter.shed_elsewhere()
    assert limiter.reason == "cpu" and limiter.last_shed == clock()
    cpu.value = 0.3
    clock.advance(BUCKET)  # pressure gone, still cooling off: the cap stays
    assert limiter.admission_cap() == 11
    clock.advance(1.0)
    assert limiter.admission_cap() is None


def test_without_pressure_a_shed_elsewhere_is_a_latency_shed() -> None:
    clock, cpu = FakeClock(), Signal(0.1)
    limiter = make(cpu, clock)
    warm(limiter, clock)
    limiter.shed_elsewhere()
    assert limiter.reason == "latency"


def test_probe_rtt_drops_the_limit_once_per_window_of_overload() -> None:
    clock, cpu = FakeClock(), Signal(0.3)
    limiter = make(cpu, clock)
    warm(limiter, clock)
    cpu.value = 0.9
    caps = []
    for _ in range(25):  # 2.5 s of overload, one cap reading per bucket
        run_bucket(limiter, clock, 100, 0.010)
        caps.append(limiter.admission_cap())
    probes = [i for i, cap in enumerate(caps) if cap == 1]
    starts = [i for i in probes if i - 1 not in probes]
    # The first probe a window (10 buckets) into the overload, then one per window, each a bucket
    # and a half long (one or two readings); the limit in force in between.
    assert len(starts) == 2 and 8 <= starts[0] <= 11 and starts[1] - starts[0] == 10
    assert all(len([i for i in probes if s <= i <= s + 2]) <= 2 for s in starts)
    assert all(cap is not None and cap > 1 for i, cap in enumerate(caps) if i not in probes)


def test_probe_rtt_unlearns_a_min_rt_inflated_by_time_slicing() -> None:
    # A GIL-bound service: 10 ms of CPU per call, so n calls in flight each take n * 10 ms. At
    # saturation it passes 9 calls per 100-ms bucket whatever n is (90 calls/s).
    clock, cpu = FakeClock(), Signal(1.0)
    limiter = make(cpu, clock, cpu_threshold=0.8, cpu_max=2.0)
    limits = []
    for _ in range(40):
        together = max(1, min(limiter.admission_cap() or 4, 4))
        run_bucket(limiter, clock, 9, 0.010 * together, together=together)
        limits.append(limiter.limit)
    # Without the probe the first buckets (4 in flight, 40 ms each) would hold the limit at 4:
    # round((90 * 0.04 + 1) * 0.83) = 4. The probe's lone calls (10 ms) bring it to 2.
    assert limits[0] == 4
    assert limits[-1] == 2
