"""A minimal Prometheus HTTP API client: instant and range queries, each with a timeout.

Every failure (refused connection, timeout, HTTP error, a query Prometheus rejects, a body that is
not its JSON) is one :class:`PrometheusError` with a readable message, so the panel can say
"Prometheus is unreachable" and carry on with what etcd tells it.
"""

from __future__ import annotations

import http.client
import json
import math
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from typing import Any

__all__ = ["Alert", "Prometheus", "PrometheusError", "Sample", "Series"]


class PrometheusError(Exception):
    """Prometheus could not answer the query."""


@dataclass(frozen=True, slots=True)
class Sample:
    labels: dict[str, str]
    value: float


@dataclass(frozen=True, slots=True)
class Series:
    labels: dict[str, str]
    points: tuple[tuple[float, float], ...]
    """(unix time, value), NaN and infinities dropped."""


@dataclass(frozen=True, slots=True)
class Alert:
    """An alert Prometheus is holding (``state`` "firing" or "pending"), from ``/api/v1/alerts``."""

    name: str
    state: str
    labels: dict[str, str]
    summary: str
    active_at: str


MAX_ALERTS = 200
"""Alerts read at most (a page of them is already more than a person reads)."""
_MAX_TEXT = 300


class Prometheus:
    def __init__(self, url: str, *, timeout: float = 3.0) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout

    def query(self, expr: str) -> list[Sample]:
        data = self._get("query", {"query": expr})
        if data.get("resultType") != "vector":
            raise PrometheusError(f"expected a vector, got {data.get('resultType')!r}: {expr}")
        samples = []
        for item in data.get("result", []):
            value = _float(item["value"][1])
            if value is not None:
                samples.append(Sample(dict(item["metric"]), value))
        return samples

    def query_range(self, expr: str, *, start: float, end: float, step: float) -> list[Series]:
        data = self._get("query_range", {"query": expr, "start": start, "end": end, "step": step})
        if data.get("resultType") != "matrix":
            raise PrometheusError(f"expected a matrix, got {data.get('resultType')!r}: {expr}")
        series = []
        for item in data.get("result", []):
            points = tuple((float(t), v) for t, raw in item["values"] if (v := _float(raw)) is not None)
            series.append(Series(dict(item["metric"]), points))
        return series

    def alerts(self) -> list[Alert]:
        """The alerts firing or pending now (at most :data:`MAX_ALERTS`; texts cut to 300
        characters: labels and annotations come from rules anyone with etcd or the rule files
        could have written)."""
        data = self._get("alerts", {})
        raw = data.get("alerts")
        if not isinstance(raw, list):
            raise PrometheusError("Prometheus answered alerts without a list")
        found = []
        for item in raw[:MAX_ALERTS]:
            if not isinstance(item, dict) or not isinstance(item.get("labels"), dict):
                continue
            labels = {str(k)[:_MAX_TEXT]: str(v)[:_MAX_TEXT] for k, v in item["labels"].items()}
            notes = item.get("annotations")
            annotations: dict[str, Any] = notes if isinstance(notes, dict) else {}
            found.append(
                Alert(
                    name=labels.get("alertname", "?"),
                    state=str(item.get("state", ""))[:20],
                    labels=labels,
                    summary=str(annotations.get("summary", ""))[:_MAX_TEXT],
                    active_at=str(item.get("activeAt", ""))[:40],
                )
            )
        return found

    def healthy(self) -> str | None:
        """None when Prometheus answers, else why not."""
        try:
            self._get("query", {"query": "1"})
        except PrometheusError as exc:
            return str(exc)
        return None

    def _get(self, endpoint: str, params: dict[str, Any]) -> dict[str, Any]:
        url = f"{self.url}/api/v1/{endpoint}?{urllib.parse.urlencode(params)}"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as response:
                body = json.loads(response.read())
        except urllib.error.HTTPError as exc:
            body = _error_body(exc)
            if body is None:
                raise PrometheusError(f"Prometheus answered HTTP {exc.code} at {self.url}") from None
        except (OSError, ValueError, http.client.HTTPException) as exc:  # refused, timed out, DNS,
            # not HTTP (BadStatusLine is no OSError), not JSON
            raise PrometheusError(f"Prometheus at {self.url} is unreachable: {_reason(exc)}") from None
        if not isinstance(body, dict):
            raise PrometheusError(f"Prometheus at {self.url} answered something else than its JSON")
        if body.get("status") != "success":
            raise PrometheusError(f"Prometheus refused the query: {body.get('error', body)}")
        data = body.get("data")
        if not isinstance(data, dict):
            raise PrometheusError("Prometheus answered without data")
        return data


def _error_body(exc: urllib.error.HTTPError) -> dict[str, Any] | None:
    """A 400/422 carries Prometheus's own JSON error ("parse error at char 5 ...")."""
    try:
        body = json.loads(exc.read())
    except (OSError, ValueError):
        return None
    return body if isinstance(body, dict) else None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, urllib.error.URLError):
        return str(exc.reason)
    return str(exc) or type(exc).__name__


def _float(raw: Any) -> float | None:
    try:
        value = float(raw)
    except (TypeError, ValueError):
        return None
    return value if math.isfinite(value) else None
