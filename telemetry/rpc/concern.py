"""The one extension point every interceptor is built from.

A *concern* (tracing, metrics, access logging, deadlines, and later governance) implements the hooks
it needs of ``prepare(info)`` (once per method), ``on_start(state)``, ``on_message(state, received)``
(per streamed message) and ``on_finish(state)``. It may also implement ``for_method(info)``: the
object whose call hooks run for that method's calls (per-method state, such as its metrics), or None
to sit the method out. The chain resolves all this once per method and calls only the hooks there
are (each call on the request path costs ~1-2 us: benchmarks/RESULTS.md, overhead). The four adapters
(sync/aio x server/client) run a :class:`ConcernChain`, so one chain serves all four RPC kinds.
Concerns start in order and finish in reverse, so tracing (first) still has its span current while
logging and metrics finish. A server chain also makes the call current (:data:`current_call`) from
its start to its finish, for code that runs inside the handler (log fields, deadlines).

Hooks are found by name, so the chain checks the names when it is built: an ``on_*`` attribute that
is not a hook (``on_finsh``), a near miss of ``prepare`` or ``for_method``, a hook that is not
callable or does not take the hook's arguments is a :class:`InvalidConcernError` naming it (the object
``for_method`` returns is checked when its method is prepared; a bad one is logged and sits the
method out, since that happens on a call). A concern keeps per-call values in ``state.extras``.

A concern may refuse a call by raising :class:`~telemetry.rpc.call.RejectCall` from ``on_start``.
Any other exception from a concern is a bug in telemetry: it is logged (rate-limited) and the RPC
goes on. Telemetry never fails an RPC.
"""

from __future__ import annotations

import difflib
import inspect
import logging
import threading
import time
from collections.abc import Iterable
from time import perf_counter
from typing import Any, Protocol

from telemetry.rpc.call import CallState, Hook, MethodInfo, RejectCall, RpcKind, current_call

_log = logging.getLogger("telemetry")


class Concern(Protocol):
    """Any object with some of the hooks ``prepare(info)``, ``on_start(state)``,
    ``on_message(state, received)`` and ``on_finish(state)`` (see the module docstring)."""


CALL_HOOKS = {"on_start": 1, "on_message": 2, "on_finish": 1}
"""The hooks a call runs, with the number of arguments each is given."""
METHOD_HOOKS = {"prepare": 1, "for_method": 1}
"""The hooks run once per method, with their argument counts."""
_HOOKS = {**CALL_HOOKS, **METHOD_HOOKS}


class InvalidConcernError(TypeError):
    """A concern whose hooks the chain would misread: an unknown ``on_*`` name, a near miss of a
    hook's name, a hook that is not callable or takes other arguments."""


def check_concern(concern: object, hooks: dict[str, int] = _HOOKS) -> None:
    """Raise :class:`InvalidConcernError` naming what is wrong with ``concern``'s ``hooks``."""
    owner = type(concern).__name__
    for name in dir(concern):
        if name.startswith("_") or name in hooks:
            continue
        if name.startswith("on_") or _near_miss(name, getattr(concern, name, None), hooks):
            close = difflib.get_close_matches(name, hooks, n=1, cutoff=0.6)
            hint = f"; did you mean {close[0]}?" if close else ""
            raise InvalidConcernError(
                f"{owner}.{name} is not a concern hook (hooks: {', '.join(hooks)}){hint}"
            )
    for name, arguments in hooks.items():
        hook = getattr(concern, name, None)
        if hook is None:
            continue
        if not callable(hook):
            raise InvalidConcernError(f"{owner}.{name} is a hook name but not callable")
        if not _takes(hook, arguments):
            raise InvalidConcernError(
                f"{owner}.{name} must take {arguments} positional argument"
                f"{'s' if arguments > 1 else ''} ({_SIGNATURES[name]})"
            )


_checked_parts: set[type] = set()  # one entry per class: bounded by the code, not by callers


def _check_part(part: object) -> None:
    """:func:`check_concern` for the call hooks of a per-method part, once per class (a method
    is prepared on its first call, and callers can name many methods)."""
    if type(part) not in _checked_parts:
        check_concern(part, CALL_HOOKS)
        _checked_parts.add(type(part))


_SIGNATURES = {
    "on_start": "state",
    "on_message": "state, received",
    "on_finish": "state",
    "prepare": "info",
    "for_method": "info",
}


def _near_miss(name: str, value: Any, hooks: dict[str, int]) -> bool:
    """A method named like a hook but not quite (``prepar``, ``for_methd``); a name that extends
    one (``prepared``, ``prepare_all``) is the concern's own."""
    if not callable(value) or any(name.startswith(hook) for hook in hooks):
        return False
    return bool(difflib.get_close_matches(name, hooks, n=1, cutoff=0.85))


