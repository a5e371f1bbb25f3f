"""The panel's HTTP clients, Prometheus and Grafana annotations, against tiny local HTTP servers:
their failures are one readable error (remembered, for annotations), never a crash; answers are
parsed, annotations carry their body and auth, and every written change is annotated in the
background.
"""

from __future__ import annotations

import base64
import http.server
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

from panel_control_plane.support import APPLY_WITHIN, PAYMENT
from telemetry.discovery.etcd import EtcdClient
from telemetry.panel.annotations import GrafanaAnnotator
from telemetry.panel.control_plane import Change, ControlPlane
from telemetry.panel.controls import set_breaker
from telemetry.panel.prometheus import Prometheus, PrometheusError
from telemetry.testing._poll import poll
from telemetry.testing.ports import free_port

# -- HTTP clients: Prometheus and Grafana ------------------------------------------------------------


@dataclass
class Recorded:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes


@dataclass
class FakeHTTP:
    """A local HTTP server answering every request with ``status`` and ``body`` (``raw``: bytes
    sent as they are, not HTTP), recording what it was sent."""

    status: int = 200
    body: bytes = b"{}"
    raw: bytes | None = None
    requests: list[Recorded] = field(default_factory=list)
    url: str = ""


@pytest.fixture
def fake_http() -> Iterator[FakeHTTP]:
    fake = FakeHTTP()

    class Handler(http.server.BaseHTTPRequestHandler):
        def _answer(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            fake.requests.append(
                Recorded(self.command, self.path, dict(self.headers.items()), self.rfile.read(length))
            )
            if fake.raw is not None:
                self.wfile.write(fake.raw)
                return
            self.send_response(fake.status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(fake.body)))
            self.end_headers()
            self.wfile.write(fake.body)

        do_GET = do_POST = _answer  # noqa: N815

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.01,), name="fake-http", daemon=True)
    thread.start()
    yield fake
    server.shutdown()
    server.server_close()
    thread.join(5)


def closed_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_prometheus_unreachable() -> None:
    prometheus = Prometheus(closed_url(), timeout=1.0)
    with pytest.raises(PrometheusError, match="is unreachable"):
        prometheus.query("up")
    reason = prometheus.healthy()
    assert reason is not None and "unreachable" in reason


def test_prometheus_errors_carry_its_own_message(fake_http: FakeHTTP) -> None:
    prometheus = Prometheus(fake_http.url + "/", timeout=2.0)
    fake_http.status, fake_http.body = 400, b'{"status":"error","error":"parse error"}'
    with pytest.raises(PrometheusError, match="parse error") as raised:
        prometheus.query("rate(")
    assert str(raised.value) == "Prometheus refused the query: parse error"
    assert prometheus.healthy() == "Prometheus refused the query: parse error"
    assert fake_http.requests[0].path == "/api/v1/query?query=rate%28"

    fake_http.status, fake_http.body = 503, b"Service Unavailable"
    with pytest.raises(PrometheusError, match="answered HTTP 503"):
        prometheus.query("up")
    fake_http.status, fake_http.body = 200, b"<html>a proxy's login page</html>"
    with pytest.raises(PrometheusError, match="unreachable"):
        prometheus.query("up")
    fake_http.body = b"[]"
    with pytest.raises(PrometheusError, match="something else than its JSON"):
        prometheus.query("up")
    fake_http.body = b'{"status":"success","data":{"resultType":"matrix","result":[]}}'
    with pytest.raises(PrometheusError, match="expected a vector, got 'matrix'"):
        prometheus.query("up")
    fake_http.raw = b"not http at all\r\n\r\n"
    with pytest.raises(PrometheusError, match="unreachable"):
        prometheus.query("up")


def test_prometheus_answers_are_parsed(fake_http: FakeHTTP) -> None:
    prometheus = Prometheus(fake_http.url)
    fake_http.body = json.dumps(
        {"status": "success", "data": {"resultType": "vector", "result": [
            {"metric": {"job": "order"}, "value": [1700000000, "12.5"]},
            {"metric": {"job": "cart"}, "value": [1700000000, "NaN"]},
        ]}}
    ).encode()  # fmt: skip
    [sample] = prometheus.query("up")
    assert sample.labels == {"job": "order"} and sample.value == 12.5
    assert prometheus.healthy() is None
    fake_http.body = json.dumps(
        {"status": "success", "data": {"resultType": "matrix", "result": [
            {"metric": {"job": "order"}, "values": [[1, "1"], [2, "+Inf"], [3, "3"]]},
        ]}}
    ).encode()  # fmt: skip
    [series] = prometheus.query_range("up", start=1, end=3, step=1)
    assert series.points == ((1.0, 1.0), (3.0, 3.0))


def a_change() -> Change:
    return Change(
        service="order", key="client", before={"x": 1}, after={"x": 2}, actor="ada",
        reason="drill", at=1700000000.25, revision=42,
    )  # fmt: skip


def test_grafana_unreachable_is_remembered_never_raised() -> None:
    annotator = GrafanaAnnotator(closed_url(), token="t", timeout=1.0)
    assert annotator.post(a_change()) is False
    assert annotator.last_error is not None
    assert annotator.last_error.startswith("Grafana annotation failed")


def test_grafana_speaking_no_http_is_remembered_never_raised(fake_http: FakeHTTP) -> None:
    fake_http.raw = b"SSH-2.0-OpenSSH_9.6\r\n\r\n"
    annotator = GrafanaAnnotator(fake_http.url, timeout=2.0)
    assert annotator.post(a_change()) is False
    assert annotator.last_error is not None


def test_grafana_annotation_body_and_auth(fake_http: FakeHTTP) -> None:
    change = a_change()
    bearer = GrafanaAnnotator(fake_http.url + "/", token="glsa_secret")
    assert bearer.post(change) is True and bearer.last_error is None
    [request] = fake_http.requests
    assert (request.method, request.path) == ("POST", "/api/annotations")
    assert request.headers["Authorization"] == "Bearer glsa_secret"
    assert request.headers["Content-Type"] == "application/json"
    assert json.loads(request.body) == {
        "time": 1700000000250,
        "tags": ["governance", "order", "client"],
        "text": "order/client by ada (drill): x: 1 -> 2",
    }

    basic = GrafanaAnnotator(fake_http.url, basic_auth=("admin", "p@ss:word"))
    assert basic.post(change)
    expected = base64.b64encode(b"admin:p@ss:word").decode()
    assert fake_http.requests[1].headers["Authorization"] == f"Basic {expected}"

    fake_http.status, fake_http.body = 401, b'{"message":"invalid API key"}'
    assert bearer.post(change) is False
    assert bearer.last_error is not None and "401" in bearer.last_error


def test_every_written_change_is_annotated_in_the_background(
    client: EtcdClient, service: str, fake_http: FakeHTTP
) -> None:
    annotator = GrafanaAnnotator(fake_http.url, token="t")
    plane = ControlPlane(client, on_change=annotator)
    change = plane.update(
        service, "client", set_breaker(f"{PAYMENT}/*", force="open"), actor="ada", reason="drill"
    )
    plane.update(service, "client", set_breaker(f"{PAYMENT}/*", force="open"), actor="ada")  # no-op
    [request] = poll(lambda: list(fake_http.requests), bool, APPLY_WITHIN, "the annotation")
    body = json.loads(request.body)
    assert body["tags"] == ["governance", service, "client"]
    assert body["text"] == change.summary()
    assert body["text"].endswith(f'methods.{PAYMENT}/* set to {{"breaker": {{"force": "open"}}}}')
    assert len(fake_http.requests) == 1  # the change that changed nothing is not annotated
