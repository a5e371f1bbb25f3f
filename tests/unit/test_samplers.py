"""Samplers: the rate-limiting token bucket (fake clock) and selection by name."""

from __future__ import annotations

import pytest
from opentelemetry.sdk.trace.sampling import Decision, ParentBased, TraceIdRatioBased

from telemetry import RateLimitingSampler
from telemetry.testing import FakeClock
from telemetry.tracing.samplers import sampler_from_name


def decide(sampler: RateLimitingSampler) -> bool:
    return sampler.should_sample(None, 1, "span").decision is Decision.RECORD_AND_SAMPLE


def test_rate_limit_admits_burst_then_refills_at_rate() -> None:
    clock = FakeClock()
    sampler = RateLimitingSampler(5, clock=clock)
    assert [decide(sampler) for _ in range(7)] == [True] * 5 + [False] * 2
    clock.advance(0.2)  # one token at 5/s
    assert [decide(sampler) for _ in range(2)] == [True, False]
    clock.advance(10)  # refill caps at the burst size
    assert sum(decide(sampler) for _ in range(10)) == 5


def test_fractional_rate_admits_one_then_waits() -> None:
    clock = FakeClock()
    sampler = RateLimitingSampler(0.5, clock=clock)
    assert decide(sampler) and not decide(sampler)
    clock.advance(1.9)
    assert not decide(sampler)
    clock.advance(0.1)
    assert decide(sampler)


def test_sampled_spans_carry_sampler_attributes() -> None:
    result = RateLimitingSampler(1, clock=FakeClock()).should_sample(None, 1, "s", attributes={"a": 1})
    assert result.attributes == {"a": 1, "sampler.type": "ratelimiting", "sampler.param": 1.0}


def test_invalid_rate_is_refused() -> None:
    with pytest.raises(ValueError, match="traces_per_second"):
        RateLimitingSampler(0)


def test_sampler_names() -> None:
    assert isinstance(sampler_from_name("parentbased_ratelimiting", 3), ParentBased)
    ratio = sampler_from_name("traceidratio", 0.5)
    assert isinstance(ratio, TraceIdRatioBased) and ratio.rate == 0.5
    assert sampler_from_name("always_off", None).should_sample(None, 1, "x").decision is Decision.DROP
    with pytest.raises(ValueError, match="unknown sampler"):
        sampler_from_name("sometimes", None)
