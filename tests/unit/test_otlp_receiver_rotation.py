"""The OTLP receiver's span file is size-capped and rotated like ``RotatingFileHandler`` (issue 17):
``spans.jsonl`` then ``.1`` (newest) .. ``.<backups>``, each under the cap, never a JSON line split
across two files. Spans arrive through the real OTLP exporters, in process and through the CLI the
native stack runs."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from services.stack import NativeStack
from telemetry.testing import OtlpReceiver, free_port
from telemetry.testing.otlp_receiver import (
    DEFAULT_BACKUPS,
    DEFAULT_MAX_BYTES,
    RotatingLineFile,
    parser,
)
from telemetry.tracing.otlp_decoding import ReceivedSpan, json_line

ROOT = Path(__file__).resolve().parents[2]
CAP = 2048


def make_spans(count: int) -> list[ReadableSpan]:
    """``count`` finished SDK spans, each carrying its sequence number in ``seq``."""
    memory = InMemorySpanExporter()
    provider = TracerProvider(resource=Resource.create({"service.name": "rotation-test"}))
    provider.add_span_processor(SimpleSpanProcessor(memory))
    tracer = provider.get_tracer("rotation-test")
    for seq in range(count):
        with tracer.start_as_current_span(f"op-{seq}") as span:
            span.set_attribute("seq", seq)
            span.set_attribute("padding", "x" * 64)
    provider.shutdown()
    return list(memory.get_finished_spans())


def export(exporter: SpanExporter, spans: list[ReadableSpan], batch: int = 7) -> None:
    try:
        for start in range(0, len(spans), batch):
            assert exporter.export(spans[start : start + batch]) is SpanExportResult.SUCCESS
    finally:
        exporter.shutdown()


def span_files(path: Path) -> list[Path]:
    """``path`` and its rotated copies, oldest first."""
    backups = sorted(
        (p for p in path.parent.glob(f"{path.name}.*") if p.suffix[1:].isdigit()),
        key=lambda p: int(p.suffix[1:]),
        reverse=True,
    )
    return [*backups, path] if path.exists() else backups


def check_rotated(path: Path, cap: int, backups: int) -> list[dict[str, Any]]:
    """Every file is under the cap and holds whole JSON lines; the backups are bounded. Returns the
    records, oldest first."""
    files = span_files(path)
    assert [p.name for p in files] == [
        *(f"{path.name}.{n}" for n in range(backups, 0, -1)),
        path.name,
    ]
    contents = [file.read_bytes() for file in files]
    records: list[dict[str, Any]] = []
    for file, data, after in zip(files, contents, [*contents[1:], None], strict=True):
        assert data.endswith(b"\n"), f"{file.name} ends mid-line"
        assert len(data) <= cap, f"{file.name}: {len(data)} bytes > cap {cap}"
        if after:  # rotated only because the next line would not fit
            assert len(data) + len(after.splitlines(keepends=True)[0]) > cap, (
                f"{file.name} rotated early"
            )
        records.extend(json.loads(line) for line in data.decode().splitlines())
    return records


def assert_newest_kept(records: list[dict[str, Any]], total: int) -> None:
    """The kept records are the newest ones, in order, without gaps."""
    seqs = [r["attributes"]["seq"] for r in records]
    assert seqs == list(range(total - len(seqs), total))


@pytest.mark.parametrize("protocol", ["grpc", "http/protobuf"])
def test_receiver_rotates_span_file_exported_over_otlp(protocol: str, tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    total = 60
    with RotatingLineFile(path, max_bytes=CAP, backups=2) as out, OtlpReceiver(out=out) as receiver:
        exporter: SpanExporter = (
            GrpcExporter(endpoint=receiver.grpc_endpoint, insecure=True)
            if protocol == "grpc"
            else HttpExporter(endpoint=receiver.http_endpoint)
        )
        export(exporter, make_spans(total))
        received = receiver.wait_for(lambda spans: len(spans) >= total)
        assert len(received) == total  # the in-memory list is not capped, only the file
        assert out.rotations >= 5
    records = check_rotated(path, CAP, backups=2)
    assert 0 < len(records) < total
    assert_newest_kept(records, total)
    assert {r["service_name"] for r in records} == {"rotation-test"}


def received(seq: int, size: int = 100) -> ReceivedSpan:
    return ReceivedSpan(
        trace_id="ab" * 16,
        span_id=f"{seq:016x}",
        parent_span_id="",
        name=f"op-{seq}",
        kind="INTERNAL",
        service_name="svc",
        attributes={"seq": seq, "padding": "x" * size},
    )


def test_rotation_shifts_backups_and_drops_the_oldest(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    line_size = len(json_line(received(0)).encode())
    per_file = CAP // line_size
    total = per_file * 10 + 1
    with RotatingLineFile(path, max_bytes=CAP, backups=3) as out:
        for seq in range(total):
            out.write(json_line(received(seq)))
            out.flush()
            assert path.stat().st_size <= CAP
            assert len(span_files(path)) <= 4
    records = check_rotated(path, CAP, backups=3)
    assert out.rotations == 10
    assert len(records) == per_file * 3 + 1  # three full backups and the one line after the last
    assert_newest_kept(records, total)


def test_a_line_larger_than_the_cap_is_kept_whole_in_a_file_of_its_own(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    big = json_line(received(1, size=CAP * 2))
    with RotatingLineFile(path, max_bytes=CAP, backups=2) as out:
        out.write(json_line(received(0)))
        out.write(big)
        out.write(json_line(received(2)))
    assert path.with_name("spans.jsonl.1").read_text() == big
    assert [json.loads(line)["attributes"]["seq"] for line in path.read_text().splitlines()] == [2]
    oldest = path.with_name("spans.jsonl.2").read_text()
    assert [json.loads(line)["attributes"]["seq"] for line in oldest.splitlines()] == [0]


def test_existing_file_counts_towards_the_cap(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    path.write_text(json_line(received(0, size=CAP - 200)))
    with RotatingLineFile(path, max_bytes=CAP, backups=1) as out:
        out.write(json_line(received(1)))
    assert [json.loads(line)["attributes"]["seq"] for line in path.read_text().splitlines()] == [1]
    assert path.with_name("spans.jsonl.1").exists()


def test_no_backups_starts_over_and_zero_cap_never_rotates(tmp_path: Path) -> None:
    path = tmp_path / "spans.jsonl"
    with RotatingLineFile(path, max_bytes=CAP, backups=0) as out:
        for seq in range(100):
            out.write(json_line(received(seq)))
    assert span_files(path) == [path]
    assert path.stat().st_size <= CAP
    assert_newest_kept([json.loads(line) for line in path.read_text().splitlines()], 100)

    unbounded = tmp_path / "all.jsonl"
    with RotatingLineFile(unbounded, max_bytes=0, backups=2) as out:
        for seq in range(100):
            out.write(json_line(received(seq)))
    assert span_files(unbounded) == [unbounded]
    assert len(unbounded.read_text().splitlines()) == 100


def test_negative_limits_are_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=">= 0"):
        RotatingLineFile(tmp_path / "spans.jsonl", max_bytes=-1)


@pytest.fixture
def receiver_process(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """The receiver as the native stack runs it, with a 2 KB cap and one backup."""
    grpc_port, http_port = free_port(), free_port()
    path = tmp_path / "spans.jsonl"
    argv = [sys.executable, "-m", "telemetry.testing.otlp_receiver", "--grpc-port", str(grpc_port),
            "--http-port", str(http_port), "--out", str(path), "--max-bytes", str(CAP),
            "--backups", "1"]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, proc.stdout.read() if proc.stdout else ""
            try:
                socket.create_connection(("127.0.0.1", http_port), timeout=0.5).close()
                break
            except OSError:
                assert time.monotonic() < deadline, "receiver did not start"
                time.sleep(0.05)
        yield http_port, path
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=15)
        if proc.stdout is not None:
            proc.stdout.close()


def test_cli_flags_cap_the_out_file(receiver_process: tuple[int, Path]) -> None:
    http_port, path = receiver_process
    total = 40
    export(HttpExporter(endpoint=f"http://127.0.0.1:{http_port}/v1/traces"), make_spans(total))
    # The exporter got its reply after the receiver wrote and flushed the batch.
    records = check_rotated(path, CAP, backups=1)
    assert_newest_kept(records, total)
    assert not path.with_name("spans.jsonl.2").exists()


def test_cli_defaults_and_validation(capsys: pytest.CaptureFixture[str]) -> None:
    args = parser().parse_args(["--out", "spans.jsonl"])
    assert (
        (args.max_bytes, args.backups) == (DEFAULT_MAX_BYTES, DEFAULT_BACKUPS) == (50 * 1024 * 1024, 2)
    )
    args = parser().parse_args(["--out", "spans.jsonl", "--max-bytes", "2048", "--backups", "0"])
    assert (args.max_bytes, args.backups) == (2048, 0)
    with pytest.raises(SystemExit):
        parser().parse_args(["--backups", "-1"])
    assert "must be >= 0" in capsys.readouterr().err


def test_native_stack_starts_the_receiver_capped_and_clears_old_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("spans.jsonl", "spans.jsonl.1", "spans.jsonl.2", "spans.jsonl.7", "spans.jsonl.keep"):
        (tmp_path / name).write_text("{}\n")
    stack = NativeStack(tmp_path, standard_ports=False, loadgen=False, panel=False)
    spawned: list[list[str]] = []
    monkeypatch.setattr(stack, "_spawn", lambda name, argv, **_: spawned.append(argv))
    stack._start_otlp_file()
    [argv] = spawned
    assert argv[argv.index("--out") + 1] == str(tmp_path / "spans.jsonl")
    assert argv[argv.index("--max-bytes") + 1] == str(50 * 1024 * 1024)
    assert argv[argv.index("--backups") + 1] == "2"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["spans.jsonl.keep"]
