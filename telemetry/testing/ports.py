"""Free TCP ports on loopback, for tests, benchmarks and the native stack."""

from __future__ import annotations

import contextlib
import socket

__all__ = ["free_port"]


def free_port(preferred: int = 0) -> int:
    """A port free on 127.0.0.1 right now: ``preferred`` when it is free, else any the kernel picks.
    Nothing holds it: another process (or a later call) may take it before the caller binds it."""
    if preferred:
        with contextlib.suppress(OSError):
            return _bind(preferred)
    return _bind(0)


def _bind(port: int) -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))
        return int(sock.getsockname()[1])
