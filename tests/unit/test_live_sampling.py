"""Live trace sampling: the etcd value's validation, swapping the sampler in force, the RPC tracer's
inline fast path following the swap, and parent-based decisions under ratio 0 and 1."""

from __future__ import annotations

import json

import pytest
from helpers import make_config
from opentelemetry import trace
from opentelemetry.context import Context
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ALWAYS_ON, Decision, ParentBased, Sampler
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, TraceFlags

from telemetry.governance.rules import RuleError
from telemetry.tracing.otlp_encoding import SpanTemplate
from telemetry.tracing.rpctracer import RpcTracer
from telemetry.tracing.samplers import LiveSampler, parse_sampling, sampler_from_name
from telemetry.tracing.setup import build_tracing

TEMPLATE = SpanTemplate("Unary", "SERVER", {"rpc.system.name": "grpc"})
PARENT_TRACE = 0x0AF7651916CD43DD8448EB211C80319C


def parent(sampled: bool) -> SpanContext:
    flags = TraceFlags(TraceFlags.SAMPLED if sampled else TraceFlags.DEFAULT)
    return SpanContext(PARENT_TRACE, 0x00F067AA0BA902B7, is_remote=True, trace_flags=flags)


def samples(sampler: Sampler, parent_span: SpanContext | None = None) -> bool:
    context = None if parent_span is None else trace.set_span_in_context(NonRecordingSpan(parent_span))
    decision = sampler.should_sample(context, 1, "span").decision
    return decision is Decision.RECORD_AND_SAMPLE


def describe(sampler: Sampler) -> str:
    return sampler.get_description()  # typed here; ParentBased's own is not


def default_live() -> LiveSampler:
    """The default configuration: parentbased_always_on, decided inline by the RPC tracer."""
    return LiveSampler(
        sampler_from_name("parentbased_always_on", None), follows_parent_else_samples=True
    )


def ratio(value: float) -> Sampler:
    sampler = parse_sampling(f'{{"ratio": {value}}}')
    assert sampler is not None
    return sampler


# -- parse_sampling -------------------------------------------------------------------------------


def test_a_ratio_becomes_a_parent_based_ratio_sampler() -> None:
    sampler = parse_sampling(b'{"ratio": 0.25}')
    assert isinstance(sampler, ParentBased)
    assert "TraceIdRatioBased{0.25}" in describe(sampler)
    assert not samples(ratio(0.0)) and samples(ratio(1.0))
    assert samples(ratio(0.0), parent(sampled=True))  # the parent decides, not the ratio
    assert not samples(ratio(1.0), parent(sampled=False))


def test_traces_per_second_becomes_a_parent_based_rate_limit() -> None:
    sampler = parse_sampling('{"traces_per_second": 2}')
    assert isinstance(sampler, ParentBased)
    assert "RateLimitingSampler{2/s}" in describe(sampler)
    assert [samples(sampler) for _ in range(3)] == [True, True, False]  # a burst of 2, then wait
    assert samples(sampler, parent(sampled=True))


def test_an_absent_key_means_the_configured_sampler() -> None:
    assert parse_sampling(None) is None


@pytest.mark.parametrize(
    ("raw", "path", "message"),
    [
        ('{"ratio": 1.5}', "sampling.ratio", "sampling.ratio: must be between 0 and 1, got 1.5"),
        ('{"ratio": -0.1}', "sampling.ratio", "sampling.ratio: must be between 0 and 1, got -0.1"),
        ('{"ratio": "half"}', "sampling.ratio", "sampling.ratio: must be a finite number, got 'half'"),
        ('{"ratio": true}', "sampling.ratio", "sampling.ratio: must be a finite number, got True"),
        (
            '{"traces_per_second": 0}',
            "sampling.traces_per_second",
            "sampling.traces_per_second: must be > 0, got 0",
        ),
        (
            '{"traces_per_second": NaN}',
            "sampling.traces_per_second",
            "sampling.traces_per_second: must be a finite number, got nan",
        ),
        (
            '{"ratio": 0.5, "foo": 1}',
            "sampling.foo",
            "sampling.foo: unknown field (known: ratio, traces_per_second)",
        ),
        (
            '{"ratio": 0.5, "traces_per_second": 5}',
            "sampling",
            "sampling: give exactly one of ratio, traces_per_second, got both",
        ),
        ("{}", "sampling", "sampling: give exactly one of ratio, traces_per_second, got neither"),
        ("[0.5]", "sampling", "sampling: must be an object, got list"),
        ("null", "sampling", "sampling: must be an object, got null"),
        ("{ratio: 0.5", "sampling", "sampling: not valid JSON: "),
    ],
)
def test_an_invalid_value_names_the_field(raw: str, path: str, message: str) -> None:
    with pytest.raises(RuleError) as raised:
        parse_sampling(raw)
    assert raised.value.path == path
    assert str(raised.value).startswith(message)


# -- LiveSampler ----------------------------------------------------------------------------------


def test_use_swaps_the_sampler_and_none_restores_the_configured_one() -> None:
    live = LiveSampler(ALWAYS_ON)
    assert live.current is live.configured is ALWAYS_ON
    assert samples(live)

    live.use(ALWAYS_OFF)
    assert live.current is ALWAYS_OFF and not samples(live)
    description = live.get_description()
    assert "AlwaysOffSampler" in description and "configured:AlwaysOnSampler" in description

    live.use(None)
    assert live.current is ALWAYS_ON and samples(live)
    assert live.get_description() == "LiveSampler{AlwaysOnSampler}"


