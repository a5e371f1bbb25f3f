"""Redaction of secrets in telemetry: the values of sensitive keys, and the sensitive parts of URLs.

**Keys.** A key is sensitive when its name matches one of the configured patterns
(:data:`telemetry.config.DEFAULT_SENSITIVE_KEYS` plus ``TELEMETRY_SENSITIVE_KEYS``): the whole name,
case-insensitively, with ``-`` and ``_`` alike (``X_Auth_Token`` is ``x-auth-token``) and ``*``
matching any run of characters. ``authorization`` is that header only; ``*token*`` is any name
containing ``token``. An entry ``!name`` (itself maybe a pattern) keeps the names it matches in clear.

Substring patterns fail closed: ``*token*`` redacts ``x-access-token`` and ``csrf_token``, and also
``tokens_used`` or ``gen_ai.usage.input_tokens``. That is deliberate and common practice: Rails'
``filter_parameters`` and Sentry's server-side scrubbing match substrings, and OpenTelemetry Python's
header sanitizer (``OTEL_INSTRUMENTATION_HTTP_CAPTURE_HEADERS_SANITIZE_FIELDS``, full-match regexes)
documents ``.*session.*``. A count lost to redaction shows at once and one ``!tokens_used`` entry
brings it back; a leaked credential shows only when it is abused.

Applied to every key of a log line, and inside the dicts, lists and tuples among its values (copies:
the caller's objects are never modified; exact types only, down to :data:`MAX_DEPTH`), which covers
access-line metadata and any attribute set from headers or metadata.

**URLs.** As OpenTelemetry's HTTP semantic conventions ask for ``url.query`` and ``url.full``: the
values of query parameters known to carry credentials (:data:`SEMCONV_QUERY_KEYS`, matched
case-sensitively as the convention says) are replaced by ``REDACTED``, the key kept
(``q=OpenTelemetry&sig=REDACTED``); so are those whose name, percent-decoded as the application reads
it, matches the key patterns. Empty values stay empty (nothing to hide, and "sent an empty token" is a
useful clue). Userinfo (``user:pass@``) becomes ``REDACTED:REDACTED@``.

**Cost.** Every line passes here, so each key is decided once (one regex for all patterns) and the
decision cached in a bounded :class:`~telemetry.computed_cache.ComputedCache`: a line with no
sensitive key and no container value costs two C-level passes (no Python call per key). Keys come from
callers and attackers (metadata, query names), so keys longer than :data:`MAX_CACHED_KEY` are decided
each time and never stored: the cache holds at most ``cache_size`` short keys whatever is sent.
"""

from __future__ import annotations

import functools
import operator
import re
from collections.abc import Callable, Hashable, Iterable
from typing import Any
from urllib.parse import unquote_plus

from telemetry.computed_cache import ComputedCache

REDACTED = "[REDACTED]"  # in log lines
URL_REDACTED = "REDACTED"  # in URLs: the semantic conventions' word (and URL-safe)

# OpenTelemetry semantic conventions, url.query / url.full: "Query string values for the following
# keys SHOULD be redacted by default and replaced by the value REDACTED" (matched case-sensitively).
SEMCONV_QUERY_KEYS = frozenset(
    {
        "AWSAccessKeyId",
        "Signature",
        "sig",
        "X-Amz-Credential",
        "X-Amz-Security-Token",
        "X-Amz-Signature",
        "X-Goog-Signature",
    }
)
MAX_CACHED_KEY = 128
MAX_DEPTH = 8
_CONTAINERS = frozenset({dict, list, tuple})
# scheme "://" userinfo "@": the last "@" before the path, as browsers split "user:p@ss@host".
_USERINFO = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://)([^/?#]*)@")


def normalize(name: str) -> str:
    return name.lower().replace("_", "-")


def _compile(patterns: Iterable[str]) -> re.Pattern[str] | None:
    alternatives = sorted({".*".join(map(re.escape, p.split("*"))) for p in patterns if p})
    return re.compile("|".join(alternatives), re.DOTALL) if alternatives else None


class _Decisions(ComputedCache[Hashable, bool]):
    """Per-key decisions, bounded in count by the cache and in size by :data:`MAX_CACHED_KEY`."""

    def __missing__(self, key: Hashable) -> bool:
        if type(key) is not str or len(key) > MAX_CACHED_KEY:
            return self._compute(key)  # decided, not stored: an attacker's 8 KB keys hold no memory
        return super().__missing__(key)


