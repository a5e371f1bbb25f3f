"""What the panel asks Prometheus: the PromQL of every live figure, and the queries themselves.

Only the package's own metric names are used (go-grpc-prometheus names, ``governance_*``,
``process_*``, ``http_server_*`` from ``tel.asgi``), never a deployment's recording rules, so
the panel works against anyone's Prometheus that scrapes services using the package. A service
is the value of one label (``job`` by default, see ``PanelSettings.service_label``).
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass

from telemetry.panel.prometheus import Prometheus, Sample, Series
from telemetry.panel.thresholds import LoadPoint

__all__ = ["LiveQueries", "SERVER_FAULT_CODES"]

SERVER_FAULT_CODES = "Unknown|DeadlineExceeded|Unimplemented|Internal|Unavailable|DataLoss"
"""Codes that count as the server's errors (client mistakes and limits do not)."""

_BREAKER_STATES = {0: "closed", 1: "half-open", 2: "open", 3: "forced open", 4: "forced closed"}


@dataclass(frozen=True, slots=True)
class Breaker:
    instance: str
    target: str
    method: str
    state: str


class LiveQueries:
    """The panel's queries for one label naming services (``job`` by default)."""

    def __init__(self, prometheus: Prometheus, *, service_label: str = "job") -> None:
        self.prometheus = prometheus
        self.label = service_label

    # -- PromQL ---------------------------------------------------------------------------------

    def _sel(self, service: str, extra: str = "") -> str:
        quoted = service.replace("\\", "\\\\").replace('"', '\\"')
        return f'{{{self.label}="{quoted}"{"," + extra if extra else ""}}}'

    def request_rate(self, service: str, window: str = "1m") -> str:
        """Calls handled per second (gRPC, else HTTP for an HTTP entry point), over ``window``."""
        return (
            f"sum(rate(grpc_server_handled_total{self._sel(service)}[{window}]))"
            f" or sum(rate(http_server_request_duration_seconds_count{self._sel(service)}[{window}]))"
        )

    def goodput_rate(self, service: str, window: str = "1m") -> str:
        """Calls per second answered with work done: neither a server fault nor shed by a limit
        (gRPC RESOURCE_EXHAUSTED, HTTP 429), whose quick answers would otherwise count as
        throughput and move a capacity curve's C past what the service can serve."""
        grpc_served = self._sel(service, f'grpc_code!~"{SERVER_FAULT_CODES}|ResourceExhausted"')
        http_served = self._sel(service, 'http_response_status_code!~"5..|429"')
        return (
            f"sum(rate(grpc_server_handled_total{grpc_served}[{window}]))"
            f" or sum(rate(http_server_request_duration_seconds_count{http_served}[{window}]))"
        )

    def error_ratio(self, service: str, window: str = "1m") -> str:
        grpc_errors = self._sel(service, f'grpc_code=~"{SERVER_FAULT_CODES}"')
        http_errors = self._sel(service, 'http_response_status_code=~"5.."')
        return (
            f"(sum(rate(grpc_server_handled_total{grpc_errors}[{window}])) or vector(0))"
            f" / sum(rate(grpc_server_handled_total{self._sel(service)}[{window}]))"
            f" or (sum(rate(http_server_request_duration_seconds_count{http_errors}[{window}]))"
            f" or vector(0))"
            f" / sum(rate(http_server_request_duration_seconds_count{self._sel(service)}[{window}]))"
        )

    def latency(self, service: str, quantile: float, window: str = "1m") -> str:
        return (
            f"histogram_quantile({quantile}, sum by (le) "
            f"(rate(grpc_server_handling_seconds_bucket{self._sel(service)}[{window}])))"
            f" or histogram_quantile({quantile}, sum by (le) "
            f"(rate(http_server_request_duration_seconds_bucket{self._sel(service)}[{window}])))"
        )

    def cpu(self, service: str, window: str = "1m") -> str:
        """CPU of each instance, as a fraction of one core."""
        return f"rate(process_cpu_seconds_total{self._sel(service)}[{window}])"

    # -- instant figures ------------------------------------------------------------------------

    def overview(self, services: Iterable[str]) -> dict[str, dict[str, float]]:
        """service -> {rps, error_ratio, p99, cpu, open_breakers, rejected}: one query per figure
        for all services together."""
        label = self.label
        names = sorted(services)
        if not names:
            return {}
        regex = "|".join(_regex_escape(n) for n in names)
        sel = f'{{{label}=~"{regex}"}}'
        errors = f'{{{label}=~"{regex}",grpc_code=~"{SERVER_FAULT_CODES}"}}'
        http_errors = f'{{{label}=~"{regex}",http_response_status_code=~"5.."}}'
        figures = {
            "rps": f"sum by ({label}) (rate(grpc_server_handled_total{sel}[1m]))"
            f" or sum by ({label}) (rate(http_server_request_duration_seconds_count{sel}[1m]))",
            "error_ratio": f"(sum by ({label}) (rate(grpc_server_handled_total{errors}[1m]))"
            f" or sum by ({label}) (rate(grpc_server_handled_total{sel}[1m])) * 0)"
            f" / sum by ({label}) (rate(grpc_server_handled_total{sel}[1m]))"
            f" or (sum by ({label}) (rate(http_server_request_duration_seconds_count{http_errors}[1m]))"
            f" or sum by ({label}) (rate(http_server_request_duration_seconds_count{sel}[1m])) * 0)"
            f" / sum by ({label}) (rate(http_server_request_duration_seconds_count{sel}[1m]))",
            "p99": f"histogram_quantile(0.99, sum by ({label}, le)"
            f" (rate(grpc_server_handling_seconds_bucket{sel}[1m])))"
            f" or histogram_quantile(0.99, sum by ({label}, le)"
            f" (rate(http_server_request_duration_seconds_bucket{sel}[1m])))",
            "cpu": f"max by ({label}) (rate(process_cpu_seconds_total{sel}[1m]))",
            "open_breakers": f"count by ({label}) (governance_breaker_state{sel} == 2"
            f" or governance_breaker_state{sel} == 3)",
            "rejected": f'sum by ({label}) (rate(governance_decisions_total{{{label}=~"{regex}",'
            f'outcome="rejected"}}[1m]))',
        }
        table: dict[str, dict[str, float]] = {name: {} for name in names}
        for figure, expr in figures.items():
            for sample in self.prometheus.query(expr):
                service = sample.labels.get(label)
                if service in table:
                    table[service][figure] = sample.value
        return table

    def breakers(self, service: str) -> list[Breaker]:
        return [
            Breaker(
                s.labels.get("instance", ""),
                s.labels.get("target", ""),
                s.labels.get("method", ""),
                _BREAKER_STATES.get(int(s.value), str(s.value)),
            )
            for s in self.prometheus.query(f"governance_breaker_state{self._sel(service)}")
        ]

    def per_instance(self, service: str) -> dict[str, dict[str, float]]:
        """instance -> {cpu, pressure, adaptive_limit, in_flight, rps, shedding}."""
        sel = self._sel(service)
        cpu_signal = self._sel(service, 'signal="cpu"')
        figures = {
            "cpu": self.cpu(service),
            "pressure": f"governance_pressure{cpu_signal}",
            "adaptive_limit": f"governance_adaptive_limit{sel}",
            "in_flight": f"governance_adaptive_in_flight{sel}",
            "rps": f"sum by (instance) (rate(grpc_server_handled_total{sel}[1m]))",
            "shedding": f"max by (instance) (governance_shedding{sel})",
            "rules_generation": f"governance_rules_generation{sel}",
        }
        table: dict[str, dict[str, float]] = {}
        for figure, expr in figures.items():
            for sample in self.prometheus.query(expr):
                table.setdefault(sample.labels.get("instance", "?"), {})[figure] = sample.value
        return table

    def rejections(self, service: str) -> list[Sample]:
        """Calls refused per second by mechanism and method (limits, shedding, breakers)."""
        sel = self._sel(service, 'outcome="rejected"')
        return self.prometheus.query(
            f"sum by (mechanism, grpc_method) (rate(governance_decisions_total{sel}[1m])) > 0"
        )

    def grpc_services(self, service: str) -> list[str]:
        """The gRPC services ``service`` serves, as its metrics name them."""
        samples = self.prometheus.query(
            f"count by (grpc_service) (grpc_server_started_total{self._sel(service)})"
        )
        return sorted({s.labels["grpc_service"] for s in samples if s.labels.get("grpc_service")})

    def methods(self, service: str) -> list[str]:
        """``pkg.Service/Method`` of every method ``service`` serves."""
        samples = self.prometheus.query(
            f"count by (grpc_service, grpc_method) (grpc_server_started_total{self._sel(service)})"
        )
        return sorted(
            f"{s.labels['grpc_service']}/{s.labels['grpc_method']}"
            for s in samples
            if s.labels.get("grpc_service") and s.labels.get("grpc_method")
        )

    def called_by(self, service: str) -> list[str]:
        """The gRPC services ``service``'s clients call."""
        samples = self.prometheus.query(
            f"count by (grpc_service) (grpc_client_started_total{self._sel(service)})"
        )
        return sorted({s.labels["grpc_service"] for s in samples if s.labels.get("grpc_service")})

    def callers(self, grpc_services: Iterable[str]) -> list[str]:
        """The services whose clients call any of ``grpc_services``."""
        names = "|".join(_regex_escape(n) for n in grpc_services)
        if not names:
            return []
        samples = self.prometheus.query(
            f'count by ({self.label}) (grpc_client_started_total{{grpc_service=~"{names}"}})'
        )
        return sorted({s.labels[self.label] for s in samples if s.labels.get(self.label)})

    # -- history --------------------------------------------------------------------------------

    def history(self, service: str, minutes: int, *, now: float | None = None) -> dict[str, Series]:
        """rps, error_ratio, p50 and p99 of ``service`` over the last ``minutes``."""
        end = time.time() if now is None else now
        start, step = end - minutes * 60, _step(minutes)
        queries = {
            "rps": self.request_rate(service),
            "error_ratio": self.error_ratio(service),
            "p50": self.latency(service, 0.5),
            "p99": self.latency(service, 0.99),
        }
        out: dict[str, Series] = {}
        for name, expr in queries.items():
            series = self.prometheus.query_range(expr, start=start, end=end, step=step)
            out[name] = series[0] if series else Series({}, ())
        return out

    def overview_history(
        self, services: Iterable[str], minutes: int, *, now: float | None = None
    ) -> dict[str, list[Series]]:
        """Calls per second and p99 of every service over the last ``minutes`` (one series per
        service, labelled with the service label)."""
        label = self.label
        regex = "|".join(_regex_escape(n) for n in sorted(services))
        if not regex:
            return {"rps": [], "p99": []}
        sel = f'{{{label}=~"{regex}"}}'
        end = time.time() if now is None else now
        start, step = end - minutes * 60, _step(minutes)
        queries = {
            "rps": f"sum by ({label}) (rate(grpc_server_handled_total{sel}[1m]))"
            f" or sum by ({label}) (rate(http_server_request_duration_seconds_count{sel}[1m]))",
            "p99": f"histogram_quantile(0.99, sum by ({label}, le)"
            f" (rate(grpc_server_handling_seconds_bucket{sel}[1m])))"
            f" or histogram_quantile(0.99, sum by ({label}, le)"
            f" (rate(http_server_request_duration_seconds_bucket{sel}[1m])))",
        }
        return {
            name: self.prometheus.query_range(expr, start=start, end=end, step=step)
            for name, expr in queries.items()
        }

    def cpu_history(self, service: str, minutes: int, *, now: float | None = None) -> list[Series]:
        end = time.time() if now is None else now
        return self.prometheus.query_range(
            self.cpu(service), start=end - minutes * 60, end=end, step=_step(minutes)
        )

    def load_curve(self, service: str, minutes: int, *, now: float | None = None) -> list[LoadPoint]:
        """(throughput, p99) pairs over the last ``minutes``: the evidence for a rate limit."""
        end = time.time() if now is None else now
        start, step = end - minutes * 60, _step(minutes)
        rps = self.prometheus.query_range(self.goodput_rate(service), start=start, end=end, step=step)
        p99 = self.prometheus.query_range(self.latency(service, 0.99), start=start, end=end, step=step)
        if not rps or not p99:
            return []
        latency = dict(p99[0].points)
        return [
            LoadPoint(throughput=value, p99=latency[t])
            for t, value in rps[0].points
            if t in latency and value > 0
        ]


def _step(minutes: int) -> float:
    """About 120 points per chart, never finer than the 5 s scrape interval."""
    return max(5.0, minutes * 60 / 120)


def _regex_escape(name: str) -> str:
    return "".join(f"\\\\{c}" if c in r".^$*+?()[]{}|\\" else c for c in name)
