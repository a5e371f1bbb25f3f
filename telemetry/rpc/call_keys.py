"""The value a keyed limit is keyed by, read from a call: its peer, a metadata entry or baggage."""

from __future__ import annotations

import hashlib

from opentelemetry import baggage
from opentelemetry.baggage.propagation import W3CBaggagePropagator

from telemetry.rpc.call import CallState
from telemetry.rpc.peer import PEER_HOST_PORT

__all__ = ["MAX_KEY_CHARS", "call_key"]

MAX_KEY_CHARS = 128


def call_key(state: CallState, source: str) -> str:
    """The value a keyed limit is keyed by: ``peer`` (client host), ``metadata:<name>`` or
    ``baggage:<name>``; "" when the call does not carry it. A caller controls it, so a long one
    is replaced by its digest: the key table is bounded in bytes as well as in entries."""
    key = _call_key(state, source)
    if len(key) > MAX_KEY_CHARS:
        return "sha256:" + hashlib.sha256(key.encode("utf-8", "replace")).hexdigest()
    return key


def _call_key(state: CallState, source: str) -> str:
    if source == "peer":
        return PEER_HOST_PORT[state.peer][0]
    kind, _, name = source.partition(":")
    if kind == "metadata":
        for key, value in state.metadata:
            if key == name:
                return value if isinstance(value, str) else value.decode("utf-8", "replace")
        return ""
    value = baggage.get_baggage(name)
    if value is None:
        value = _baggage_from_metadata(state, name)
    return str(value) if value is not None else ""


_BAGGAGE = W3CBaggagePropagator()


def _baggage_from_metadata(state: CallState, name: str) -> object | None:
    """Baggage straight from the header, for chains without tracing (which would extract it)."""
    for key, header in state.metadata:
        if key == "baggage":
            return baggage.get_baggage(name, _BAGGAGE.extract({"baggage": str(header)}))
    return None
