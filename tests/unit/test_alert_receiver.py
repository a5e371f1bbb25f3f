"""The webhook receiver Alertmanager posts to: records payloads, bounded, serves them as JSON."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from services.alert_receiver import Notifications, serve

PAYLOAD = {"status": "firing", "alerts": [{"status": "firing", "labels": {"alertname": "Test"}}]}


@pytest.fixture()
def receiver() -> Iterator[int]:
    server = serve("127.0.0.1", 0, max_body=1024, max_entries=3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


def _call(port: int, method: str, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        connection.request(method, path, body=body)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def test_a_posted_notification_is_listed_with_its_arrival_time(receiver: int) -> None:
    assert _call(receiver, "GET", "/alerts") == (200, b"[]")
    assert _call(receiver, "POST", "/webhook", json.dumps(PAYLOAD).encode())[0] == 200
    status, body = _call(receiver, "GET", "/alerts")
    listed: list[dict[str, Any]] = json.loads(body)
    assert status == 200 and [entry["payload"] for entry in listed] == [PAYLOAD]
    assert listed[0]["received_at"] > 1.6e9


def test_only_the_last_entries_are_kept(receiver: int) -> None:
    for i in range(5):
        assert _call(receiver, "POST", "/webhook", json.dumps({"n": i}).encode())[0] == 200
    listed = json.loads(_call(receiver, "GET", "/alerts")[1])
    assert [entry["payload"]["n"] for entry in listed] == [2, 3, 4]


def test_bodies_over_the_limit_and_non_json_are_refused(receiver: int) -> None:
    assert _call(receiver, "POST", "/webhook", b"x" * 1025)[0] == 413
    assert _call(receiver, "POST", "/webhook", b"not json")[0] == 400
    assert _call(receiver, "GET", "/alerts") == (200, b"[]")


def test_other_paths_are_not_found(receiver: int) -> None:
    assert _call(receiver, "GET", "/")[0] == 404
    assert _call(receiver, "POST", "/alerts", b"{}")[0] == 404
    assert _call(receiver, "GET", "/healthz") == (200, b"ok\n")


def test_the_oldest_entries_go_when_the_bytes_would_exceed_the_bound() -> None:
    store = Notifications(max_entries=100, max_bytes=10)
    for body in (b'"aaaa"', b'"bbbb"', b'"cc"'):
        store.add(body, received_at=1.0)
    assert [entry["payload"] for entry in store.as_json()] == ["bbbb", "cc"]
