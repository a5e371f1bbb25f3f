"""Balancers and routing: distributions, exact sequences, P2C load avoidance, forgetting, groups."""

from __future__ import annotations

import random
import threading
from collections import Counter
from collections.abc import Callable, Sequence
from typing import Any

import pytest

from telemetry.discovery.balancer import (
    BALANCERS,
    Balancer,
    NoInstanceError,
    P2CBalancer,
    RandomBalancer,
    RoundRobinBalancer,
    WeightedRandomBalancer,
    WeightedRoundRobinBalancer,
    build_balancer,
    route,
)
from telemetry.discovery.instance import Instance
from telemetry.testing import FakeClock


def inst(name: str, weight: int = 100, group: str = "", **metadata: str) -> Instance:
    port = 50000 + sum(ord(c) for c in name)
    return Instance(
        service="svc",
        id=name,
        address=f"10.0.0.1:{port}",
        weight=weight,
        group=group,
        metadata=metadata,
    )


def rng(seed: int = 7) -> random.Random:
    return random.Random(seed)


def counts(balancer: Balancer, candidates: Sequence[Instance], n: int) -> Counter[str]:
    return Counter(balancer.pick(candidates).id for _ in range(n))


def in_threads(work: Callable[[], None], count: int = 4) -> None:
    """Run ``work`` in ``count`` threads at once; return when all are done."""
    threads = [threading.Thread(target=work) for _ in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()


A, B, C = inst("a"), inst("b"), inst("c")


@pytest.mark.parametrize("name", BALANCERS)
def test_every_balancer_rejects_no_candidates_and_handles_one(name: str) -> None:
    balancer = build_balancer(name, random=rng().random, clock=FakeClock())
    with pytest.raises(NoInstanceError, match="no candidate"):
        balancer.pick([])
    assert balancer.pick([A]) is A
    balancer.on_start(A)
    balancer.on_done(A, 0.01, True)


def test_build_balancer_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match=r"unknown balancer 'fastest'.*random, round_robin.*p2c"):
        build_balancer("fastest")


def test_random_is_roughly_uniform() -> None:
    seen = counts(RandomBalancer(random=rng().random), [A, B, C], 30_000)
    for key in "abc":
        assert seen[key] == pytest.approx(10_000, rel=0.05)


def test_round_robin_cycles_through_every_candidate_in_order() -> None:
    balancer = RoundRobinBalancer(random=rng().random)
    picks = [balancer.pick([A, B, C]).id for _ in range(9)]
    first = "abc".index(picks[0])
    assert picks == [("abc" * 4)[first + i] for i in range(9)]


def test_round_robin_starts_at_a_random_offset() -> None:
    starts = {RoundRobinBalancer(random=rng(seed).random).pick([A, B, C]).id for seed in range(20)}
    assert starts == {"a", "b", "c"}


def test_weighted_random_follows_the_weights() -> None:
    heavy, light, idle = inst("h", 300), inst("l", 100), inst("z", 0)
    seen = counts(WeightedRandomBalancer(random=rng().random), [heavy, light, idle], 40_000)
    assert seen["h"] == pytest.approx(30_000, rel=0.03)
    assert seen["l"] == pytest.approx(10_000, rel=0.06)
    assert seen["z"] == 0


def test_weighted_random_with_every_weight_zero_is_uniform() -> None:
    zeros = [inst("a", 0), inst("b", 0)]
    seen = counts(WeightedRandomBalancer(random=rng().random), zeros, 10_000)
    assert seen["a"] == pytest.approx(5_000, rel=0.05)


def test_weighted_random_top_of_the_range_picks_the_last_positive_weight() -> None:
    # A source returning (almost) 1.0 must still land on a weighted instance, never the weight-0 one.
    balancer = WeightedRandomBalancer(random=lambda: 0.9999999999999999)
    assert balancer.pick([inst("a", 1), inst("b", 1), inst("z", 0)]).id == "b"


def test_smooth_weighted_round_robin_is_nginx_sequence() -> None:
    a, b, c = inst("a", 5), inst("b", 1), inst("c", 1)
    balancer = WeightedRoundRobinBalancer(clock=FakeClock())
    assert "".join(balancer.pick([a, b, c]).id for _ in range(14)) == "aabacaa" * 2