def _takes(function: Any, count: int) -> bool:
    """Whether ``function`` accepts ``count`` positional arguments (True when it cannot tell)."""
    try:
        signature = inspect.signature(function)
    except (TypeError, ValueError):  # some builtins have no signature
        return True
    try:
        signature.bind(*range(count))
    except TypeError:
        return False
    return True


class _HookFailureReporter:
    """Logs a failing hook at most once a minute per (concern, phase), so a bug cannot flood logs."""

    def __init__(self, interval: float = 60.0) -> None:
        self._interval = interval
        self._last: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def __call__(self, concern: object, phase: str) -> None:
        key = (type(concern).__name__, phase)
        now = time.monotonic()
        with self._lock:
            last = self._last.get(key)
            if last is not None and now - last < self._interval:
                return
            self._last[key] = now
        _log.exception("telemetry hook %s.%s failed; the RPC continues", key[0], phase)


report_hook_failure = _HookFailureReporter()


class ConcernChain:
    """Runs concerns around a call, guarding every hook. ``serving``: a server's chain, which makes
    the call current while it runs."""

    __slots__ = ("concerns", "serving")

    def __init__(self, concerns: Iterable[Concern], *, serving: bool = False) -> None:
        self.concerns = tuple(concerns)
        self.serving = serving
        for concern in self.concerns:
            check_concern(concern)

    def prepare(self, info: MethodInfo) -> MethodInfo:
        """Prepare every concern for a method and resolve the call hooks its calls run."""
        parts: list[tuple[Concern, Any]] = []
        for concern in self.concerns:
            part: Any = concern
            try:
                if hasattr(concern, "prepare"):
                    concern.prepare(info)
                if hasattr(concern, "for_method"):
                    part = concern.for_method(info)
                    if part is not None and part is not concern:
                        _check_part(part)
            except Exception:
                report_hook_failure(concern, "prepare")
                part = None
            if part is not None:
                parts.append((concern, part))
        info.starters = _hooks(parts, "on_start")
        info.message_hooks = _hooks(parts, "on_message")
        info.finishers = _hooks(reversed(parts), "on_finish")
        return info

    def start(self, state: CallState) -> None:
        """Start every concern; on RejectCall finish the ones already started, then re-raise."""
        if self.serving:
            state.call_token = current_call.set(state)
        for concern, on_start in state.info.starters:
            try:
                on_start(state)
            except RejectCall as reject:
                state.code = reject.code
                state.details = reject.details
                self.finish(state, self._finishers_before(state.info, concern))
                raise
            except Exception:
                report_hook_failure(concern, "on_start")

    def finish(self, state: CallState, hooks: Iterable[Hook] | None = None) -> None:
        """Run the finish hooks (default: all, in reverse order)."""
        state.duration = perf_counter() - state.start
        for concern, on_finish in state.info.finishers if hooks is None else hooks:
            try:
                on_finish(state)
            except Exception:
                report_hook_failure(concern, "on_finish")
        if state.call_token is not None:
            try:  # noqa: SIM105 - contextlib.suppress costs a context manager on every call
                current_call.reset(state.call_token)
            except ValueError:  # finished in another context (a done-callback): nothing to undo
                pass
            state.call_token = None

    def message(self, state: CallState, received: bool) -> None:
        """Count a message; per-message hooks run for streams only (unary counts are final at
        finish, where concerns read ``state.msgs_received`` / ``msgs_sent``). The adapters'
        hottest paths do what this does without the call (unary counts set to 1; stream messages
        counted directly when ``info.message_hooks`` is empty): ``ClientAdapterBase.start_call``,
        ``UnaryCall._await_once``, the aio server's response streams and ``CallEnd.responses``;
        a change here goes there too."""
        if received:
            state.msgs_received += 1
        else:
            state.msgs_sent += 1
        if state.info.kind is RpcKind.UNARY:
            return
        for concern, on_message in state.info.message_hooks:
            try:
                on_message(state, received)
            except Exception:
                report_hook_failure(concern, "on_message")

    def _finishers_before(self, info: MethodInfo, refusing: Concern) -> list[Hook]:
        """The finish hooks of the concerns ahead of ``refusing`` in the chain."""
        position = {id(concern): index for index, concern in enumerate(self.concerns)}
        return [hook for hook in info.finishers if position[id(hook[0])] < position[id(refusing)]]


def _hooks(parts: Iterable[tuple[Concern, Any]], name: str) -> tuple[Hook, ...]:
    return tuple((concern, getattr(part, name)) for concern, part in parts if hasattr(part, name))
