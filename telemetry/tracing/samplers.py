"""Samplers: the SDK's, selected by name, plus a rate-limiting sampler the SDK lacks, and a live one.

:class:`RateLimitingSampler` is Jaeger's: a token bucket admitting at most N new traces per second,
with a burst of max(1, N). Wrapped in ParentBased it decides for root spans only, so a trace is
either whole or absent.

:class:`LiveSampler` wraps the configured sampler so the control plane can swap it at run time: the
panel writes ``/governance/<service>/sampling`` (read by :class:`~telemetry.control.LiveRules`)::

    {"ratio": 0.25}              a quarter of new traces (TraceIdRatioBased)
    {"traces_per_second": 5}     at most 5 new traces per second (RateLimitingSampler; 0 < n <= 1e6)

:func:`parse_sampling` validates it (a bad field raises ``RuleError`` naming it,
``sampling.ratio: must be between 0 and 1, got 1.5``) and always returns a parent-based sampler, so
a switch never cuts a trace in two. Deleting the key puts the configured sampler back.
"""

from __future__ import annotations

import json
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
from opentelemetry.trace import Link, SpanKind, TraceState, get_current_span
from opentelemetry.util.types import Attributes

from telemetry._validation import RuleError, finite_number
from telemetry.config import MAX_TRACES_PER_SECOND

DEFAULT_TRACES_PER_SECOND = 100.0


class RateLimitingSampler(Sampler):
    """Samples at most ``traces_per_second`` new traces per second (token bucket)."""

    def __init__(self, traces_per_second: float, clock: Callable[[], float] = time.monotonic) -> None:
        if not 0 < traces_per_second <= MAX_TRACES_PER_SECOND:  # also refuses NaN
            raise ValueError(f"traces_per_second must be in (0, {MAX_TRACES_PER_SECOND:g}]")
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


SAMPLING_FIELDS = ("ratio", "traces_per_second")
"""The fields of a live sampling value; exactly one is given."""


def parse_sampling(raw: bytes | str | None) -> Sampler | None:
    """The sampler a ``/governance/<service>/sampling`` value asks for, always parent-based (a
    trace is kept or dropped whole); None when the key is absent (the configured sampler).
    :class:`RuleError` names the first bad field."""
    if raw is None:
        return None
    try:
        value = json.loads(raw)
    except ValueError as exc:
        raise RuleError("sampling", f"not valid JSON: {exc}") from None
    if not isinstance(value, dict):
        got = "null" if value is None else type(value).__name__
        raise RuleError("sampling", f"must be an object, got {got}")
    unknown = sorted(set(value) - set(SAMPLING_FIELDS))
    if unknown:
        known = ", ".join(SAMPLING_FIELDS)
        raise RuleError(f"sampling.{unknown[0]}", f"unknown field (known: {known})")
    if len(value) != 1:
        given = "both" if value else "neither"
        raise RuleError("sampling", f"give exactly one of {', '.join(SAMPLING_FIELDS)}, got {given}")
    if "ratio" in value:
        ratio = finite_number(value["ratio"], "sampling.ratio")
        if not 0.0 <= ratio <= 1.0:
            raise RuleError("sampling.ratio", f"must be between 0 and 1, got {value['ratio']!r}")
        return ParentBased(TraceIdRatioBased(ratio))
    rate = finite_number(value["traces_per_second"], "sampling.traces_per_second")
    if rate <= 0:
        raise RuleError("sampling.traces_per_second", f"must be > 0, got {value['traces_per_second']!r}")
    if rate > MAX_TRACES_PER_SECOND:
        raise RuleError(
            "sampling.traces_per_second",
            f"at most {MAX_TRACES_PER_SECOND:g}, got {value['traces_per_second']!r}",
        )
    return ParentBased(RateLimitingSampler(rate))


class LiveSampler(Sampler):
    """The configured sampler, or the one :meth:`use` put in its place (the SDK provider and the
    RPC tracer both hold this object, so a swap reaches every span at once).

    ``follows_parent_else_samples``: the configured sampler is ``parentbased_always_on``;
    ``samples_all``: it is ``always_on``. The RPC tracer decides either inline while it is in force
    (:attr:`fast_path`): follow the parent, else sample; or sample every span.

    Readers take no lock: each decision reads :attr:`fast_path` or :attr:`current` once, and
    :meth:`use` orders its two writes so that ``fast_path`` is true only while ``current`` is the
    configured sampler. A call racing a swap is decided by the old sampler or by the new one.
    """

    def __init__(
        self,
        configured: Sampler,
        *,
        follows_parent_else_samples: bool = False,
        samples_all: bool = False,
    ) -> None:
        if follows_parent_else_samples and samples_all:
            raise ValueError("a sampler follows its parent or samples all, not both")
        self._configured = configured
        self._configured_fast = follows_parent_else_samples or samples_all
        self._samples_all = samples_all
        self._lock = threading.Lock()  # orders writers only; deciding never takes it
        self.current: Sampler = configured
        """The sampler deciding now (read-only: swap it with :meth:`use`)."""
        self.fast_path: bool = self._configured_fast
        """True while the RPC tracer may decide inline (see :attr:`samples_all`)."""

    @property
    def configured(self) -> Sampler:
        return self._configured

    @property
    def may_use_fast_path(self) -> bool:
        """Whether :attr:`fast_path` can ever be true (the configuration is parentbased_always_on
        or always_on)."""
        return self._configured_fast

    @property
    def samples_all(self) -> bool:
        """On the fast path: sample every span (always_on), not only those whose parent is."""
        return self._samples_all

    def use(self, sampler: Sampler | None) -> None:
        """Decide with ``sampler`` from now on; None puts the configured sampler back."""
        with self._lock:
            if sampler is None or sampler is self._configured:
                self.current = self._configured
                self.fast_path = self._configured_fast  # after current: fast implies configured
            else:
                self.fast_path = False  # before current, for the same reason
                self.current = sampler

    def should_sample(
        self,
        parent_context: Context | None,
        trace_id: int,
        name: str,
        kind: SpanKind | None = None,
        attributes: Attributes = None,
        links: Sequence[Link] | None = None,
        trace_state: TraceState | None = None,
    ) -> SamplingResult:
        return self.current.should_sample(
            parent_context, trace_id, name, kind, attributes, links, trace_state
        )

    def get_description(self) -> str:
        current = self.current
        configured = self._configured.get_description()
        if current is self._configured:
            return f"LiveSampler{{{configured}}}"
        return f"LiveSampler{{{current.get_description()},configured:{configured}}}"
