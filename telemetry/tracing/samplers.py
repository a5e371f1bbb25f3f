"""Samplers: the SDK's, selected by name, plus a rate-limiting sampler the SDK lacks.

:class:`RateLimitingSampler` is Jaeger's: a token bucket admitting at most N new traces per second,
with a burst of max(1, N). Wrapped in ParentBased it decides for root spans only, so a trace is
either whole or absent.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence

from opentelemetry.context import Context
from opentelemetry.sdk.trace.sampling import (
    ALWAYS_OFF,
    ALWAYS_ON,
    Decision,
    ParentBased,
    Sampler,
    SamplingResult,
    TraceIdRatioBased,
)
from opentelemetry.trace import Link, SpanKind, get_current_span
from opentelemetry.util.types import Attributes

DEFAULT_TRACES_PER_SECOND = 100.0


class RateLimitingSampler(Sampler):
    """Samples at most ``traces_per_second`` new traces per second (token bucket)."""

    def __init__(self, traces_per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        if traces_per_second <= 0:
            raise ValueError("traces_per_second must be > 0")
        self._rate = float(traces_per_second)
        self._capacity = max(1.0, self._rate)
        self._tokens = self._capacity
        self._clock = clock
        self._last = clock()
        self._lock = threading.Lock()
        self._attributes: dict[str, str | float] = {
            "sampler.type": "ratelimiting",
            "sampler.param": self._rate,
        }

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: object = None,
    ) -> SamplingResult:
        with self._lock:
            now = self._clock()
            self._tokens = min(self._capacity, self._tokens + (now - self._last) * self._rate)
            self._last = now
            sampled = self._tokens >= 1.0
            if sampled:
                self._tokens -= 1.0
        parent_state = get_current_span(parent_context).get_span_context().trace_state
        if sampled:
            return SamplingResult(
                Decision.RECORD_AND_SAMPLE, {**(attributes or {}), **self._attributes}, parent_state
            )
        return SamplingResult(Decision.DROP, None, parent_state)

    def get_description(self) -> str:
        return f"RateLimitingSampler{{{self._rate:g}/s}}"


def sampler_from_name(name: str, arg: float | None) -> Sampler:
    """Build the sampler for an ``OTEL_TRACES_SAMPLER`` name (validated by the config)."""
    parent_based = name.startswith("parentbased_")
    base = name.removeprefix("parentbased_")
    root: Sampler
    if base == "always_on":
        root = ALWAYS_ON
    elif base == "always_off":
        root = ALWAYS_OFF
    elif base == "traceidratio":
        root = TraceIdRatioBased(1.0 if arg is None else arg)
    elif base == "ratelimiting":
        root = RateLimitingSampler(DEFAULT_TRACES_PER_SECOND if arg is None else arg)
    else:
        raise ValueError(f"unknown sampler {name!r}")
    return ParentBased(root) if parent_based else root
