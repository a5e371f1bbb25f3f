"""InstancePool picks on a fake clock: round robin spreads calls evenly, random picks are close to
uniform, a picked endpoint is acquired until reported, each multicallable is made once, and the
balancer gets its feedback (except for streams; a failing hook is logged and the endpoint still
released).
"""

from __future__ import annotations

import logging
import random
from collections import Counter
from collections.abc import Sequence

import pytest
from instance_pool_fakes import A, B, C, call, make_pool, pick, running

from telemetry.discovery.balancer import RandomBalancer, RoundRobinBalancer
from telemetry.discovery.instance import Instance
from telemetry.discovery.instance_pool import Endpoint, Verdict


class Recorder:
    """A round-robin balancer that records the feedback it gets."""

    def __init__(self) -> None:
        self.inner = RoundRobinBalancer(random=random.Random(1).random)
        self.started: list[str] = []
        self.done: list[tuple[str, float, bool]] = []

    def pick(self, candidates: Sequence[Instance]) -> Instance:
        return self.inner.pick(candidates)

    def on_start(self, instance: Instance) -> None:
        self.started.append(instance.id)

    def on_done(self, instance: Instance, latency_seconds: float, ok: bool) -> None:
        self.done.append((instance.id, latency_seconds, ok))


# -- picking ---------------------------------------------------------------------------------------


def test_round_robin_spreads_calls_evenly() -> None:
    pool, _, _, made = make_pool()
    counts = Counter(call(pool).id for _ in range(300))
    assert counts == {"a": 100, "b": 100, "c": 100}
    assert sorted(c.address for c in made) == sorted(i.address for i in (A, B, C))  # one channel each
    assert running(pool) == 0


def test_random_pick_distribution_is_close_to_uniform() -> None:
    pool, _, _, _ = make_pool(balancer=RandomBalancer(random=random.Random(11).random))
    counts = Counter(call(pool).id for _ in range(3000))
    assert set(counts) == {"a", "b", "c"}
    assert all(800 < n < 1200 for n in counts.values()), counts


def test_picked_endpoint_is_acquired_until_reported() -> None:
    pool, _, _, _ = make_pool()
    picks = [pick(pool) for _ in range(5)]
    assert running(pool) == 5
    for instance, endpoint in picks:
        pool.report(instance, endpoint, Verdict.SUCCESS, 0.01)
    assert running(pool) == 0


def test_endpoint_makes_each_multicallable_once() -> None:
    pool, _, _, _ = make_pool([A])
    instance, endpoint = pick(pool)
    key = ("unary_unary", "/svc/M", None, None, False)
    first = endpoint.callable(key)
    assert endpoint.callable(key) is first
    assert first == (A.address, ("/svc/M", None, None, False))
    assert isinstance(endpoint, Endpoint) and endpoint.channel is not None
    assert endpoint.channel.made == [("/svc/M", None, None, False)]
    pool.report(instance, endpoint, Verdict.SUCCESS, 0.0)


def test_feedback_reaches_the_balancer_except_for_streams() -> None:
    recorder = Recorder()
    pool, _, _, _ = make_pool([A], balancer=recorder)
    instance, endpoint = pick(pool)
    pool.started(instance)
    pool.report(instance, endpoint, Verdict.FAILURE, 0.25)
    instance, endpoint = pick(pool)
    pool.report(instance, endpoint, Verdict.IGNORED, 0.5)
    instance, endpoint = pick(pool)
    pool.report(instance, endpoint, Verdict.FAILURE, 9.0, streamed=True)
    assert recorder.started == ["a"]
    assert recorder.done == [("a", 0.25, False), ("a", 0.5, True)]


def test_a_failing_balancer_hook_is_logged_and_the_endpoint_still_released(
    caplog: pytest.LogCaptureFixture,
) -> None:
    class Broken(Recorder):
        def on_start(self, instance: Instance) -> None:
            raise RuntimeError("start")

        def on_done(self, instance: Instance, latency_seconds: float, ok: bool) -> None:
            raise RuntimeError("done")

    pool, _, _, _ = make_pool([A], balancer=Broken())
    caplog.set_level(logging.ERROR, logger="telemetry.discovery.instance_pool")
    instance, endpoint = pick(pool)
    pool.started(instance)
    pool.report(instance, endpoint, Verdict.SUCCESS, 0.01)
    assert running(pool) == 0
    assert [r.getMessage() for r in caplog.records] == [
        "balancer on_start failed",
        "balancer on_done failed",
    ]
