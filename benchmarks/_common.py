"""Helpers the benchmarks share: stubs, free ports, child processes, a span sink, and output."""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import select
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


def stubs_dir() -> Path:
    """Compile benchmarks/protos once per process tree (children inherit the directory)."""
    existing = os.environ.get("BENCH_STUBS")
    if existing:
        sys.path.insert(0, existing)
        return Path(existing)
    from telemetry.testing.protoc import compile_protos

    made = Path(tempfile.mkdtemp(prefix="bench-stubs-"))
    # Removed when the process that made it exits (its children inherit it and exit first).
    atexit.register(shutil.rmtree, made, ignore_errors=True)
    out = compile_protos(HERE / "protos", made)
    os.environ["BENCH_STUBS"] = str(out)
    return out


def spawn(
    args: Sequence[str], ready_line: str | None = None, timeout: float = 60, stdin: bool = False
) -> subprocess.Popen[str]:
    """Start a child python process; wait (bounded) for ``ready_line`` on its stdout."""
    proc = subprocess.Popen(
        [sys.executable, *args],
        stdout=subprocess.PIPE,
        stdin=subprocess.PIPE if stdin else None,
        text=True,
        cwd=ROOT,
        env=os.environ.copy(),
    )
    if ready_line is None:
        return proc
    assert proc.stdout is not None
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        readable, _, _ = select.select([proc.stdout], [], [], max(0.0, deadline - time.monotonic()))
        if not readable:
            break
        line = proc.stdout.readline()
        if not line:  # the child exited
            break
        if line.strip() == ready_line:
            return proc
    proc.kill()
    raise RuntimeError(f"{args} did not print {ready_line!r} within {timeout}s")


def stop(proc: subprocess.Popen[str]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(10)


class SpanSink:
    """An OTLP trace endpoint that accepts and discards batches without decoding them, so the
    collector side costs as little CPU as possible on a 2-core machine."""

    def __init__(self) -> None:
        self.batches = 0
        self.server = grpc.server(futures.ThreadPoolExecutor(2))

        def export(request: bytes, context: Any) -> bytes:
            self.batches += 1
            return b""  # an empty ExportTraceServiceResponse

        # bytes in, bytes out
        handler: grpc.RpcMethodHandler[bytes, bytes] = grpc.unary_unary_rpc_method_handler(export)
        self.server.add_generic_rpc_handlers(
            (
                grpc.method_handlers_generic_handler(
                    "opentelemetry.proto.collector.trace.v1.TraceService", {"Export": handler}
                ),
            )
        )
        self.port = self.server.add_insecure_port("127.0.0.1:0")
        self.server.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"


def wait_true(condition: Any, timeout: float, what: str) -> float:
    """Poll ``condition`` every millisecond; the monotonic time it became true (RuntimeError
    naming ``what`` after ``timeout`` seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return time.monotonic()
        time.sleep(0.001)
    raise RuntimeError(f"{what} did not happen within {timeout}s")


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else 0.0


def print_table(title: str, header: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    widths = [max(len(str(x)) for x in col) for col in zip(header, *rows, strict=True)]
    print(f"\n{title}")
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for row in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


def emit_json(figures: dict[str, Any]) -> None:
    print(json.dumps(figures, sort_keys=True))


def command_output(args: list[str]) -> str | None:
    """A short command's stdout (the commit, nproc), None when it fails."""
    try:
        out = subprocess.run(args, capture_output=True, text=True, timeout=10, cwd=ROOT, check=True)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


@contextlib.contextmanager
def sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM unwinds like Ctrl-C, so every ``finally`` stops what it started."""

    def interrupt(*_: object) -> None:
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, previous)
