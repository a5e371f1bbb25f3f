"""The SLO file: per service (a Prometheus ``job``), an availability and a latency objective.

Validated fail-closed: anything unexpected (an unknown key, a wrong type, a number out of range, a
latency threshold that is no histogram bucket boundary) raises :class:`SloError` naming the field,
e.g. ``slos.payment.availability.objective: must be between 0.9 and 0.99999, got 1.2``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from telemetry.config import DEFAULT_LATENCY_BUCKETS

__all__ = [
    "LATENCY_BUCKETS",
    "MAX_FILE_BYTES",
    "MAX_SERVICES",
    "MAX_OBJECTIVE",
    "MIN_OBJECTIVE",
    "AvailabilitySlo",
    "LatencySlo",
    "ServiceSlo",
    "SloError",
    "Slos",
    "load_slos",
    "parse_slos",
]

# The bounds of a file worth reading: a handful of services, a few lines each.
MAX_FILE_BYTES = 64 * 1024
MAX_SERVICES = 50
# Below 90% there is no budget worth alerting on; above 99.999% a 30-day budget is 26 s, less than
# the alert windows can see.
MIN_OBJECTIVE = 0.9
MAX_OBJECTIVE = 0.99999
# The boundaries both histograms (gRPC handling and HTTP request duration) export: the share of
# calls faster than a threshold is exact only at one of them (the `le` label of a bucket).
LATENCY_BUCKETS: tuple[float, ...] = DEFAULT_LATENCY_BUCKETS
# A job name ends up inside PromQL label matchers: no quotes, no regex characters.
_JOB = re.compile(r"[a-z][a-z0-9_-]{0,62}")

Protocol = Literal["grpc", "http"]
PROTOCOLS: tuple[Protocol, ...] = ("grpc", "http")


class SloError(ValueError):
    """An invalid SLO file; ``field`` is the dotted path of the offending value."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class AvailabilitySlo:
    """Share of calls without a server fault."""

    objective: float


@dataclass(frozen=True)
class LatencySlo:
    """Share of calls that took at most ``threshold_seconds`` (a histogram bucket boundary)."""

    objective: float
    threshold_seconds: float


@dataclass(frozen=True)
class ServiceSlo:
    job: str
    protocol: Protocol  # grpc: grpc_server_* metrics; http: http_server_request_duration_seconds
    availability: AvailabilitySlo | None
    latency: LatencySlo | None


@dataclass(frozen=True)
class Slos:
    services: tuple[ServiceSlo, ...]


def load_slos(path: Path) -> Slos:
    """The SLOs of a YAML file; raises :class:`SloError` and nothing else, whatever the file."""
    field = str(path)
    try:
        with path.open("rb") as stream:
            raw = stream.read(MAX_FILE_BYTES + 1)  # never more than the bound into memory
    except OSError as exc:
        raise SloError(field, f"cannot read: {exc.strerror or exc}") from None
    if len(raw) > MAX_FILE_BYTES:
        raise SloError(field, f"too large: more than {MAX_FILE_BYTES} bytes")
    return parse_slos(_yaml(field, raw))


def _yaml(field: str, raw: bytes) -> Any:
    import yaml  # a declared dependency (the services read their YAML config with it too)

    class _StrictLoader(yaml.SafeLoader):
        """Refuses a key given twice: YAML would silently keep the last one."""

    def mapping(loader: yaml.SafeLoader, node: yaml.MappingNode) -> dict[Any, Any]:
        seen: set[str] = set()
        for key_node, _ in node.value:
            key = loader.construct_object(key_node)
            if isinstance(key, str):
                if key in seen:
                    raise SloError(field, f"duplicate key {key!r} (line {key_node.start_mark.line + 1})")
                seen.add(key)
        return dict(loader.construct_pairs(node))

    _StrictLoader.add_constructor(yaml.resolver.BaseResolver.DEFAULT_MAPPING_TAG, mapping)
    try:
        return yaml.load(raw, Loader=_StrictLoader)  # a SafeLoader: no arbitrary objects
    except SloError:
        raise
    except yaml.YAMLError as exc:
        raise SloError(field, f"not valid YAML: {exc}") from None
    except Exception as exc:  # RecursionError when deeply nested, an unhashable key ...
        raise SloError(field, f"not valid YAML ({type(exc).__name__})") from None


