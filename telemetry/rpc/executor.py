"""A thread pool that knows how long each task waited for a worker.

A sync grpc server hands every call to its thread pool from its poller thread, as the call
arrives; when the workers are busy the call waits in the pool's queue, where no interceptor can see
it. :class:`QueueTimedExecutor` stamps each task as it is submitted, so the handler thread can ask
:func:`queue_delay` how long the call it is running waited: the signal queue-delay shedding
(:mod:`telemetry.governance.codel`) needs. The cost is one closure and one clock read per call.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any, ParamSpec, TypeVar

__all__ = ["QueueTimedExecutor", "queue_delay"]

_P = ParamSpec("_P")
_T = TypeVar("_T")

_current = threading.local()


class QueueTimedExecutor(ThreadPoolExecutor):
    """``ThreadPoolExecutor`` whose tasks can read their own queueing time (:func:`queue_delay`)."""

    def submit(self, fn: Callable[_P, _T], /, *args: _P.args, **kwargs: _P.kwargs) -> Future[_T]:
        return super().submit(_run_stamped, time.monotonic(), fn, args, kwargs)


def _run_stamped(submitted: float, fn: Callable[..., Any], args: Any, kwargs: Any) -> Any:
    _current.submitted = submitted
    try:
        return fn(*args, **kwargs)
    finally:
        _current.submitted = None


def queue_delay() -> float | None:
    """Seconds since the task running on this thread was submitted to a
    :class:`QueueTimedExecutor`: its wait for a worker, then for the GIL, up to now. None outside
    such a task (an aio server, a plain pool)."""
    submitted = getattr(_current, "submitted", None)
    if submitted is None:
        return None
    return time.monotonic() - float(submitted)