def test_smooth_weighted_round_robin_shares_and_zero_weight() -> None:
    x, y, z = inst("x", 3), inst("y", 2), inst("z", 0)
    seen = counts(WeightedRoundRobinBalancer(clock=FakeClock()), [x, y, z], 500)
    assert seen == Counter({"x": 300, "y": 200})
    zeros = [inst("p", 0), inst("q", 0)]
    assert counts(WeightedRoundRobinBalancer(clock=FakeClock()), zeros, 10) == {"p": 5, "q": 5}


def test_smooth_weighted_round_robin_state_survives_membership_changes() -> None:
    a, b, c = inst("a", 5), inst("b", 1), inst("c", 1)
    balancer = WeightedRoundRobinBalancer(clock=FakeClock())
    assert [balancer.pick([a, b, c]).id for _ in range(3)] == ["a", "a", "b"]
    # c sits out one pick, then returns in another position: it kept the credit it had built up
    # (3), so it goes second instead of starting over at the back of the cycle.
    assert balancer.pick([a, b]).id == "a"
    assert "".join(balancer.pick([c, a, b]).id for _ in range(7)) == "acaaaba"


def test_smooth_weighted_round_robin_forgets_idle_ids() -> None:
    clock = FakeClock()
    balancer = WeightedRoundRobinBalancer(clock=clock, forget_after=10.0)
    balancer.pick([A, B])
    clock.advance(11.0)
    balancer.pick([A, C])
    assert set(balancer._current) == {"a", "c"}


def test_weighted_round_robin_is_thread_safe() -> None:
    a, b = inst("a", 2), inst("b", 1)
    balancer = WeightedRoundRobinBalancer(clock=FakeClock())
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def work() -> None:
        local = counts(balancer, [a, b], 3_000)
        with lock:
            seen.update(local)

    in_threads(work)
    assert seen == Counter({"a": 8_000, "b": 4_000})  # exact: the cycle is shared


# -- P2C ------------------------------------------------------------------------------------------


def feed(balancer: P2CBalancer, clock: FakeClock, instance: Instance, latency: float, n: int) -> None:
    for _ in range(n):
        balancer.on_start(instance)
        clock.advance(0.001)
        balancer.on_done(instance, latency, True)


def test_p2c_avoids_a_slow_instance() -> None:
    clock = FakeClock()
    balancer = P2CBalancer(random=rng().random, clock=clock)
    slow = inst("s")
    feed(balancer, clock, A, 0.010, 20)
    feed(balancer, clock, B, 0.010, 20)
    feed(balancer, clock, slow, 0.200, 20)
    seen = counts(balancer, [A, B, slow], 3_000)
    assert seen["s"] == 0  # it loses every draw it is in
    assert seen["a"] == pytest.approx(1_500, rel=0.1)


def test_p2c_avoids_an_instance_with_many_calls_in_flight() -> None:
    clock = FakeClock()
    balancer = P2CBalancer(random=rng().random, clock=clock)
    for instance in (A, B, C):
        feed(balancer, clock, instance, 0.010, 5)
    for _ in range(10):
        balancer.on_start(C)
    seen = counts(balancer, [A, B, C], 3_000)
    assert seen["c"] == 0
    assert balancer.stats()["c"].in_flight == 10


def test_p2c_prices_a_fresh_instance_at_the_average_so_it_gets_traffic() -> None:
    clock = FakeClock()
    balancer = P2CBalancer(random=rng().random, clock=clock)
    feed(balancer, clock, A, 0.010, 5)
    feed(balancer, clock, B, 0.030, 5)
    fresh = inst("f")
    seen = counts(balancer, [A, B, fresh], 3_000)
    # Average 20 ms: cheaper than b, dearer than a, so it wins its draws against b.
    assert 500 < seen["f"] < 1_500
    assert seen["a"] > seen["f"] > seen["b"]
    assert balancer.stats()["f"].latency is None