def parse_slos(data: Any) -> Slos:
    """The SLOs of a parsed document ``{"slos": {job: {...}}}``."""
    top = _mapping("(file)", data, {"slos"}, required={"slos"})
    slos = _mapping("slos", top["slos"], None)
    if not slos:
        raise SloError("slos", "must name at least one service")
    if len(slos) > MAX_SERVICES:
        raise SloError("slos", f"at most {MAX_SERVICES} services, got {len(slos)}")
    services = []
    for job, spec in slos.items():
        field = f"slos.{_short(job)}"
        if not isinstance(job, str) or not _JOB.fullmatch(job):
            raise SloError(field, "a service is a Prometheus job name: [a-z][a-z0-9_-], at most 63")
        services.append(_service(field, job, spec))
    return Slos(tuple(services))


def _service(field: str, job: str, spec: Any) -> ServiceSlo:
    keys = {"protocol", "availability", "latency"}
    spec = _mapping(field, spec, keys, required={"protocol"})
    protocol = spec["protocol"]
    if protocol not in PROTOCOLS:
        raise SloError(
            f"{field}.protocol", f"must be one of {', '.join(PROTOCOLS)}, got {_short(protocol)}"
        )
    availability = latency = None
    if "availability" in spec:
        item = _mapping(
            f"{field}.availability", spec["availability"], {"objective"}, required={"objective"}
        )
        availability = AvailabilitySlo(_objective(f"{field}.availability.objective", item["objective"]))
    if "latency" in spec:
        item = _mapping(
            f"{field}.latency",
            spec["latency"],
            {"objective", "threshold_seconds"},
            required={"objective", "threshold_seconds"},
        )
        latency = LatencySlo(
            _objective(f"{field}.latency.objective", item["objective"]),
            _threshold(f"{field}.latency.threshold_seconds", item["threshold_seconds"]),
        )
    if availability is None and latency is None:
        raise SloError(field, "needs an availability or a latency objective (or both)")
    return ServiceSlo(job, protocol, availability, latency)


def _mapping(
    field: str, value: Any, allowed: set[str] | None, required: Collection[str] = ()
) -> dict[str, Any]:
    if not isinstance(value, Mapping):
        raise SloError(field, f"must be a mapping, got {type(value).__name__}")
    if allowed is not None:
        for key in value:
            if key not in allowed:
                raise SloError(
                    f"{field}.{_short(key)}", f"unknown key (expected {', '.join(sorted(allowed))})"
                )
        for key in sorted(set(required) - set(value)):
            raise SloError(f"{field}.{key}", "missing")
    return dict(value)


def _number(field: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise SloError(field, f"must be a number, got {type(value).__name__}")
    if isinstance(value, int) and abs(value) > 10**6:  # float() of a huge int overflows
        raise SloError(field, f"out of range, got {_short(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise SloError(field, f"must be finite, got {number}")
    return number


def _objective(field: str, value: Any) -> float:
    number = _number(field, value)
    if not MIN_OBJECTIVE <= number <= MAX_OBJECTIVE:
        raise SloError(field, f"must be between {MIN_OBJECTIVE} and {MAX_OBJECTIVE}, got {number:g}")
    return number


def _threshold(field: str, value: Any) -> float:
    number = _number(field, value)
    if number not in LATENCY_BUCKETS:
        bounds = ", ".join(f"{b:g}" for b in LATENCY_BUCKETS)
        raise SloError(field, f"must be a histogram bucket boundary ({bounds}), got {number:g}")
    return number


def _short(value: Any) -> str:
    """A value for a message: bounded, whatever the file holds."""
    text = value if isinstance(value, str) else repr(value)
    return text if len(text) <= 40 else f"{text[:40]}..."
