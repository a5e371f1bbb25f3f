"""The OpenTelemetry context operations every traced call makes, without the API's layers.

``opentelemetry.context.attach`` calls the runtime context's ``attach``, which sets a ContextVar;
``set_span_in_context`` calls ``set_value``, which copies the context. Each layer is a Python call,
and on the cold interpreter of a live server each costs about a microsecond (benchmarks/RESULTS.md,
overhead). With the default runtime context (ContextVars) these functions go to the ContextVar
directly; with any other (``OTEL_PYTHON_CONTEXT``) they are the API's own. The span and baggage
keys are the API's private ``_SPAN_KEY`` and ``_BAGGAGE_KEY``; tests/unit/test_fastcontext.py checks
all of it against the API.
"""

from __future__ import annotations

from collections.abc import Callable
from contextvars import Token
from typing import Any

from opentelemetry import context as _api
from opentelemetry.baggage import _BAGGAGE_KEY
from opentelemetry.context import Context
from opentelemetry.context.contextvars_context import ContextVarsRuntimeContext
from opentelemetry.trace import INVALID_SPAN, Span
from opentelemetry.trace.propagation import _SPAN_KEY

__all__ = [
    "BAGGAGE_KEY", "SPAN_KEY", "attach", "current_span", "detach", "get_current", "reset",
    "with_span",
]  # fmt: skip

SPAN_KEY = _SPAN_KEY  # where the API keeps the current span in a Context
BAGGAGE_KEY = _BAGGAGE_KEY  # and the baggage (a dict)

_runtime = getattr(_api, "_RUNTIME_CONTEXT", None)
_var = None
if type(_runtime) is ContextVarsRuntimeContext:
    _var = getattr(_runtime, "_current_context", None)

get_current: Callable[[], Context]
attach: Callable[[Context], Token[Context]]
reset: Callable[[Token[Context]], None]
"""``detach`` without the guard: raises where ``detach`` would log (a token of another context)."""

if _var is not None:
    get_current = _var.get
    attach = _var.set
    reset = _var.reset

    def detach(token: Token[Context]) -> None:
        try:
            reset(token)
        except Exception:  # the API's path, which logs the failure as the API does
            _api.detach(token)

else:  # another runtime context: the API
    get_current = _api.get_current
    attach = _api.attach
    detach = reset = _api.detach


def with_span(span: Span, context: Context) -> Context:
    """``trace.set_span_in_context(span, context)``."""
    return Context({**context, SPAN_KEY: span})


def current_span(context: Context) -> Any:
    """``trace.get_current_span(context)``."""
    span = context.get(SPAN_KEY)
    # None first: isinstance with Span, an ABC, runs ABCMeta's Python __instancecheck__.
    return span if span is not None and isinstance(span, Span) else INVALID_SPAN
