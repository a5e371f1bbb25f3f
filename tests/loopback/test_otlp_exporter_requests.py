"""What the span exporter sends, against the OTLP specification
(https://opentelemetry.io/docs/specs/otlp/ and
https://opentelemetry.io/docs/specs/otel/protocol/exporter/): the HTTP endpoint paths from the
environment, signal-specific headers and the user agent, and RPC spans and handler spans in one
ResourceSpans (one ScopeSpans per scope), decoded where they arrive.
"""

from __future__ import annotations

import pytest
from opentelemetry import trace
from otlp_receivers import HttpReceiver, end_spans, from_env, receiver_for, start

import telemetry
from telemetry.testing import free_port
from telemetry.tracing.otlp_encoding import SpanTemplate
from telemetry.tracing.rpcspan import SCOPE

USER_AGENT_PREFIX = "OTel-OTLP-Exporter-Python/"


# -- endpoints, headers, user agent ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("variable", "endpoint", "path"),
    [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "{base}", "/v1/traces"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "{base}/", "/v1/traces"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "{base}/prefix", "/prefix/v1/traces"),
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "{base}/prefix/", "/prefix/v1/traces"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "{base}/custom/spans", "/custom/spans"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "{base}/v1/traces", "/v1/traces"),
        ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "{base}", "/"),
    ],
)
def test_http_endpoint_paths(
    variable: str, endpoint: str, path: str, handles: list[telemetry.Telemetry]
) -> None:
    with HttpReceiver() as receiver:
        env = {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf"}
        env[variable] = endpoint.format(base=receiver.base)
        if variable == "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT":  # it wins over the general one
            env["OTEL_EXPORTER_OTLP_ENDPOINT"] = f"http://127.0.0.1:{free_port()}/general"
        tel = start(handles, from_env(env))
        end_spans(tel, 3)
        assert tel.force_flush(10)
        assert [(h.path, h.spans) for h in receiver.hits] == [(path, 3)]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_signal_specific_headers_and_the_user_agent_reach_the_receiver(
    protocol: str, handles: list[telemetry.Telemetry]
) -> None:
    with receiver_for(protocol) as receiver:
        env = {
            "OTEL_EXPORTER_OTLP_PROTOCOL": protocol,
            "OTEL_EXPORTER_OTLP_ENDPOINT": receiver.base,
            "OTEL_EXPORTER_OTLP_HEADERS": "x-general=1",
            "OTEL_EXPORTER_OTLP_TRACES_HEADERS": "x-tenant=acme%20corp",
        }
        tel = start(handles, from_env(env))
        end_spans(tel, 1)
        assert tel.force_flush(10)
        (hit,) = receiver.hits
    assert hit.headers["x-tenant"] == "acme corp" and "x-general" not in hit.headers
    assert hit.headers["user-agent"].startswith(USER_AGENT_PREFIX), hit.headers["user-agent"]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_rpc_spans_and_handler_spans_share_one_resource_spans(
    protocol: str, handles: list[telemetry.Telemetry]
) -> None:
    with receiver_for(protocol) as receiver:
        tel = start(
            handles,
            otlp_endpoint=receiver.base,
            otlp_protocol=protocol,
            span_schedule_delay=30.0,  # both spans wait for the flush: one batch
        )
        assert tel.tracing is not None
        template = SpanTemplate("telemetry.test.Echo/Unary", "SERVER", {"rpc.system": "grpc"})
        rpc = tel.tracing.rpc_tracer.start(template, None, None, trace.SpanKind.SERVER)
        library = tel.tracing.provider.get_tracer("shop.db", "2.0")
        same_scope = tel.tracing.provider.get_tracer(SCOPE.name, SCOPE.version)
        with trace.use_span(rpc), tel.tracer.start_as_current_span("handler work"):
            library.start_span("db.query").end()
            same_scope.start_span("same scope").end()
        rpc.end()
        assert tel.force_flush(10)
        (hit,) = receiver.hits
    (resource_spans,) = hit.request.resource_spans  # one ResourceSpans, not one per encoder
    resource = {kv.key: kv.value.string_value for kv in resource_spans.resource.attributes}
    assert resource["service.name"] == "exporter-spec"
    spans = {
        (s.scope.name, s.scope.version): sorted(span.name for span in s.spans)
        for s in resource_spans.scope_spans
    }
    assert len(spans) == len(resource_spans.scope_spans)  # one ScopeSpans per scope
    scope_of = {name: scope for scope, names in spans.items() for name in names}
    assert set(scope_of) == {"telemetry.test.Echo/Unary", "handler work", "db.query", "same scope"}
    # An SDK span of the RPC spans' own scope joins their ScopeSpans.
    assert {"same scope", "telemetry.test.Echo/Unary"} <= set(spans[SCOPE.name, SCOPE.version])
    assert scope_of["db.query"] == ("shop.db", "2.0")
    assert scope_of["handler work"][0] == "telemetry"  # the handle's tracer
    by_name = {span.name: span for s in resource_spans.scope_spans for span in s.spans}
    assert by_name["handler work"].parent_span_id == by_name["telemetry.test.Echo/Unary"].span_id
    assert by_name["db.query"].parent_span_id == by_name["handler work"].span_id
