"""The interpreter's thread switch interval, set while governance wants it
(``AdaptiveRule.gil_switch_interval``)."""

from __future__ import annotations

import sys
import threading

__all__ = ["switch_interval"]


class _SwitchInterval:
    """AdaptiveRule.gil_switch_interval, process-wide: set while wanted, and on release restore
    what was there before governance set it (an application's own setting is left alone)."""

    def __init__(self) -> None:
        self._saved: float | None = None
        self._lock = threading.Lock()

    def apply(self, seconds: float) -> None:
        with self._lock:
            if seconds > 0:
                if self._saved is None:
                    self._saved = sys.getswitchinterval()
                sys.setswitchinterval(seconds)
            elif self._saved is not None:
                sys.setswitchinterval(self._saved)
                self._saved = None


switch_interval = _SwitchInterval()
