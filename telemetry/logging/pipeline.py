"""One process-wide log pipeline for structlog, stdlib ``logging`` and the access-log concern.

Every event, whatever its source, gets the same fields (timestamp, level, service, and ``trace_id`` /
``span_id`` when a span is current), has sensitive keys redacted (by pattern, nested values too: see
:mod:`telemetry.logging.redaction`), and is handed to the sinks: the non-blocking writer in
production, captures in tests. Logging is process-global by nature (structlog and the root logger
are), so this module owns that global state and nothing else does.
"""

from __future__ import annotations

import contextlib
import logging
import sys
import time
import traceback
from collections.abc import Callable, Iterable, MutableMapping
from typing import Any, Protocol, TextIO

import structlog
from opentelemetry import trace

from telemetry.config_defaults import DEFAULT_SENSITIVE_KEYS
from telemetry.logging.redaction import Redactor, redactor_for
from telemetry.logging.render import render_console, render_json
from telemetry.logging.writer import AsyncLineWriter, DeferredEvent
from telemetry.rpc.call import current_call

Sink = Callable[[dict[str, Any]], None]

LEVELS = {"debug": 10, "info": 20, "warning": 30, "error": 40, "critical": 50}


class LogPipeline:
    def __init__(self) -> None:
        self._sinks: tuple[Sink, ...] = ()
        self._writer: AsyncLineWriter | None = None
        self.default_service = "unknown_service"
        self.redactor: Redactor = redactor_for(frozenset(DEFAULT_SENSITIVE_KEYS))
        self.min_level = LEVELS["info"]
        self.emit_later: Callable[[DeferredEvent], None] = self._emit_built
        """Emit a :class:`DeferredEvent`: when the writer is the only sink, it is queued as is and
        built on the writer thread (the request path only enqueues it); otherwise it is built now
        for every sink. Chosen whenever the sinks change, so the access log's call is one call."""

    @property
    def sinks(self) -> tuple[Sink, ...]:
        return self._sinks

    @sinks.setter
    def sinks(self, sinks: tuple[Sink, ...]) -> None:
        self._sinks = sinks
        self._route()

    @property
    def writer(self) -> AsyncLineWriter | None:
        return self._writer

    @writer.setter
    def writer(self, writer: AsyncLineWriter | None) -> None:
        self._writer = writer
        self._route()

    def _route(self) -> None:
        writer = self._writer
        if writer is not None and self._sinks == (writer,):
            self.emit_later = writer.put_deferred
        else:
            self.emit_later = self._emit_built

    def enabled_for(self, level: str) -> bool:
        return LEVELS.get(level, 20) >= self.min_level

    @property
    def sensitive(self) -> frozenset[str]:
        """The sensitive-key patterns in force (normalized); setting them swaps the redactor."""
        return self.redactor.patterns

    @sensitive.setter
    def sensitive(self, patterns: frozenset[str]) -> None:
        self.redactor = redactor_for(frozenset(patterns))

    def redact(self, event: dict[str, Any]) -> dict[str, Any]:
        # Through self.redactor on each call: the writer holds this bound method across changes.
        return self.redactor.redact(event)

    def emit(self, event: dict[str, Any]) -> None:
        """Redact and hand ``event`` to every sink. Never raises."""
        self.redact(event)
        for sink in self._sinks:
            with contextlib.suppress(Exception):  # a broken sink must not break the caller
                sink(event)

    def _emit_built(self, deferred: DeferredEvent) -> None:
        self.emit(deferred.event())

    def add_sink(self, sink: Sink) -> None:
        self.sinks = (*self._sinks, sink)

    def remove_sink(self, sink: Sink) -> None:
        self.sinks = tuple(s for s in self._sinks if s is not sink)


PIPELINE = LogPipeline()


def add_context_fields(event: dict[str, Any]) -> dict[str, Any]:
    """Timestamp, service and the current span's ids (what every line carries)."""
    event.setdefault("timestamp", time.time())
    if "service" not in event:
        call = current_call.get()
        event["service"] = (call.info.owner if call is not None else None) or PIPELINE.default_service
    if "trace_id" not in event:
        ctx = trace.get_current_span().get_span_context()
        if ctx.is_valid:
            event["trace_id"] = format(ctx.trace_id, "032x")
            event["span_id"] = format(ctx.span_id, "016x")
    return event


