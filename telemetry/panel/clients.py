"""Who is signing in: the address the sign-in guard counts attempts by, and the logs name.

The connection's peer address, unless the operator has said (``PANEL_TRUSTED_PROXIES``) that reverse
proxies stand in front of the panel: then the peer is the last proxy, and the client is the address
the first trusted proxy saw, which it appended to ``X-Forwarded-For``. The header's other entries
are whatever the client sent, so they are never used. Addresses are parsed and written canonically
(one address, one spelling); anything unparsable is :data:`UNKNOWN`.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable

__all__ = ["UNKNOWN", "client_address"]

UNKNOWN = "unknown"


def client_address(peer: str | None, forwarded_for: Iterable[str], trusted_proxies: int) -> str:
    """``peer``: the connection's address (None when unknown or local); ``forwarded_for``: every
    ``X-Forwarded-For`` header's value, in order; ``trusted_proxies``: how many proxies append to it.
    """
    if trusted_proxies > 0:
        hops = [hop.strip() for value in forwarded_for for hop in value.split(",")]
        if len(hops) >= trusted_proxies:
            found = _canonical(hops[-trusted_proxies])
            if found is not None:
                return found
        # No usable header: a connection that did not come through the proxies; its peer is the client.
    return _canonical(peer) or UNKNOWN


def _canonical(raw: str | None) -> str | None:
    if not isinstance(raw, str):  # also whatever a test harness's stand-in returns
        return None
    text = raw.strip()
    if text.startswith("[") and "]" in text:  # some proxies write the port too: [2001:db8::1]:443
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # 192.0.2.1:443
        text = text.partition(":")[0]
    try:
        address = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped  # the same IPv4 client whichever way the socket reports it
    return str(address)
