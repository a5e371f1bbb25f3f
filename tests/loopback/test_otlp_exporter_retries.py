"""The span exporter's retries against scripted collectors under pressure: 503 with Retry-After,
UNAVAILABLE and RESOURCE_EXHAUSTED (retried only with RetryInfo) lose no span, spans keep queueing
while a retry waits (overflow counted), a non-retryable 400 drops the batch at once, and retries
never outlast the export timeout.
"""

from __future__ import annotations

import itertools
import time

import grpc
import pytest
from helpers import wait_until
from otlp_receivers import (
    OK,
    Answer,
    GrpcReceiver,
    HttpReceiver,
    Reply,
    end_spans,
    pipeline_of,
    receiver_for,
    settled,
    start,
)

import telemetry
from telemetry.testing import LogCapture


def failing(reply: Reply, *, exports: int = 0, seconds: float = 0.0) -> Answer:
    """``reply`` to the first ``exports`` exports and to every export in the first ``seconds``."""
    return lambda n, elapsed: reply if n < exports or elapsed < seconds else OK


# -- retries ---------------------------------------------------------------------------------------


def test_503_with_retry_after_for_one_second_then_200_loses_no_span(
    handles: list[telemetry.Telemetry],
) -> None:
    refusing = Reply(http_status=503, retry_after="1")
    with HttpReceiver(failing(refusing, seconds=1.0)) as receiver:
        tel = start(handles, otlp_endpoint=receiver.base, otlp_protocol="http/protobuf")
        pipeline = pipeline_of(tel)
        end_spans(tel, 20, "before")
        wait_until(lambda: len(receiver.hits) >= 1, 10, "the first (refused) export")
        # While the export thread waits out Retry-After, RPCs and handlers keep ending spans:
        # they only append to the bounded queue.
        end_spans(tel, 20, "during")
        ended_at = time.monotonic()
        settled(pipeline, 40)
        hits = receiver.hits
    lost = 40 - receiver.accepted_spans
    print(f"\n503+Retry-After:1 for 1 s: {lost} of 40 spans lost, {len(hits)} exports, "
          f"retry {hits[1].at - hits[0].at:.2f} s after the 503")  # fmt: skip
    assert lost == 0 and pipeline.failed == 0 and pipeline.dropped == 0
    assert pipeline.exported == 40 and pipeline.retries >= 1
    assert not hits[0].accepted and hits[1].at - hits[0].at >= 0.95  # Retry-After honoured
    assert ended_at < hits[1].at  # ending spans never waited for the retry


def test_spans_keep_queueing_while_a_retry_waits_and_overflow_is_counted(
    handles: list[telemetry.Telemetry],
) -> None:
    with HttpReceiver(failing(Reply(http_status=503, retry_after="1"), exports=1)) as receiver:
        tel = start(
            handles,
            otlp_endpoint=receiver.base,
            otlp_protocol="http/protobuf",
            span_queue_size=30,
            span_batch_size=10,
        )
        pipeline = pipeline_of(tel)
        end_spans(tel, 10, "first")
        wait_until(lambda: len(receiver.hits) == 1, 10, "the refused export")
        end_spans(tel, 40, "meanwhile")  # the queue holds 30 of them
        assert pipeline.dropped == 10
        settled(pipeline, 40)
    assert receiver.accepted_spans == pipeline.exported == 40 and pipeline.failed == 0


def test_grpc_unavailable_then_ok_loses_no_span(handles: list[telemetry.Telemetry]) -> None:
    unavailable = Reply(grpc_code=grpc.StatusCode.UNAVAILABLE)
    with GrpcReceiver(failing(unavailable, exports=2)) as receiver:
        tel = start(handles, otlp_endpoint=receiver.base)
        pipeline = pipeline_of(tel)
        end_spans(tel, 20)
        settled(pipeline, 20)
        hits = receiver.hits
    gaps = [b.at - a.at for a, b in itertools.pairwise(hits)]
    print(f"\nUNAVAILABLE x2 then OK: {20 - receiver.accepted_spans} of 20 lost, backoff gaps "
          + ", ".join(f"{g:.2f} s" for g in gaps))  # fmt: skip
    assert receiver.accepted_spans == pipeline.exported == 20 and pipeline.failed == 0
    assert [h.accepted for h in hits] == [False, False, True] and pipeline.retries == 2
    # Exponential backoff with jitter: 0.5 s then 1 s, each +-20%.
    assert gaps[0] >= 0.39 and gaps[1] >= 0.79


