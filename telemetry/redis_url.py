"""Redis URLs (``TELEMETRY_REDIS_URL``): checked before use, and never shown with a password.

``redis://[[user]:password@]host[:port][/db]`` (``rediss://`` for TLS). Query options are
refused: redis-py lets them override the client's arguments, and the short timeouts that keep a
slow Redis from slowing calls must not be undone by a URL.
"""

from __future__ import annotations

from urllib.parse import SplitResult, urlsplit

__all__ = ["redact", "redis_url_problem"]

_SCHEMES = ("redis", "rediss")
_MAX_DB = 1_000_000


def redis_url_problem(url: str) -> str | None:
    """What is wrong with ``url`` (None: nothing); the message never repeats a password."""
    if not isinstance(url, str) or not url.strip():
        return "must be a URL such as redis://127.0.0.1:6379/0"
    try:
        parts = urlsplit(url.strip())
        port = parts.port  # ValueError when not a number in 0..65535
    except ValueError:
        return f"must be a URL such as redis://127.0.0.1:6379/0, got {redact(url)}"
    problem = _parts_problem(parts, port)
    return None if problem is None else f"{problem}, got {redact(url)}"


def _parts_problem(parts: SplitResult, port: int | None) -> str | None:
    if parts.scheme.lower() not in _SCHEMES:
        return "scheme must be redis or rediss"
    if not parts.hostname:
        return "must name a host (redis://host:port/db)"
    if port == 0:
        return "port must be 1 to 65535"
    if parts.query or parts.fragment:
        return "query options are not accepted (the timeout is TELEMETRY_REDIS_TIMEOUT_MS)"
    db = parts.path.lstrip("/")
    if db and not (db.isdigit() and int(db) < _MAX_DB):
        return "the path must be a database number (/0)"
    return None


def redact(url: str) -> str:
    """``url`` with whatever may be a password replaced by ``***`` (for logs, errors and
    statuses). Everything between ``://`` and the last ``@`` is hidden: an unencoded ``#``, ``/``
    or ``?`` in a password makes a URL parser see a fragment, path or query there, and the
    password would otherwise be shown whole."""
    text = url.strip()
    scheme, sep, rest = text.partition("://")
    if not sep:
        return "<not a URL>" if "@" in text else text
    if "@" not in rest:
        return text
    credentials, _, host = rest.rpartition("@")
    user = credentials.partition(":")[0] if ":" in credentials else ""
    hidden = f"{user}:***" if user else "***"
    return f"{scheme}://{hidden}@{host}"
