"""Warnings caused by bad inbound headers, rate-limited and shortened.

OpenTelemetry's W3C codecs warn once per malformed ``traceparent``, ``tracestate`` or ``baggage``
header (once per list-member for baggage, up to 180 a header), quoting the offending text: the whole
header when a baggage header is over its 8 KB limit. Whoever can send a request could thus write
lines at request rate, kilobytes each, into our logs. As for governance decision lines
(:mod:`telemetry.governance.observe`), each kind of warning is logged at most once per
``interval`` with how many were folded since the previous line (``folded``), and text quoted from
the request is cut to ``max_chars``.

A kind is the logger and the warning's format string (a constant of the SDK, never the header), and
the table of kinds is bounded: past ``max_kinds`` (say, some code logging f-strings of header text),
records share one kind per logger. The filter sits on the SDK's loggers (:data:`HEADER_LOGGERS`), so it
acts whatever handlers the application configured.

It belongs to tracing, not to ``telemetry.logging``: the propagation module installs it, and the
logging package (its access log reads the call's span) sits above tracing.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

# The SDK modules that warn at the rate of requests: those parsing inbound trace-context and
# baggage headers, and the attribute container (a warning per attribute dropped past the span
# limit, or per value of a type it refuses: a handler copying headers onto a span provokes both).
HEADER_LOGGERS = (
    "opentelemetry.baggage.propagation",  # W3CBaggagePropagator.extract
    "opentelemetry.trace.propagation.tracecontext",  # TraceContextTextMapPropagator.extract
    "opentelemetry.trace.span",  # TraceState.from_header (the SDK propagator's tracestate parsing)
    "opentelemetry.attributes",  # BoundedAttributes: "Attributes dict is full", invalid values
)
MAX_QUOTED_CHARS = 128
_MAX_MESSAGE_CHARS = 512  # a format string this long is not a constant: cut the whole message


def shorten(value: Any, max_chars: int = MAX_QUOTED_CHARS) -> Any:
    """A string longer than ``max_chars`` cut there, saying how long it was; anything else as is."""
    if isinstance(value, str) and len(value) > max_chars:
        return f"{value[:max_chars]}...({len(value)} chars)"
    return value


class HeaderWarningThrottle(logging.Filter):
    """At most one record per kind per ``interval`` passes, with ``folded``; quoted text cut."""

    def __init__(
        self,
        interval: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        max_chars: int = MAX_QUOTED_CHARS,
        max_kinds: int = 64,
    ) -> None:
        super().__init__()
        self.interval = interval
        self.clock = clock
        self.max_chars = max_chars
        self.max_kinds = max_kinds
        self._lock = threading.Lock()
        self._kinds: dict[tuple[str, str], tuple[float, int]] = {}

    def kinds(self) -> int:
        with self._lock:
            return len(self._kinds)

    def filter(self, record: logging.LogRecord) -> bool:
        kind = (record.name, record.msg if isinstance(record.msg, str) else "")
        now = self.clock()
        with self._lock:
            if kind not in self._kinds and len(self._kinds) >= self.max_kinds:
                kind = (record.name, "")  # the overflow kind (loggers are few: still bounded)
            last, folded = self._kinds.get(kind, (-math.inf, 0))
            if now - last < self.interval:
                self._kinds[kind] = (last, folded + 1)
                return False
            self._kinds[kind] = (now, 0)
        record.__dict__["folded"] = folded  # same warnings not logged since the previous line
        # Never raise: a filter's exception would reach the header parsing, and so the request.
        try:
            self._shorten(record)
        except Exception:
            record.msg, record.args = "bad inbound header (warning not formattable)", ()
        return True

    def _shorten(self, record: logging.LogRecord) -> None:
        args = record.args
        if isinstance(args, tuple):
            record.args = tuple(shorten(arg, self.max_chars) for arg in args)
        elif isinstance(args, Mapping):
            record.args = {key: shorten(arg, self.max_chars) for key, arg in args.items()}
        if isinstance(record.msg, str) and len(record.msg) > _MAX_MESSAGE_CHARS:
            record.msg, record.args = shorten(record.getMessage(), _MAX_MESSAGE_CHARS), ()


THROTTLE = HeaderWarningThrottle()


def install(loggers: Iterable[str] = HEADER_LOGGERS) -> HeaderWarningThrottle:
    """Put :data:`THROTTLE` on ``loggers`` (idempotent)."""
    for name in loggers:
        logging.getLogger(name).addFilter(THROTTLE)
    return THROTTLE
