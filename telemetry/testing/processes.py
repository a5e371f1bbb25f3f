"""Stopping a child process the tests or benchmarks started, by its PID, without hanging."""

from __future__ import annotations

import signal
import subprocess

__all__ = ["stop_child"]


def stop_child(proc: subprocess.Popen[bytes], sig: signal.Signals = signal.SIGKILL) -> None:
    """Send ``sig`` (SIGKILL: an outage) unless it has exited; wait for it, killing it if a
    gentler signal is not obeyed within 10 s."""
    if proc.poll() is None:
        proc.send_signal(sig)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(10)