def test_p2c_penalises_failures() -> None:
    clock = FakeClock()
    balancer = P2CBalancer(random=rng().random, clock=clock)
    feed(balancer, clock, A, 0.010, 5)
    for _ in range(5):
        balancer.on_start(B)
        clock.advance(0.2)
        balancer.on_done(B, 0.001, False)  # fails fast: cheap by latency alone
    assert balancer.stats()["b"].success < 0.5
    assert counts(balancer, [A, B], 1_000)["a"] == 1_000


def test_p2c_ewma_decays_with_time_not_samples() -> None:
    clock = FakeClock()
    balancer = P2CBalancer(random=rng().random, clock=clock, decay_time=1.0)
    feed(balancer, clock, A, 0.100, 1)
    # 100 samples 1 ms apart move the average barely (0.1 s of 1 s decay)...
    feed(balancer, clock, A, 0.010, 100)
    latency = balancer.stats()["a"].latency
    assert latency is not None
    assert latency == pytest.approx(0.010 + 0.090 * 0.905, rel=0.01)
    # ...while one sample after a long quiet spell replaces it almost entirely.
    clock.advance(10.0)
    feed(balancer, clock, A, 0.010, 1)
    assert balancer.stats()["a"].latency == pytest.approx(0.010, rel=0.01)


def test_p2c_probes_an_instance_left_out_for_too_long() -> None:
    clock = FakeClock()
    balancer = P2CBalancer(random=rng().random, clock=clock, probe_after=3.0)
    slow = inst("s")
    feed(balancer, clock, A, 0.010, 5)
    feed(balancer, clock, slow, 1.0, 5)
    assert counts(balancer, [A, slow], 100)["s"] == 0
    clock.advance(3.5)
    assert counts(balancer, [A, slow], 100)["s"] == 1  # one probe, then back to avoiding it


def test_p2c_forgets_removed_instances_but_not_busy_ones() -> None:
    clock = FakeClock()
    balancer = P2CBalancer(random=rng().random, clock=clock, forget_after=60.0)
    feed(balancer, clock, A, 0.010, 3)
    feed(balancer, clock, B, 0.010, 3)
    balancer.on_start(C)  # a long call still running on c
    clock.advance(61.0)
    balancer.pick([A, inst("d")])
    assert set(balancer.stats()) == {"a", "c", "d"}


def test_p2c_is_thread_safe() -> None:
    balancer = P2CBalancer()
    candidates = [A, B, C]

    def work() -> None:
        for _ in range(2_000):
            chosen = balancer.pick(candidates)
            balancer.on_start(chosen)
            balancer.on_done(chosen, 0.001, True)

    in_threads(work)
    assert all(load.in_flight == 0 for load in balancer.stats().values())


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"decay_time": 0.0}, "decay_time"),
        ({"probe_after": float("inf")}, "probe_after"),
        ({"min_success": 0.0}, "min_success"),
    ],
)
def test_p2c_rejects_bad_settings(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        P2CBalancer(**kwargs)


# -- routing --------------------------------------------------------------------------------------


def test_route_without_group_keeps_the_default_pool() -> None:
    stable, canary = inst("s"), inst("c", group="canary")
    assert route([stable, canary], group=None, metadata=None) == [stable]


def test_route_without_group_falls_back_to_all_when_there_is_no_default_pool() -> None:
    blue, green = inst("b", group="blue"), inst("g", group="green")
    assert route([blue, green], group=None, metadata=None) == [blue, green]


def test_route_by_group_is_strict() -> None:
    stable, canary = inst("s"), inst("c", group="canary")
    assert route([stable, canary], group="canary", metadata=None) == [canary]
    assert route([stable], group="canary", metadata=None) == []


def test_route_by_metadata_keeps_instances_with_every_value() -> None:
    a = inst("a", zone="z1", tier="gold")
    b = inst("b", zone="z1")
    c = inst("c", zone="z2", tier="gold")
    assert route([a, b, c], group=None, metadata={"zone": "z1"}) == [a, b]
    assert route([a, b, c], group=None, metadata={"zone": "z1", "tier": "gold"}) == [a]
    assert route([a, b, c], group=None, metadata={"zone": "z3"}) == []
    assert route([a, b, c], group=None, metadata={}) == [a, b, c]
