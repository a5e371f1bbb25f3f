"""The OpenTelemetry SDK's own TraceContextTextMapPropagator on the same W3C cases: the cases it
reads otherwise are pinned (none of the tracestate cases; it continues the first of several
traceparent fields instead of starting a new trace).
"""

from __future__ import annotations

from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from w3c_cases import TP, TRACEPARENT_CASES, TRACESTATE_CASES, Case, P, T, expected, from_propagator

# -- the SDK's propagator on the same cases ----------------------------------------------------

# What the SDK's TraceContextTextMapPropagator (opentelemetry-api 1.45, installed here) reads
# otherwise, case by case: none of the tracestate cases (this release discards a tracestate with a
# duplicated key, a bad key or a key over its length limits, as the spec says), but it continues
# the first of several traceparent fields instead of starting a new trace.
SDK_WRONG_TRACESTATE: set[str] = set()
SDK_WRONG_TRACEPARENT = {
    "two traceparent fields: a new trace",
    "two identical traceparent fields: a new trace",
}


def sdk_wrong(cases: list[Case]) -> set[str]:
    sdk = TraceContextTextMapPropagator()
    return {case.name for case in cases if from_propagator(case.headers, sdk) != expected(case)}


def test_the_sdk_propagator_on_the_tracestate_cases() -> None:
    assert sdk_wrong(TRACESTATE_CASES) == SDK_WRONG_TRACESTATE
    assert len(SDK_WRONG_TRACESTATE) == 0  # of 56 (41 of them the W3C suite's)


def test_the_sdk_propagator_on_the_traceparent_cases() -> None:
    assert sdk_wrong(TRACEPARENT_CASES) == SDK_WRONG_TRACEPARENT
    headers = [("traceparent", f"00-{T[:-1]}1-{P}-01"), ("traceparent", TP)]
    assert from_propagator(headers, TraceContextTextMapPropagator()).trace_id == f"{T[:-1]}1"
    assert from_propagator(headers).trace_id is None
