"""Graceful shutdown of a served process, in the order that loses no call.

On SIGTERM or SIGINT (or ``stop``): 1. deregister from etcd, so clients stop picking this
instance; 2. stop the server: new calls are refused while in-flight calls get ``grace`` seconds to
finish; 3. flush telemetry (spans, logs) and let etcd go.

The two steps of the handle come as callables (``deregister``, ``shutdown``), so this module needs
nothing of :mod:`telemetry.handle`, which calls it.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable

import grpc
import grpc.aio

__all__ = ["serve", "serve_aio"]

_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def serve(
    server: grpc.Server,
    *,
    deregister: Callable[[], None],
    shutdown: Callable[[], None],
    grace: float = 10.0,
    stop: threading.Event | None = None,
) -> None:
    """Block until a stop signal, then shut down gracefully (see module docs). Signal handlers are
    installed only when called from the main thread; ``stop`` ends the wait from code or tests."""
    stop = stop or threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in _SIGNALS:
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    try:
        stop.wait()
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    deregister()
    server.stop(grace).wait(grace + 1)
    shutdown()


async def serve_aio(
    server: grpc.aio.Server,
    *,
    deregister: Callable[[], None],
    shutdown: Callable[[], None],
    grace: float = 10.0,
    stop: asyncio.Event | None = None,
) -> None:
    """:func:`serve` for a grpc.aio server, on the running loop."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    installed = []
    for sig in _SIGNALS:
        try:
            loop.add_signal_handler(sig, stop.set)
            installed.append(sig)
        except (NotImplementedError, RuntimeError, ValueError):  # not the main thread
            break
    try:
        await stop.wait()
    finally:
        for sig in installed:
            loop.remove_signal_handler(sig)
    await asyncio.to_thread(deregister)
    await server.stop(grace)
    await asyncio.to_thread(shutdown)
