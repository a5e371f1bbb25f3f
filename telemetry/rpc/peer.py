"""A call's peer (``ipv4:1.2.3.4:5``, ``ipv6:[::1]:5``) or a target (``dns:///h:5``) as host and port."""

from __future__ import annotations

from telemetry.computed_cache import ComputedCache

__all__ = ["PEER_HOST_PORT", "split_host_port"]


def split_host_port(address: str) -> tuple[str, int | None]:
    """Host and port from a peer (``ipv4:1.2.3.4:5``, ``ipv6:[::1]:5``) or a target (``dns:///h:5``)."""
    for prefix in ("ipv4:", "ipv6:", "dns:///", "dns:", "unix:", "unix-abstract:"):
        if address.startswith(prefix):
            if prefix.startswith("unix"):
                return address[len(prefix) :], None
            address = address[len(prefix) :]
            break
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit():
        return address, None
    return host.strip("[]"), int(port)


# Every call on a connection has the same peer: its split is cached.
PEER_HOST_PORT: ComputedCache[str, tuple[str, int | None]] = ComputedCache(split_host_port)
"""Host and port of a peer (:func:`split_host_port`)."""
