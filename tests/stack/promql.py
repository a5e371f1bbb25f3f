"""Every PromQL expression of the demo stack's dashboards and rules, as queries Prometheus can run.

Grafana variables are replaced the way Grafana would with "All" selected (``$job`` becomes the
variable's ``allValue``, ``.+`` by default), and ``$__rate_interval``, ``$__interval`` and ``$__range``
become ``1m``. An alert contributes its signal, the expression without its final threshold
comparison (``x > 0.05`` -> ``x``): the signal returns data whether or not the alert fires.

The static tests parse every expression and check its metric names; the end-to-end test runs each
one against the native stack's Prometheus, except the compose-only ones: those that read nothing
but metrics the OpenTelemetry Collector makes (COLLECTOR_MADE: its own telemetry, and what its
connectors derive from traces), which only the Docker stack has. Targets of other data sources
(Loki's LogQL) are not PromQL: they are left out here and collected by log_queries() instead.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

DASHBOARDS = Path("grafana/dashboards")
RULES = Path("prometheus/rules")
DATASOURCES = Path("grafana/provisioning/datasources/datasources.yml")

# Metrics only the Docker stack has, by name prefix: the collector's own telemetry (otelcol_, job
# otel-collector) and what its spanmetrics and servicegraph connectors derive from traces. The
# native stack runs no collector, so its end-to-end test leaves out the expressions that read only
# these; the static checks still parse every expression and check its names (against the lists in
# test_observability_signals.py). An expression mixing them with the services' metrics is not
# compose-only: the native run would catch it.
COLLECTOR_MADE = ("otelcol_", "traces_span_metrics_", "traces_service_graph_")


def collector_made_only(query: str) -> bool:
    names = metric_names(query)
    return bool(names) and all(name.startswith(COLLECTOR_MADE) for name in names)


# What Grafana's built-in interval variables become; 1m matches the rules' windows and has data
# about 10s after the first scrape (5s scrape interval).
BUILTIN_VARIABLES = {
    "__rate_interval": "1m",
    "__interval": "1m",
    "__range": "1m",
    "__interval_ms": "60000",
    "__range_ms": "60000",
    "__range_s": "60",
}
# A selected "All" without an allValue becomes a regex of every value; this matches the same series.
ALL_VALUE = ".+"

COMPARISONS = frozenset({"==", "!=", ">=", "<=", ">", "<"})
SET_OPERATORS = frozenset({"and", "or", "unless"})
# Keywords followed by a parenthesised list of label names, not expressions.
LABEL_LIST_KEYWORDS = frozenset({"by", "without", "on", "ignoring", "group_left", "group_right"})
KEYWORDS = SET_OPERATORS | LABEL_LIST_KEYWORDS | {"bool", "offset", "atan2", "inf", "nan"}


@dataclass(frozen=True)
class Expr:
    source: str  # file and panel/rule, for messages: "governance.json: panel 'Breaker state' A"
    query: str  # runnable PromQL
    kind: str  # "panel", "variable" (a label_values() selector), "record", "alert" (its signal),
    # "annotation" (its signal), "logs" (LogQL of a Loki target, from log_queries())
    compose_only: bool = False  # reads only COLLECTOR_MADE metrics


@dataclass(frozen=True)
class Token:
    kind: str  # "ident", "number", "duration", "string", "op", "open", "close"
    text: str
    start: int
    end: int


_TOKEN = re.compile(
    r"""
    (?P<space>\s+|\#[^\n]*)
    | (?P<string>"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'|`[^`]*`)
    | (?P<duration>(?:\d+(?:ms|[smhdwy]))+(?![\w:]))
    | (?P<number>0[xX][0-9a-fA-F]+|(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)
    | (?P<ident>[a-zA-Z_:][a-zA-Z0-9_:]*)
    | (?P<op>==|!=|>=|<=|=~|!~|[-+*/%^<>=,@])
    | (?P<open>[(\[{])
    | (?P<close>[)\]}])
    """,
    re.VERBOSE,
)


def tokenize(query: str) -> list[Token]:
    """PromQL tokens, enough to find operators and metric names; raises ValueError on junk."""
    tokens: list[Token] = []
    pos = 0
    while pos < len(query):
        match = _TOKEN.match(query, pos)
        if match is None:
            raise ValueError(f"unexpected {query[pos]!r} at {pos} in {query!r}")
        kind = match.lastgroup
        assert kind is not None
        if kind != "space":
            tokens.append(Token(kind, match.group(), match.start(), match.end()))
        pos = match.end()
    return tokens


def _depths(tokens: list[Token]) -> list[int]:
    """Nesting depth of each token (brackets of any kind); raises ValueError when unbalanced."""
    depths: list[int] = []
    depth = 0
    for token in tokens:
        if token.kind == "close":
            depth -= 1
            if depth < 0:
                raise ValueError(f"unbalanced {token.text!r} at {token.start}")
        depths.append(depth)
        if token.kind == "open":
            depth += 1
    if depth:
        raise ValueError("unbalanced brackets")
    return depths


def _unwrap(query: str) -> str:
    """Drops parentheses around the whole expression: ``((x > 1))`` -> ``x > 1``."""
    query = query.strip()
    while query.startswith("("):
        tokens = tokenize(query)
        depths = _depths(tokens)
        closing = next(i for i, t in enumerate(tokens) if t.kind == "close" and depths[i] == 0)
        if closing != len(tokens) - 1:
            break
        query = query[1:-1].strip()
    return query


def strip_threshold(query: str) -> str:
    """The signal of an alert written ``<signal> <comparison> [bool] <threshold>``.

    The comparison must be the expression's top-level operator: comparisons bind tighter than
    ``and``/``or``/``unless``, so ``x > 1 and y`` has no threshold to strip (ValueError), while
    ``a * 2 >= 0.5`` and ``(x) != bool 4`` do. Comparisons inside parentheses, label matchers and
    strings are not top level.
    """
    query = _unwrap(query)
    tokens = tokenize(query)
    depths = _depths(tokens)
    top = [t for t, d in zip(tokens, depths, strict=True) if d == 0]
    if any(t.kind == "ident" and t.text.lower() in SET_OPERATORS for t in top):
        raise ValueError(f"top-level and/or/unless: not <signal> <comparison> <threshold>: {query!r}")
    comparisons = [t for t in top if t.kind == "op" and t.text in COMPARISONS]
    if not comparisons:
        raise ValueError(f"no top-level comparison in {query!r}")
    last = comparisons[-1]
    signal, threshold = query[: last.start].strip(), query[last.end :].strip()
    if not signal or not threshold or threshold.lower() == "bool":
        raise ValueError(f"not <signal> <comparison> <threshold>: {query!r}")
    return signal


def metric_names(query: str) -> set[str]:
    """Metric names selected by a query (recording rule names included), not functions or labels."""
    tokens = tokenize(query)
    _depths(tokens)
    names: set[str] = set()
    i = 0
    while i < len(tokens):
        token = tokens[i]
        following = tokens[i + 1] if i + 1 < len(tokens) else None
        if token.kind == "open" and token.text in "{[":
            i = _skip_group(tokens, i)  # label matchers, range or subquery durations
            continue
        if token.kind == "ident":
            word = token.text.lower()
            if word in LABEL_LIST_KEYWORDS and following is not None and following.text == "(":
                i = _skip_group(tokens, i + 1)
                continue
            # A function call, or an aggregation with its grouping first: sum by (job) (x).
            is_call = following is not None and (
                following.text == "(" or following.text.lower() in ("by", "without")
            )
            if not is_call and word not in KEYWORDS:
                names.add(token.text)
        i += 1
    return names


def _skip_group(tokens: list[Token], opening: int) -> int:
    """Index after the bracket group opening at ``opening``."""
    depth = 0
    for i in range(opening, len(tokens)):
        if tokens[i].kind == "open":
            depth += 1
        elif tokens[i].kind == "close":
            depth -= 1
            if depth == 0:
                return i + 1
    raise ValueError("unbalanced brackets")


_VARIABLE = re.compile(r"\$\{(\w+)(?::[^}]*)?\}|\[\[(\w+)(?::[^\]]*)?\]\]|\$(\w+)")


def substitute(query: str, variables: Mapping[str, str]) -> str:
    """Replaces Grafana variables (``$x``, ``${x}``, ``${x:regex}``, ``[[x]]``) and built-ins.

    ``$1`` (a label_replace back-reference) stays; any other unknown variable raises KeyError.
    """

    def replace(match: re.Match[str]) -> str:
        name = match.group(1) or match.group(2) or match.group(3)
        if name in BUILTIN_VARIABLES:
            return BUILTIN_VARIABLES[name]
        if name in variables:
            return variables[name]
        if name.isdigit():
            return match.group()
        raise KeyError(f"unknown Grafana variable ${name} in {query!r}")

    return _VARIABLE.sub(replace, query)


def dashboard_variables(dashboard: Mapping[str, Any]) -> dict[str, str]:
    """The value of each templating variable with "All" selected where the variable offers it."""
    values: dict[str, str] = {}
    for variable in dashboard.get("templating", {}).get("list", []):
        name = variable["name"]
        if variable.get("includeAll"):
            values[name] = variable.get("allValue") or ALL_VALUE
            continue
        current = variable.get("current", {}).get("value")
        if isinstance(current, list):
            current = "|".join(str(v) for v in current)
        if not current and variable.get("type") in ("custom", "constant"):
            current = str(variable.get("query", "")).split(",")[0].strip()
        values[name] = str(current or "")
    return values


def _variable_query(variable: Mapping[str, Any]) -> str | None:
    """The PromQL inside a query variable: the selector of label_values(), or query_result()'s."""
    if variable.get("type") != "query":
        return None
    query = variable.get("query")
    if isinstance(query, Mapping):
        query = query.get("query")
    if not isinstance(query, str):
        return None
    query = query.strip()
    values = re.fullmatch(r"label_values\((.+),\s*\w+\)", query, re.DOTALL)
    if values is not None:
        return values.group(1).strip()
    result = re.fullmatch(r"query_result\((.+)\)", query, re.DOTALL)
    return result.group(1).strip() if result is not None else None


def panels(items: list[Any]) -> Iterator[Mapping[str, Any]]:
    """Every panel of a dashboard's ``panels``, with those nested in rows."""
    for panel in items:
        yield panel
        yield from panels(panel.get("panels", []))  # rows keep their panels here when collapsed


def load_dashboard(path: Path) -> dict[str, Any]:
    board = json.loads(path.read_text())
    if not isinstance(board, dict):
        raise TypeError(f"{path}: not a JSON object")
    return board


_DATASOURCE_VARIABLE = re.compile(r"\$\{?(\w+)\}?")


def datasource_type(reference: Any, board: Mapping[str, Any]) -> str:
    """The type of the data source a panel, target, variable or annotation refers to: the default
    (Prometheus, provisioned with isDefault) when there is no reference, the ``type`` of a
    ``{"type": ..., "uid": ...}`` reference, the type a ``${variable}`` of type datasource selects,
    else the uid or name as it is ("prometheus", "loki", "-- Grafana --")."""
    if reference is None:
        return "prometheus"
    if isinstance(reference, Mapping):
        if reference.get("type"):
            return str(reference["type"])
        reference = reference.get("uid")
        if reference is None:
            return "prometheus"
    text = str(reference)
    variable = _DATASOURCE_VARIABLE.fullmatch(text)
    if variable is not None:
        for item in board.get("templating", {}).get("list", []):
            if item.get("type") == "datasource" and item.get("name") == variable.group(1):
                return str(item.get("query", ""))
        raise KeyError(f"data source {text}: no datasource variable {variable.group(1)!r}")
    return text.lower()


def _target_datasource(panel: Mapping[str, Any], target: Mapping[str, Any]) -> Any:
    # A target's own data source wins (a "-- Mixed --" panel has one per target).
    return target.get("datasource") or panel.get("datasource")


def dashboard_expressions(path: Path) -> list[Expr]:
    """The PromQL of a dashboard: its query variables, Prometheus panel targets and annotations.
    Targets of other data sources (Loki) are left out: see log_queries()."""
    board = load_dashboard(path)
    variables = dashboard_variables(board)
    found: list[Expr] = []
    for variable in board.get("templating", {}).get("list", []):
        query = _variable_query(variable)
        if query is not None and datasource_type(variable.get("datasource"), board) == "prometheus":
            found.append(
                Expr(
                    f"{path.name}: variable ${variable['name']}",
                    substitute(query, variables),
                    "variable",
                    collector_made_only(query),
                )
            )
    for panel in panels(board.get("panels", [])):
        for target in panel.get("targets", []):
            expr = target.get("expr")
            if expr is None:
                continue
            if datasource_type(_target_datasource(panel, target), board) != "prometheus":
                continue
            source = f"{path.name}: panel {panel.get('title', '')!r} {target.get('refId', '')}"
            query = substitute(expr, variables)
            found.append(Expr(source, query, "panel", collector_made_only(query)))
    for annotation in board.get("annotations", {}).get("list", []):
        expr = annotation.get("expr")
        if expr is None or datasource_type(annotation.get("datasource"), board) != "prometheus":
            continue
        # Events where the signal passes its threshold: check the signal.
        source = f"{path.name}: annotation {annotation.get('name', '')!r} (signal)"
        signal = strip_threshold(substitute(expr, variables))
        found.append(Expr(source, signal, "annotation", collector_made_only(signal)))
    return found


def log_queries(path: Path) -> list[Expr]:
    """The LogQL of a dashboard's Loki panel targets, variables substituted as for PromQL."""
    board = load_dashboard(path)
    variables = dashboard_variables(board)
    found: list[Expr] = []
    for panel in panels(board.get("panels", [])):
        for target in panel.get("targets", []):
            if datasource_type(_target_datasource(panel, target), board) != "loki":
                continue
            source = f"{path.name}: panel {panel.get('title', '')!r} {target.get('refId', '')}"
            found.append(Expr(source, substitute(target.get("expr", ""), variables), "logs"))
    return found


def rule_expressions(path: Path) -> list[Expr]:
    document = yaml.safe_load(path.read_text()) or {}
    found: list[Expr] = []
    for group in document.get("groups", []):
        for rule in group.get("rules", []):
            if "record" in rule:
                found.append(
                    Expr(f"{path.name}: record {rule['record']}", rule["expr"].strip(), "record")
                )
            else:
                signal = strip_threshold(rule["expr"])
                found.append(Expr(f"{path.name}: alert {rule['alert']} (signal)", signal, "alert"))
    return found


def rule_files(repo_root: Path) -> list[Path]:
    return sorted((repo_root / RULES).glob("*.yml"))


def dashboard_files(repo_root: Path) -> list[Path]:
    return sorted((repo_root / DASHBOARDS).glob("*.json"))


def all_expressions(repo_root: Path, *, compose_only: bool = False) -> list[Expr]:
    """Every PromQL expression of the rules and dashboards that the native stack can answer; with
    ``compose_only``, also those that read only COLLECTOR_MADE metrics (for the static checks)."""
    found: list[Expr] = []
    for rules in rule_files(repo_root):
        found.extend(rule_expressions(rules))
    for dashboard in dashboard_files(repo_root):
        found.extend(e for e in dashboard_expressions(dashboard) if compose_only or not e.compose_only)
    return found


def all_log_queries(repo_root: Path) -> list[Expr]:
    return [query for dashboard in dashboard_files(repo_root) for query in log_queries(dashboard)]


def datasource_uids(dashboard: Any) -> set[str]:
    """Every data source a dashboard refers to, anywhere (panels, targets, annotations, templating):
    the uid of ``{"type": ..., "uid": ...}`` references, and plain strings as they are (a legacy
    name, or a ``${variable}``)."""
    found: set[str] = set()
    if isinstance(dashboard, Mapping):
        for key, value in dashboard.items():
            if key == "datasource":
                if isinstance(value, Mapping) and value.get("uid") is not None:
                    found.add(str(value["uid"]))
                elif isinstance(value, str):
                    found.add(value)
            found |= datasource_uids(value)
    elif isinstance(dashboard, list):
        for item in dashboard:
            found |= datasource_uids(item)
    return found


def provisioned_datasources(repo_root: Path) -> dict[str, Mapping[str, Any]]:
    """Provisioned data sources by uid."""
    document = yaml.safe_load((repo_root / DATASOURCES).read_text()) or {}
    return {str(source["uid"]): source for source in document.get("datasources", []) if "uid" in source}


def provisioned_uids(repo_root: Path) -> set[str]:
    return set(provisioned_datasources(repo_root))


def run_promtool(promtool: str, *args: str | Path) -> None:
    """``promtool ARGS`` succeeds, or the assertion shows what it printed."""
    done = subprocess.run(
        [promtool, *map(str, args)], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, f"promtool {' '.join(map(str, args))}:\n{done.stdout}\n{done.stderr}"
