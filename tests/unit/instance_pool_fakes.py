"""What the InstancePool tests share, no grpc: three instances of one service, fake channels, an
instance source the test swaps, a quick breaker (two failures eject for OPEN_WAIT, one good probe
readmits), a pool on a FakeClock, and steps that pick, call, fail an instance or count the calls
running.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from typing import Any

from telemetry.discovery.balancer import RoundRobinBalancer
from telemetry.discovery.instance import Instance
from telemetry.discovery.instance_pool import InstancePool, Picked, Verdict
from telemetry.governance.breaker import CircuitBreaker
from telemetry.testing.clock import FakeClock

SERVICE = "svc"
OPEN_WAIT = 1.0


def inst(name: str, group: str = "") -> Instance:
    port = 50000 + sum(ord(c) for c in name)
    return Instance(service=SERVICE, id=name, address=f"10.0.0.1:{port}", group=group)


A, B, C = inst("a"), inst("b"), inst("c")


class FakeChannel:
    """What make_channel returns: remembers its address and whether it was closed."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.closed = False
        self.made: list[tuple[Any, ...]] = []

    def unary_unary(self, *arguments: Any) -> tuple[str, tuple[Any, ...]]:
        self.made.append(arguments)
        return (self.address, arguments)


class Source:
    """An InstanceSource over a tuple the test swaps: the same object until it does."""

    def __init__(self, instances: Sequence[Instance]) -> None:
        self.current = tuple(instances)
        self.reads = 0

    def instances(self, service: str) -> tuple[Instance, ...]:
        self.reads += 1
        return self.current if service == SERVICE else ()


def quick_breaker(clock: FakeClock) -> CircuitBreaker:
    """Ejects after 2 failures in a row for OPEN_WAIT; one good probe readmits fully."""
    return CircuitBreaker(
        consecutive_failures=2,
        open_wait=OPEN_WAIT,
        backoff_multiplier=1.0,
        half_open_probes=1,
        ramp_steps=(),
        clock=clock,
    )


def make_pool(
    instances: Sequence[Instance] = (A, B, C), **kwargs: Any
) -> tuple[InstancePool[FakeChannel], Source, FakeClock, list[FakeChannel]]:
    clock = FakeClock()
    source = Source(instances)
    made: list[FakeChannel] = []

    def make_channel(address: str) -> FakeChannel:
        made.append(FakeChannel(address))
        return made[-1]

    def close_channel(channel: FakeChannel) -> None:
        channel.closed = True

    options: dict[str, Any] = {
        "close_channel": close_channel,
        "balancer": RoundRobinBalancer(random=random.Random(3).random),
        "breaker_factory": lambda: quick_breaker(clock),
        "clock": clock,
        **kwargs,
    }
    pool: InstancePool[FakeChannel] = InstancePool(
        service=SERVICE,
        source=source,
        make_channel=make_channel,
        **options,
    )
    return pool, source, clock, made


def pick(pool: InstancePool[FakeChannel], group: str | None = None, **kwargs: Any) -> Picked:
    picked = pool.pick(pool.view(), group, **kwargs)
    assert picked is not None
    return picked


def call(pool: InstancePool[FakeChannel], verdict: Verdict = Verdict.SUCCESS) -> Instance:
    """One call: pick, report ``verdict`` after 10 ms; the instance it went to."""
    instance, endpoint = pick(pool)
    pool.report(instance, endpoint, verdict, 0.01)
    return instance


def fail(pool: InstancePool[FakeChannel], target: Instance, times: int = 2) -> None:
    """Report ``times`` failures of ``target`` (picks until it is picked, reporting the others ok)."""
    while times:
        instance, endpoint = pick(pool)
        hit = instance == target
        pool.report(instance, endpoint, Verdict.FAILURE if hit else Verdict.SUCCESS, 0.01)
        times -= hit


def running(pool: InstancePool[FakeChannel]) -> int:
    return sum(e.active for e in pool._view.endpoints.values())
