"""Tiny HTTP helpers for the stack tests (stdlib only)."""

from __future__ import annotations

import json
import urllib.error
import urllib.parse
import urllib.request
from typing import Any


def request(
    url: str, *, method: str = "GET", body: Any = None, raw: bytes | None = None,
    headers: dict[str, str] | None = None, timeout: float = 10.0,
) -> tuple[int, Any]:  # fmt: skip
    """(status, parsed JSON body) — also for 4xx/5xx answers."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    req = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as response:
            return response.status, json.loads(response.read() or b"null")
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"null")


def prometheus(base: str, path: str, **params: str) -> Any:
    """The ``data`` of a Prometheus HTTP API answer."""
    url = f"{base}{path}?{urllib.parse.urlencode(params)}"
    status, body = request(url)
    assert status == 200 and body["status"] == "success", (url, status, body)
    return body["data"]