def test_fast_path_only_while_the_configured_parentbased_always_on_is_in_force() -> None:
    live = default_live()
    assert live.fast_path and live.may_use_fast_path
    live.use(ratio(0.5))
    assert not live.fast_path
    live.use(None)
    assert live.fast_path
    live.use(ratio(0.5))
    live.use(live.configured)  # putting the configured one back by name counts too
    assert live.fast_path

    other = LiveSampler(ParentBased(ALWAYS_ON))  # not declared parentbased_always_on: no shortcut
    assert not other.fast_path and not other.may_use_fast_path
    other.use(ratio(1.0))
    other.use(None)
    assert not other.fast_path


# -- RpcTracer under a live sampler ---------------------------------------------------------------


def tracer(live: LiveSampler) -> RpcTracer:
    return RpcTracer(live, Resource.create({}), None)


def start(
    rpc: RpcTracer, parent_span: SpanContext | None, parent_context: Context | None = None
) -> trace.Span:
    if parent_span is not None and parent_context is None and rpc.reads_parent_context:
        parent_context = trace.set_span_in_context(NonRecordingSpan(parent_span))
    return rpc.start(TEMPLATE, parent_span, parent_context, SpanKind.SERVER)


def test_rpc_tracer_follows_the_swap_per_call() -> None:
    live = default_live()
    rpc = tracer(live)
    assert rpc.sampler is live
    assert not rpc.reads_parent_context  # the fast path needs no parent in the context
    assert start(rpc, None).is_recording()

    live.use(ratio(0.0))
    assert rpc.reads_parent_context
    assert not start(rpc, None).is_recording()

    live.use(None)
    assert not rpc.reads_parent_context
    assert start(rpc, None).is_recording()


@pytest.mark.parametrize("parent_sampled", [None, True, False])
def test_configured_always_on_samples_inline_whatever_the_parent(parent_sampled: bool | None) -> None:
    live = LiveSampler(ALWAYS_ON, samples_all=True)
    rpc = tracer(live)
    assert not rpc.reads_parent_context  # decided inline, as the SDK's ALWAYS_ON would
    parent_span = None if parent_sampled is None else parent(parent_sampled)
    span = start(rpc, parent_span)
    assert span.is_recording() and span.get_span_context().trace_flags.sampled
    if parent_span is not None:
        assert span.get_span_context().trace_id == parent_span.trace_id
    live.use(ratio(0.0))  # a live swap ends the shortcut
    assert rpc.reads_parent_context and not start(rpc, None).is_recording()


def test_a_sampler_cannot_both_follow_its_parent_and_sample_all() -> None:
    with pytest.raises(ValueError, match="not both"):
        LiveSampler(ALWAYS_ON, follows_parent_else_samples=True, samples_all=True)


@pytest.mark.parametrize(
    ("value", "parent_sampled", "recorded"),
    [
        (0.0, None, False),  # a new trace at ratio 0: dropped
        (0.0, True, True),  # a sampled parent is followed: the trace stays whole
        (0.0, False, False),
        (1.0, None, True),
        (1.0, True, True),
        (1.0, False, False),  # an unsampled parent is followed too
    ],
)
def test_rpc_tracer_decisions_under_a_live_ratio(
    value: float, parent_sampled: bool | None, recorded: bool
) -> None:
    live = default_live()
    live.use(ratio(value))
    parent_span = None if parent_sampled is None else parent(parent_sampled)
    span = start(tracer(live), parent_span)
    assert span.is_recording() is recorded
    context = span.get_span_context()
    assert context.trace_flags.sampled is recorded
    if parent_span is not None:
        assert context.trace_id == PARENT_TRACE


def test_a_caller_that_skipped_the_parent_before_a_swap_still_follows_it() -> None:
    live = default_live()
    rpc = tracer(live)
    assert not rpc.reads_parent_context  # so the caller builds no parent context ...
    live.use(ratio(0.0))  # ... and the swap lands before start()
    span = rpc.start(TEMPLATE, parent(sampled=True), Context(), SpanKind.SERVER)
    assert span.is_recording()


def test_build_tracing_shares_one_live_sampler() -> None:
    tracing = build_tracing(make_config("live-sampling"))
    try:
        assert tracing.rpc_tracer.sampler is tracing.sampler
        assert tracing.provider.sampler is tracing.sampler
        assert tracing.sampler.fast_path  # the default config: parentbased_always_on

        tracing.sampler.use(ratio(0.0))
        sdk = tracing.provider.get_tracer("test")
        with sdk.start_as_current_span("root") as root:
            assert not root.is_recording()
        with trace.use_span(NonRecordingSpan(parent(sampled=True))):
            child = sdk.start_span("child")  # SDK spans follow the parent like RPC spans
            assert child.is_recording()
            child.end()
    finally:
        tracing.shutdown(1.0)


@pytest.mark.parametrize("rate", [1e6 + 1, 1e308])
def test_a_rate_past_the_ceiling_is_refused(rate: float) -> None:
    with pytest.raises(RuleError, match=r"sampling.traces_per_second: at most 1e\+06"):
        parse_sampling(json.dumps({"traces_per_second": rate}))
