"""Trace sampling from etcd: it stops new traces but still follows sampled parents, an invalid
sampling value is refused while the previous sampling stays, and a handle given etcd applies live
sampling.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

import echo_pb2
import echo_pb2_grpc
import grpc
from conftest import Service
from helpers import make_config, wait_until
from prometheus_client import CollectorRegistry

import telemetry
from live_rules.support import APPLY_WITHIN, LIMIT_50, StartLive, put, server_limit, wait_status
from telemetry.control import rules_key
from telemetry.discovery.etcd import EtcdClient
from telemetry.governance import Governance
from telemetry.testing import SpanCapture
from telemetry.testing.etcd_server import EtcdServer
from telemetry.tracing.samplers import LiveSampler

# -- trace sampling -------------------------------------------------------------------------------

PARENT_SPAN = "00f067aa0ba902b7"


def call(stub: Any, parent_trace: int | None = None) -> str:
    """One Unary call (a sampled remote parent when ``parent_trace``); the trace id the handler
    saw, sampled or not. A sync server ends its span before replying: no wait is needed after."""
    metadata = None
    if parent_trace is not None:
        metadata = [("traceparent", f"00-{parent_trace:032x}-{PARENT_SPAN}-01")]
    reply = stub.Unary(echo_pb2.EchoRequest(text="x"), timeout=5, metadata=metadata)
    return str(reply.hops[0].trace_id)


def traced(spans: SpanCapture, trace_id: str) -> bool:
    return any(format(s.context.trace_id, "032x") == trace_id for s in spans.spans() if s.context)


def live_sampler(echo: Service) -> LiveSampler:
    assert echo.tel.tracing is not None
    return echo.tel.tracing.sampler


def test_sampling_from_etcd_stops_new_traces_but_follows_sampled_parents(
    client: EtcdClient, live: StartLive, service: str, sync_service: Callable[..., Service]
) -> None:
    echo = sync_service("sampled")
    sampler = live_sampler(echo)
    live(Governance(), service, sampler=sampler)
    stub = echo_pb2_grpc.EchoStub(grpc.insecure_channel(echo.target))
    assert traced(echo.spans, call(stub))  # configured: parentbased_always_on

    revision = put(client, service, "sampling", {"ratio": 0.0})
    wait_status(client, service, revision, "applied")
    assert sampler.current is not sampler.configured and not sampler.fast_path
    roots = [call(stub) for _ in range(5)]
    assert not any(traced(echo.spans, trace_id) for trace_id in roots)

    parent_trace = random.getrandbits(128) | 1
    followed = call(stub, parent_trace)
    assert followed == f"{parent_trace:032x}"  # the trace continues ...
    (span,) = [s for s in echo.spans.spans() if s.context and s.context.trace_id == parent_trace]
    assert span.parent is not None and format(span.parent.span_id, "016x") == PARENT_SPAN  # ... whole

    client.delete(rules_key(service, "sampling"))  # no key: the configured sampler again
    wait_until(lambda: sampler.current is sampler.configured, APPLY_WITHIN, "configured sampler")
    assert sampler.fast_path
    assert traced(echo.spans, call(stub))


def test_an_invalid_sampling_value_is_refused_and_the_previous_sampling_stays(
    client: EtcdClient, live: StartLive, service: str, sync_service: Callable[..., Service]
) -> None:
    echo = sync_service("badsampling")
    sampler = live_sampler(echo)
    gov = Governance()
    live(gov, service, sampler=sampler)
    stub = echo_pb2_grpc.EchoStub(grpc.insecure_channel(echo.target))
    good = put(client, service, "sampling", {"ratio": 0.0})
    wait_status(client, service, good, "applied")
    in_force = sampler.current

    bad = put(client, service, "sampling", {"ratio": 1.5})
    rejected = wait_status(client, service, bad, "rejected")
    assert rejected["error"] == "sampling.ratio: must be between 0 and 1, got 1.5"
    assert sampler.current is in_force
    assert not traced(echo.spans, call(stub))

    # Rules and sampling are one whole: a rule change waits until the sampling is fixed.
    rule = put(client, service, "server", LIMIT_50)
    rejected = wait_status(client, service, rule, "rejected")
    assert rejected["error"].startswith("sampling.ratio:")
    assert server_limit(gov) is None

    fixed = put(client, service, "sampling", {"traces_per_second": 100})
    wait_status(client, service, fixed, "applied")
    assert server_limit(gov) == 50
    assert sampler.current is not in_force and "RateLimitingSampler{100/s}" in sampler.get_description()
    assert traced(echo.spans, call(stub))

    current = sampler.current
    other = put(client, service, "enabled", False)  # another key: the sampler is not rebuilt
    wait_status(client, service, other, "applied")
    assert not gov.rules.enabled and sampler.current is current


def test_a_handle_with_etcd_applies_live_sampling(
    client: EtcdClient, etcd: EtcdServer, service: str
) -> None:
    tel = telemetry.Telemetry(
        make_config(service), registry=CollectorRegistry(), governance={},
        etcd=etcd.endpoint, instance_id="h1",
    )  # fmt: skip
    try:
        assert tel.live_rules is not None and tel.live_rules.wait_ready(5)
        assert tel.tracing is not None
        sampler = tel.tracing.sampler
        revision = put(client, service, "sampling", {"traces_per_second": 5})
        wait_status(client, service, revision, "applied", "h1")
        assert "RateLimitingSampler{5/s}" in sampler.get_description()
        assert tel.tracing.rpc_tracer.reads_parent_context  # the inline fast path is off
    finally:
        tel.shutdown()
