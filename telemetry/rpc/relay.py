"""Telling "my target is broken" from "my target refused on someone else's behalf".

In a chain gateway -> order -> payment, when payment fails, order's breaker on payment opens and
order answers its callers with errors at once. If the gateway's breaker on order counted those
errors, it would open too, and its half-open probes would keep failing for as long as order's
breaker stays open, each failure doubling the gateway's open wait: the chain would recover long
after payment did. Envoy marks what it refused for load (``x-envoy-overloaded``) so an Envoy
upstream does not count or retry it; Finagle flags such failures ``Rejected``. Here:

* A call made while serving another (the *served* call) that governance refuses -- locally (the
  caller's breaker, throttle or bulkhead, no instance to call) or at the target (its rate limit,
  adaptive limiter, shedding), or that comes back already carrying this mark -- notes the refusal
  on the served call (:func:`note_refusal`).
* When the served call then fails, the server adapter adds the trailing metadata
  ``x-governance-relayed: <mechanism>`` (:func:`relay_metadata`).
* A breaker reads it (:func:`relayed`) and treats the failure as saying nothing of its target's
  health: not a failure, and a half-open probe that got it frees its permit instead of reopening
  (so the open wait does not grow). Retries do not try another instance for it either: the other
  instances sit in front of the same refusing dependency.

The mark is a hint from a trusted peer inside the mesh; a target that lies with it only stops its
own callers' breakers from protecting them, which it could do anyway by answering slowly.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TypeAlias

from telemetry.rpc.call import current_call

# A call's metadata: (key, value) pairs (a tuple, a list, a grpc.aio.Metadata).
MetadataItems: TypeAlias = Iterable[tuple[str, str | bytes]]

__all__ = [
    "DECISION_KEY",
    "NO_RETRY",
    "RELAYED_KEY",
    "RETRY_PUSHBACK_KEY",
    "note_refusal",
    "parse_pushback",
    "refusal",
    "relay_metadata",
    "relayed",
    "retry_hints",
]

DECISION_KEY = "x-governance"  # trailing metadata naming the mechanism that refused or answered
RELAYED_KEY = "x-governance-relayed"  # this failure relays a refusal from further down the chain
RETRY_PUSHBACK_KEY = "grpc-retry-pushback-ms"  # gRFC A6: the server's word on retrying
NO_RETRY = -1.0
"""What :func:`parse_pushback` returns for a pushback that forbids retrying."""
_REJECTED = "rejected:"
_MAX_PUSHBACK_MS = 3_600_000  # a peer's value: an hour is already "do not retry" in practice
_MAX_MECHANISM = 32  # the value comes from a peer: keep what we copy onward short


def _text(value: object) -> str:
    text = value.decode("utf-8", "replace") if isinstance(value, bytes) else str(value)
    return text[:_MAX_MECHANISM]


def relayed(trailing_metadata: MetadataItems | None) -> str | None:
    """The mechanism named by ``x-governance-relayed`` in a failed call's trailing metadata."""
    for key, value in trailing_metadata or ():
        if key == RELAYED_KEY:
            return _text(value) or "governance"
    return None


def refusal(trailing_metadata: MetadataItems | None) -> str | None:
    """The governance mechanism that refused a failed call: relayed from further down, or the
    target's own (``x-governance: rejected:<mechanism>``); None when governance did not refuse."""
    found = None
    for key, value in trailing_metadata or ():
        if key == RELAYED_KEY:
            return _text(value) or "governance"
        if key == DECISION_KEY:
            text = _text(value)
            if text.startswith(_REJECTED):
                found = text[len(_REJECTED) :] or "governance"
    return found


def note_refusal(mechanism: str) -> None:
    """Record on the call being served (if any) that a call it made was refused by governance."""
    served = current_call.get()
    if served is not None and served.relayed is None:
        served.relayed = mechanism


def relay_metadata(
    mechanism: str, trailing_metadata: MetadataItems | None
) -> tuple[tuple[str, str | bytes], ...]:
    """``trailing_metadata`` with the relay mark added (once)."""
    kept = tuple(item for item in trailing_metadata or () if item[0] != RELAYED_KEY)
    return (*kept, (RELAYED_KEY, mechanism))


def parse_pushback(value: object) -> float | None:
    """``grpc-retry-pushback-ms`` (gRFC A6) in seconds: None when absent, :data:`NO_RETRY` when
    the server says not to retry (a negative or non-integer value)."""
    if value is None:
        return None
    text = value.decode("ascii", "replace") if isinstance(value, bytes) else str(value)
    text = text.strip()
    # ASCII digits only: no sign, fraction or exponent (and no "²", which isdigit() accepts).
    if not (text.isascii() and text.isdigit()) or len(text) > 10:
        return NO_RETRY
    milliseconds = int(text)
    return NO_RETRY if milliseconds > _MAX_PUSHBACK_MS else milliseconds / 1000.0


def retry_hints(trailing_metadata: MetadataItems | None) -> tuple[float | None, bool]:
    """(the server's pushback in seconds, or None; whether the failure relays a refusal)."""
    pushback = None
    relays = False
    for key, value in trailing_metadata or ():
        if key == RETRY_PUSHBACK_KEY:
            pushback = parse_pushback(value)
        elif key == RELAYED_KEY:
            relays = True
    return pushback, relays
