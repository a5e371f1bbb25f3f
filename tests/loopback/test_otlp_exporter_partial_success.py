"""A collector's partial success (some spans rejected): never retried, counted, and logged at most
once a minute, over gRPC and HTTP.
"""

from __future__ import annotations

import pytest
from helpers import metric_value
from otlp_receivers import Reply, Response, end_spans, pipeline_of, receiver_for, settled, start
from prometheus_client import CollectorRegistry

import telemetry
from telemetry.testing import LogCapture

# -- partial success, one ResourceSpans -----------------------------------------------------------


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_partial_success_is_counted_and_logged_at_most_once_a_minute(
    protocol: str, handles: list[telemetry.Telemetry], logs: LogCapture
) -> None:
    partial = Response()
    partial.partial_success.rejected_spans = 2
    partial.partial_success.error_message = "span too large"
    registry = CollectorRegistry()
    with receiver_for(protocol, lambda n, elapsed: Reply(response=partial)) as receiver:
        tel = start(handles, registry=registry, otlp_endpoint=receiver.base, otlp_protocol=protocol)
        pipeline = pipeline_of(tel)
        end_spans(tel, 5, "first")
        settled(pipeline, 5)
        end_spans(tel, 5, "second")
        settled(pipeline, 10)
        hits = receiver.hits
    assert len(hits) == 2 and pipeline.retries == 0  # a partial success is never retried
    assert pipeline.rejected == 4 and pipeline.exported == 6 and pipeline.failed == 0
    assert metric_value(registry, "telemetry_spans_export_rejected_total") == 4
    (line,) = [e for e in logs.events if e.get("logger") == "telemetry.export"]
    assert line["event"] == "collector rejected 2 of 5 spans (2 so far): span too large"