@pytest.mark.parametrize("retry_delay", [1.2, None], ids=["with-RetryInfo", "without-RetryInfo"])
def test_resource_exhausted_is_retried_only_with_retry_info(
    retry_delay: float | None, handles: list[telemetry.Telemetry]
) -> None:
    exhausted = Reply(grpc_code=grpc.StatusCode.RESOURCE_EXHAUSTED, retry_delay=retry_delay)
    with GrpcReceiver(failing(exhausted, exports=1)) as receiver:
        tel = start(handles, otlp_endpoint=receiver.base)
        pipeline = pipeline_of(tel)
        end_spans(tel, 10)
        settled(pipeline, 10)
        hits = receiver.hits
    if retry_delay is None:  # the server cannot recover: dropped at once, counted
        assert len(hits) == 1 and pipeline.failed == 10 and pipeline.retries == 0
    else:  # retried after the server's delay (the client's own backoff would be 0.4-0.6 s)
        assert [h.accepted for h in hits] == [False, True] and pipeline.failed == 0
        assert hits[1].at - hits[0].at >= retry_delay


def test_a_non_retryable_http_400_drops_the_batch_at_once(
    handles: list[telemetry.Telemetry], logs: LogCapture
) -> None:
    with HttpReceiver(lambda n, elapsed: Reply(http_status=400)) as receiver:
        tel = start(handles, otlp_endpoint=receiver.base, otlp_protocol="http/protobuf")
        pipeline = pipeline_of(tel)
        end_spans(tel, 10)
        settled(pipeline, 10)
        lost_at = time.monotonic()
        hits = receiver.hits
    assert len(hits) == 1 and pipeline.failed == 10 and pipeline.retries == 0
    assert lost_at - hits[0].at < 1.0
    (line,) = [e for e in logs.events if e.get("logger") == "telemetry.export"]
    assert "HTTP 400: scripted" in line["event"]


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_retries_never_exceed_the_export_timeout(
    protocol: str, handles: list[telemetry.Telemetry]
) -> None:
    refusing = Reply(http_status=503, grpc_code=grpc.StatusCode.UNAVAILABLE)  # no delay named
    timeout = 1.5
    with receiver_for(protocol, lambda n, elapsed: refusing) as receiver:
        tel = start(handles, otlp_endpoint=receiver.base, otlp_protocol=protocol, export_timeout=timeout)
        pipeline = pipeline_of(tel)
        end_spans(tel, 10)
        settled(pipeline, 10)
        given_up_at = time.monotonic()
        hits = receiver.hits
    print(f"\n{protocol} always refusing, export_timeout {timeout} s: {len(hits)} attempts, "
          f"given up {given_up_at - hits[0].at:.2f} s after the first")  # fmt: skip
    assert pipeline.failed == 10 and len(hits) >= 2 and pipeline.retries == len(hits) - 1
    assert hits[-1].at - hits[0].at < timeout
    assert given_up_at - hits[0].at < timeout + 0.25  # poll interval and scheduling slack


def test_a_retry_after_beyond_the_export_timeout_gives_up_at_once(
    handles: list[telemetry.Telemetry],
) -> None:
    with HttpReceiver(lambda n, elapsed: Reply(http_status=429, retry_after="30")) as receiver:
        tel = start(
            handles, otlp_endpoint=receiver.base, otlp_protocol="http/protobuf", export_timeout=3
        )
        pipeline = pipeline_of(tel)
        end_spans(tel, 5)
        settled(pipeline, 5)
        given_up_at = time.monotonic()
        hits = receiver.hits
    assert len(hits) == 1 and pipeline.failed == 5 and given_up_at - hits[0].at < 1.0
