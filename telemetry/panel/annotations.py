"""Grafana annotations for control changes, so a dashboard shows when a breaker was flipped.

Posted in the background (a change is never held up by Grafana) with a timeout; a failure is
logged and remembered for the panel to show, never raised. The services also export the etcd
revision of the control state they run under (``governance_control_revision``), which the
bundled dashboards annotate from Prometheus, so changes show even without this.
"""

from __future__ import annotations

import base64
import http.client
import json
import logging
import threading
import urllib.request

from telemetry.panel.control_plane import Change

__all__ = ["GrafanaAnnotator"]

_log = logging.getLogger("telemetry.panel")


class GrafanaAnnotator:
    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        basic_auth: tuple[str, str] | None = None,
        timeout: float = 3.0,
    ) -> None:
        self.url = url.rstrip("/")
        self.timeout = timeout
        self._headers = {"Content-Type": "application/json"}
        if token:
            self._headers["Authorization"] = f"Bearer {token}"
        elif basic_auth:
            pair = base64.b64encode(f"{basic_auth[0]}:{basic_auth[1]}".encode()).decode()
            self._headers["Authorization"] = f"Basic {pair}"
        self.last_error: str | None = None

    def __call__(self, change: Change) -> None:
        """Post in the background; returns at once."""
        threading.Thread(
            target=self.post, args=(change,), name="grafana-annotation", daemon=True
        ).start()

    def post(self, change: Change) -> bool:
        body = json.dumps(
            {
                "time": int(change.at * 1000),
                "tags": ["governance", change.service, change.key],
                "text": change.summary(),
            }
        ).encode()
        request = urllib.request.Request(
            f"{self.url}/api/annotations", data=body, headers=self._headers, method="POST"
        )
        try:
            with urllib.request.urlopen(request, timeout=self.timeout) as response:
                response.read()
        except (OSError, http.client.HTTPException) as exc:  # HTTPError, URLError, timeouts,
            # a peer that does not speak HTTP (BadStatusLine is no OSError)
            self.last_error = f"Grafana annotation failed: {exc}"
            _log.warning("%s", self.last_error)
            return False
        self.last_error = None
        return True
