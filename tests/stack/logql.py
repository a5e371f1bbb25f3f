"""Enough LogQL to check the dashboards' and datasources' log queries statically: a parser for the
shapes they use (a stream selector, label filter and line filter stages), and the labels Loki makes
from the collector's OTLP logs.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

# What Loki 3.5 makes of OTLP logs with its defaults (loki/config.yaml keeps them): these resource
# attributes become index labels, dots to underscores (service.name -> service_name; the list is
# DefaultOTLPResourceAttributesAsIndexLabels in grafana/loki pkg/loghttp/push/otlp_config.go) ...
LOKI_INDEX_LABELS = frozenset(
    {"service_name", "service_namespace", "service_instance_id", "deployment_environment"}
)
# ... and these are structured metadata of each line (pkg/loghttp/push/otlp.go; detected_level from
# the distributor's level discovery), beside the log record's own attributes.
LOKI_STRUCTURED_METADATA = frozenset({"severity_text", "trace_id", "span_id", "detected_level"})


@dataclass(frozen=True)
class LogMatcher:
    label: str
    op: str  # "=", "!=", "=~", "!~"
    value: str  # unquoted


@dataclass(frozen=True)
class LogQuery:
    selector: tuple[LogMatcher, ...]  # the stream selector {...}: index labels
    filters: tuple[LogMatcher, ...]  # label filter stages | name op "value": labels or metadata
    line_filters: tuple[tuple[str, str], ...]  # (|= != |~ !~, text)


_LOGQL_STRING = r'"(?P<value>(?:[^"\\]|\\.)*)"'
_LOGQL_LABEL = r"(?P<label>[a-zA-Z_]\w*)\s*(?P<op>=~|!~|!=|=)\s*"
_LOGQL_MATCHER = re.compile(rf"\s*{_LOGQL_LABEL}{_LOGQL_STRING}\s*(?P<end>[,}}])")
_LOGQL_LABEL_FILTER = re.compile(rf"\s*\|\s*{_LOGQL_LABEL}{_LOGQL_STRING}")
_LOGQL_LINE_FILTER = re.compile(rf"\s*(?P<op>\|=|!=|\|~|!~)\s*{_LOGQL_STRING}")


def _unquote(value: str) -> str:
    return re.sub(r"\\(.)", r"\1", value)


def _matcher(match: re.Match[str]) -> LogMatcher:
    matcher = LogMatcher(match["label"], match["op"], _unquote(match["value"]))
    if matcher.op in ("=~", "!~"):
        try:  # LogQL's RE2 accepts less than Python's re, not more
            re.compile(matcher.value)
        except re.error as error:
            raise ValueError(f"bad regex {matcher.value!r}: {error}") from None
    return matcher


def parse_log_query(query: str) -> LogQuery:
    """A LogQL log query of the shapes the dashboards use: a stream selector, then label filter and
    line filter stages. Raises ValueError on anything else (a parser stage, a metric query): extend
    this when a dashboard needs more, so the static check keeps up with the dashboards."""
    text = query.strip()
    if not text.startswith("{"):
        raise ValueError(f"no stream selector: {query!r}")
    selector: list[LogMatcher] = []
    pos = 1
    while True:
        match = _LOGQL_MATCHER.match(text, pos)
        if match is None:
            raise ValueError(f"bad matcher at {text[pos:]!r} in {query!r}")
        selector.append(_matcher(match))
        pos = match.end()
        if match["end"] == "}":
            break
    rest = text[pos:]
    # Loki refuses a selector whose every matcher matches the empty string.
    if not any(
        (m.op == "=" and m.value) or (m.op == "=~" and re.fullmatch(m.value, "") is None)
        for m in selector
    ):
        raise ValueError(f"every matcher matches the empty string: {query!r}")
    filters: list[LogMatcher] = []
    lines: list[tuple[str, str]] = []
    pos = 0
    while rest[pos:].strip():
        stage = _LOGQL_LINE_FILTER.match(rest, pos)
        if stage is not None:
            lines.append((stage["op"], _unquote(stage["value"])))
        else:
            stage = _LOGQL_LABEL_FILTER.match(rest, pos)
            if stage is None:
                raise ValueError(f"unsupported stage at {rest[pos:]!r} in {query!r}")
            filters.append(_matcher(stage))
        pos = stage.end()
    return LogQuery(tuple(selector), tuple(filters), tuple(lines))
