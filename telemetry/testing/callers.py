"""A caller that keeps calling from a background thread and counts what came back, for tests and
benchmarks that break something (an instance, an etcd member) while calls flow."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import grpc

__all__ = ["BackgroundCaller"]


class BackgroundCaller:
    """``call()`` back to back (``pause`` seconds between calls) until :meth:`stop`: ``ok`` counts
    the calls that returned, ``failed`` holds ``"CODE: details"`` of each that raised
    ``grpc.RpcError``. Counts are read without a lock: a reader may be one call behind."""

    def __init__(self, call: Callable[[], object], *, pause: float = 0.0) -> None:
        self.ok = 0
        self.failed: list[str] = []
        self._call = call
        self._pause = pause
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="background-caller", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self._call()
                self.ok += 1
            except grpc.RpcError as error:
                self.failed.append(f"{error.code().name}: {error.details()}")
            if self._pause:
                time.sleep(self._pause)

    def reset(self) -> None:
        self.ok = 0
        self.failed = []

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        self._thread.join(timeout)