class Redactor:
    """Decides which keys are sensitive and redacts events, nested values, queries and URLs."""

    __slots__ = ("_allow", "_cache_size", "_deny", "_query_sensitive", "_safe", "any_sensitive",
                 "decisions", "patterns", "query_decisions", "sensitive")  # fmt: skip

    def __init__(self, patterns: Iterable[str], cache_size: int = 4096) -> None:
        self.patterns = frozenset(normalize(p.strip()) for p in patterns if p.strip())
        self._deny = _compile(p for p in self.patterns if not p.startswith("!"))
        self._allow = _compile(p[1:] for p in self.patterns if p.startswith("!"))
        self._cache_size = cache_size
        self.decisions = _Decisions(self._decide, cache_size)
        self.sensitive: Callable[[Hashable], bool] = self.decisions.__getitem__
        """``sensitive(key)``: a dict subscript on a hit (no Python call through ``map``)."""
        self._safe: set[str] = set()
        """Keys seen harmless (bounded as the decisions): ``_safe.issuperset(line)`` clears all the
        keys of a usual line in one C call, several times faster than a decision per key."""
        self.query_decisions = _Decisions(self._decide_query_name, cache_size)
        self._query_sensitive: Callable[[Hashable], bool] = self.query_decisions.__getitem__
        self.any_sensitive: ComputedCache[frozenset[str], bool] = ComputedCache(
            lambda keys: any(map(self.sensitive, keys)), 64
        )
        """``any_sensitive[keys]``: is any of a fixed set of keys sensitive (cached per set)."""

    def _decide(self, key: Hashable) -> bool:
        if type(key) is not str or self._deny is None:
            return False
        name = normalize(key)
        return self._deny.fullmatch(name) is not None and not self._allowed(name)

    def _allowed(self, name: str) -> bool:
        return self._allow is not None and self._allow.fullmatch(name) is not None

    def _decide_query_name(self, raw: Hashable) -> bool:
        if type(raw) is not str:
            return False
        name = unquote_plus(raw)  # the name the application reads: "%74oken" is "token"
        if name in SEMCONV_QUERY_KEYS:
            return not self._allowed(normalize(name))
        return self._decide(name)

    def _sensitive_keys(self, mapping: dict[Any, Any]) -> list[Any]:
        """The sensitive keys of ``mapping``; the others, if short strings, are learnt as safe."""
        sensitive, safe = self.sensitive, self._safe
        found = []
        for key in mapping:
            if sensitive(key):
                found.append(key)
            elif type(key) is str and len(key) <= MAX_CACHED_KEY:
                if len(safe) >= self._cache_size:
                    safe.clear()  # as ComputedCache does: the keys of lines repeat
                safe.add(key)
        return found

    def redact(self, event: dict[str, Any]) -> dict[str, Any]:
        """``event`` with the values of its sensitive keys replaced, in place (nested values are
        replaced by redacted copies)."""
        if not self._safe.issuperset(event):
            for key in self._sensitive_keys(event):
                event[key] = REDACTED
        if not _CONTAINERS.isdisjoint(map(type, event.values())):
            for key, value in list(event.items()):
                if type(value) in _CONTAINERS:
                    event[key] = self.scrub(value)
        return event

    def scrub(self, value: Any, depth: int = 0) -> Any:
        """``value`` (a dict, list or tuple) with the values of sensitive dict keys in it replaced:
        a copy if anything was, ``value`` itself otherwise."""
        kind = type(value)
        if depth >= MAX_DEPTH:
            return value
        if kind is dict:
            return self._scrub_dict(value, depth)
        if (kind is list or kind is tuple) and not _CONTAINERS.isdisjoint(map(type, value)):
            items = [self.scrub(item, depth + 1) for item in value]
            if any(map(operator.is_not, items, value)):
                return kind(items)
        return value

    def _scrub_dict(self, value: dict[Any, Any], depth: int) -> dict[Any, Any]:
        secret = () if self._safe.issuperset(value) else self._sensitive_keys(value)
        if not secret and _CONTAINERS.isdisjoint(map(type, value.values())):
            return value  # the usual case: nothing to replace, nothing to look into
        copy: dict[Any, Any] | None = None
        for key, item in value.items():
            if key in secret:
                new = REDACTED
            elif type(item) in _CONTAINERS:
                new = self.scrub(item, depth + 1)
            else:
                continue
            if new is not item:
                if copy is None:
                    copy = dict(value)
                copy[key] = new
        return value if copy is None else copy

    def query(self, query: str) -> str:
        """A query string (``url.query``) with the values of sensitive parameters replaced by
        ``REDACTED``: every occurrence, the key kept as sent; ``query`` itself when none is."""
        if not query:
            return query
        sensitive = self._query_sensitive
        parts = query.split("&")
        changed = False
        for index, part in enumerate(parts):
            name, _, value = part.partition("=")
            if value and sensitive(name):
                parts[index] = f"{name}={URL_REDACTED}"
                changed = True
        return "&".join(parts) if changed else query

    def url(self, url: str) -> str:
        """A URL (``url.full``, a request target) with userinfo and the values of sensitive query
        parameters redacted, and those of the fragment (OAuth's implicit flow puts
        ``access_token=...`` there)."""
        if "@" in url:
            url = redact_userinfo(url)
        rest, hash_mark, fragment = url.partition("#")
        head, question_mark, query = rest.partition("?")
        return f"{head}{question_mark}{self.query(query)}{hash_mark}{self.query(fragment)}"


def redact_userinfo(url: str) -> str:
    """``scheme://user:pass@host...`` as ``scheme://REDACTED:REDACTED@host...`` (semantic conventions,
    ``url.full``: "username and password SHOULD be redacted"); anything else unchanged."""
    match = _USERINFO.match(url)
    if match is None:
        return url
    userinfo = f"{URL_REDACTED}:{URL_REDACTED}" if ":" in match[2] else URL_REDACTED
    return f"{match[1]}{userinfo}@{url[match.end() :]}"


@functools.lru_cache(maxsize=16)
def redactor_for(patterns: frozenset[str]) -> Redactor:
    """The redactor of a pattern set, shared (with its cached decisions) by every user of that set."""
    return Redactor(patterns)