def _structlog_context(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    return add_context_fields(dict(event) if not isinstance(event, dict) else event)


def _structlog_to_pipeline(_logger: Any, _name: str, event: MutableMapping[str, Any]) -> dict[str, Any]:
    PIPELINE.emit(dict(event) if not isinstance(event, dict) else event)
    raise structlog.DropEvent


# What every LogRecord carries; anything else came from ``extra=`` and joins the line.
_RECORD_ATTRIBUTES = frozenset(
    logging.LogRecord("", 0, "", 0, "", (), None).__dict__.keys() | {"message", "asctime", "taskName"}
)
_PLAIN_RECORD_SIZE = len(logging.LogRecord("", 0, "", 0, "", (), None).__dict__)


class _StdlibHandler(logging.Handler):
    """Routes stdlib records (grpc, libraries) into the pipeline, correlated like structlog lines."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            event: dict[str, Any] = {
                "event": record.getMessage(),
                "level": record.levelname.lower(),
                "logger": record.name,
                "timestamp": record.created,
            }
            if record.exc_info and record.exc_info[1] is not None:
                event["exception"] = "".join(traceback.format_exception(*record.exc_info))
            if len(record.__dict__) > _PLAIN_RECORD_SIZE:  # fields passed with extra={...}
                for key, value in record.__dict__.items():
                    if key not in _RECORD_ATTRIBUTES:
                        event.setdefault(key, value)
            PIPELINE.emit(add_context_fields(event))
        except Exception:
            self.handleError(record)


_stdlib_handler: _StdlibHandler | None = None


def configure(
    *,
    service_name: str,
    level: str = "info",
    fmt: str = "json",
    stream: TextIO | None = None,
    queue_size: int = 10_000,
    capture_stdlib: bool = True,
    sensitive_keys: Iterable[str] = DEFAULT_SENSITIVE_KEYS,
) -> LogPipeline:
    """(Re)configure the process's logging. Idempotent; replaces the previous writer."""
    global _stdlib_handler, _generation
    PIPELINE.default_service = service_name
    PIPELINE.min_level = LEVELS[level]
    PIPELINE.sensitive = frozenset(sensitive_keys)
    old_writer = PIPELINE.writer
    writer = AsyncLineWriter(
        stream if stream is not None else sys.stdout,
        render_json if fmt == "json" else render_console,
        queue_size,
        prepare=PIPELINE.redact,
    )
    if _exporter is not None:
        writer.tap = _exporter.add_event
    PIPELINE.writer = writer
    PIPELINE.sinks = (*(s for s in PIPELINE.sinks if s is not old_writer), writer)
    if old_writer is not None:
        old_writer.close(timeout=1.0)

    structlog.configure(
        processors=[
            structlog.contextvars.merge_contextvars,
            structlog.processors.add_log_level,
            _structlog_context,
            structlog.processors.format_exc_info,
            _structlog_to_pipeline,
        ],
        wrapper_class=structlog.make_filtering_bound_logger(LEVELS[level]),
        logger_factory=structlog.ReturnLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    _generation += 1
    root = logging.getLogger()
    if _stdlib_handler is not None:
        root.removeHandler(_stdlib_handler)
        _stdlib_handler = None
    if capture_stdlib:
        for handler in list(root.handlers):
            root.removeHandler(handler)
        _stdlib_handler = _StdlibHandler()
        root.addHandler(_stdlib_handler)
        root.setLevel(LEVELS[level])
    return PIPELINE


def flush(timeout: float = 5.0) -> bool:
    """Write what is queued, then export it (when log records go over OTLP too)."""
    writer = PIPELINE.writer
    deadline = time.monotonic() + timeout
    written = True if writer is None else writer.flush(timeout)
    exporter = _exporter
    exported = exporter.force_flush(max(0.0, deadline - time.monotonic())) if exporter else True
    return written and exported


class LogExporter(Protocol):
    """What takes log events over to another backend (:class:`telemetry.logging.otlp_logs.
    LogExportPipeline`): a non-blocking ``add_event``, ``force_flush`` and ``shutdown``."""

    def add_event(self, event: dict[str, Any]) -> None: ...

    def force_flush(self, timeout: float = 5.0) -> bool: ...

    def shutdown(self, timeout: float = 5.0) -> None: ...


_exporter: LogExporter | None = None


def export_to(exporter: LogExporter | None, timeout: float = 1.0) -> None:
    """Hand every event the writer writes to ``exporter`` too (None: stop); the previous one is
    flushed and shut down within ``timeout``."""
    global _exporter
    previous, _exporter = _exporter, exporter
    writer = PIPELINE.writer
    if writer is not None:
        writer.tap = None if exporter is None else exporter.add_event
    if previous is not None and previous is not exporter:
        previous.shutdown(timeout)


class _LazyLogger:
    """Binds its initial fields on first use after each (re)configuration, so a logger created at
    import time, before :func:`telemetry.init`, still follows the configuration made later."""

    __slots__ = ("_bound", "_generation", "_initial")

    def __init__(self, initial: dict[str, Any]) -> None:
        self._initial = initial
        self._bound: Any = None
        self._generation = -1

    def __getattr__(self, name: str) -> Any:
        if self._generation != _generation:
            self._bound = structlog.get_logger().bind(**self._initial)
            self._generation = _generation
        return getattr(self._bound, name)


_generation = 0


def get_logger(name: str | None = None, **initial: Any) -> Any:
    """A structlog logger whose lines carry service, trace_id and span_id (safe at import time)."""
    if name:
        initial["logger"] = name
    return _LazyLogger(initial)


def add_log_fields(**fields: Any) -> bool:
    """Add fields to the access line of the call being served. False when no call is being served."""
    call = current_call.get()
    if call is None:
        return False
    if call.fields is None:
        call.fields = {}
    call.fields.update(fields)
    return True
