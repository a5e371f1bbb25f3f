"""A real browser for the panel's check: headless Chromium (Debian's ``chromium``) driven over the
DevTools protocol, so a test can wait for the page's live parts in real time (Streamlit renders
over a websocket after load, which ``--screenshot`` alone does not wait for) and then screenshot.
"""

from __future__ import annotations

import base64
import contextlib
import itertools
import json
import shutil
import subprocess
import tempfile
import urllib.request
from pathlib import Path
from types import TracebackType
from typing import Any

from websockets.sync.client import ClientConnection, connect

from telemetry.testing._poll import poll

__all__ = ["Chromium", "chromium_binary"]

FLAGS = (
    "--headless",
    "--no-sandbox",  # root in a container
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-dev-shm-usage",
    "--disable-extensions",
    "--no-first-run",
    "--hide-scrollbars",
    "--mute-audio",
)


def chromium_binary() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


class Chromium:
    """``with Chromium() as browser: browser.open(url); browser.wait_for(js); browser.screenshot(p)``."""

    def __init__(self, *, width: int = 1500, height: int = 2000) -> None:
        binary = chromium_binary()
        if binary is None:
            raise RuntimeError("chromium is not installed (Debian package chromium)")
        self._profile = Path(tempfile.mkdtemp(prefix="chromium-test-"))
        self._proc = subprocess.Popen(
            [binary, *FLAGS, f"--window-size={width},{height}", "--remote-debugging-port=0",
             f"--user-data-dir={self._profile}", "about:blank"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        self._ids = itertools.count(1)
        self._closing = contextlib.ExitStack()
        try:
            self._ws = self._closing.enter_context(self._connect(timeout=30))
        except BaseException:
            self.close()
            raise

    def _connect(self, timeout: float) -> ClientConnection:
        """Attach to chromium's one page, once its DevTools are up."""
        url = poll(self._page_url, lambda u: u is not None, timeout, "chromium's DevTools page",
                   interval=0.1)  # fmt: skip
        assert url is not None
        return connect(url, max_size=64 * 2**20)

    def _page_url(self) -> str | None:
        """The DevTools websocket of chromium's page; None until chromium has written its DevTools
        port to the profile and opened the page."""
        if self._proc.poll() is not None:
            raise RuntimeError(f"chromium exited with {self._proc.returncode}")
        try:
            port = (self._profile / "DevToolsActivePort").read_text().split()
        except FileNotFoundError:
            return None
        if not port:
            return None
        with urllib.request.urlopen(f"http://127.0.0.1:{port[0]}/json/list", timeout=5) as r:
            pages = [t for t in json.loads(r.read()) if t.get("type") == "page"]
        return str(pages[0]["webSocketDebuggerUrl"]) if pages else None

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        """One DevTools command; events arriving meanwhile are skipped."""
        ident = next(self._ids)
        self._ws.send(json.dumps({"id": ident, "method": method, "params": params}))
        while True:
            message = json.loads(self._ws.recv(timeout=60))
            if message.get("id") == ident:
                if "error" in message:
                    raise RuntimeError(f"{method}: {message['error']}")
                return message.get("result", {})  # type: ignore[no-any-return]

    def open(self, url: str) -> None:
        self.call("Page.enable")
        self.call("Page.navigate", url=url)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        if "exceptionDetails" in result:
            raise RuntimeError(f"page script failed: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, timeout: float) -> Any:
        """Poll ``expression`` until it is truthy and return that value; AssertionError on timeout."""
        return poll(lambda: self.evaluate(expression), bool, timeout, "a truthy page expression",
                    interval=0.25)  # fmt: skip

    def screenshot(self, path: Path) -> bytes:
        data = base64.b64decode(
            self.call("Page.captureScreenshot", format="png", captureBeyondViewport=True)["data"]
        )
        path.write_bytes(data)
        return data

    def close(self) -> None:
        self._closing.close()
        if self._proc.poll() is None:
            self._proc.kill()
        self._proc.wait(10)
        shutil.rmtree(self._profile, ignore_errors=True)

    def __enter__(self) -> Chromium:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()
