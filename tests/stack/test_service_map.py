"""The service map dashboard: its node graphs have the shape Grafana's node graph reads, and on the
native stack the map from the services' gRPC client metrics draws the demo shop's real call graph.

Grafana's node graph (public/app/plugins/panel/nodeGraph/utils.ts) takes frames named, or with the
refId, ``nodes`` and ``edges``; an edges frame is one with a ``source`` field; it reads fields by
name: ``id`` (both), ``source`` and ``target`` (edges), ``mainstat`` (the number shown). A
Prometheus table puts each label in a field of its name, so the queries shape the labels, and a
calculated field named ``mainstat`` carries the value (renaming a field only changes its display
name, which the node graph does not read).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from services.stack import NativeStack
from stack.promql import load_dashboard, panels, substitute
from stack.stackhttp import prometheus
from telemetry.testing._poll import poll

ROOT = Path(__file__).resolve().parents[2]
BOARD = ROOT / "grafana/dashboards/service-map.json"

# The demo shop's gRPC calls (services/gateway.py, services/order.py): caller job -> called job.
DEMO_EDGES = {
    ("gateway", "order"),
    ("gateway", "inventory"),
    ("order", "inventory"),
    ("order", "payment"),
    ("order", "recommendation"),
    ("order", "notification"),
}


def node_graphs() -> list[Mapping[str, Any]]:
    return [p for p in panels(load_dashboard(BOARD)["panels"]) if p["type"] == "nodeGraph"]


def targets(panel: Mapping[str, Any]) -> dict[str, Mapping[str, Any]]:
    return {target["refId"]: target for target in panel["targets"]}


def test_node_graphs_have_the_shape_grafana_reads() -> None:
    graphs = node_graphs()
    assert len(graphs) == 2  # from the gRPC client metrics, and from traces
    for panel in graphs:
        found = targets(panel)
        assert set(found) == {"nodes", "edges"}, panel["title"]
        for target in found.values():
            # One row per node or edge, now: an instant query as a table.
            assert target["format"] == "table" and target["instant"] is True, panel["title"]
            assert target["datasource"] == {"type": "prometheus", "uid": "prometheus"}
        # The labels a node graph reads come from the queries themselves.
        assert (
            "label_join(" in found["edges"]["expr"]
            and '"id", " -> ", "source", "target"' in (found["edges"]["expr"])
        )
        assert found["edges"]["expr"].count("sum by (source, target)") == 1
        assert all(part.startswith("sum by (id)") for part in found["nodes"]["expr"].split(" or "))
        [calculated] = panel["transformations"]
        assert calculated["id"] == "calculateField"
        assert calculated["options"]["alias"] == "mainstat"
        assert calculated["options"]["mode"] == "reduceRow"
        assert calculated["options"]["replaceFields"] is False


def _query(stack: NativeStack, expr: str) -> list[dict[str, Any]]:
    result: list[dict[str, Any]] = prometheus(
        stack.prometheus_url, "/api/v1/query", query=substitute(expr, {})
    )["result"]
    return result


def test_the_map_from_client_metrics_draws_the_shops_call_graph(stack: NativeStack) -> None:
    [panel] = [p for p in node_graphs() if "traces_service_graph" not in p["targets"][0]["expr"]]
    found = targets(panel)

    [table] = [p for p in panels(load_dashboard(BOARD)["panels"]) if p["type"] == "table"]
    services = {end for edge in DEMO_EDGES for end in edge}

    def drawn(result: list[dict[str, Any]]) -> set[tuple[str, str]]:
        return {(row["metric"]["source"], row["metric"]["target"]) for row in result}

    def read() -> tuple[list[dict[str, Any]], list[dict[str, Any]], list[list[dict[str, Any]]]]:
        return (
            _query(stack, found["edges"]["expr"]),
            _query(stack, found["nodes"]["expr"]),
            [_query(stack, target["expr"]) for target in table["targets"]],
        )

    def complete(answers: tuple[Any, Any, list[Any]]) -> bool:
        edges, nodes, rows = answers
        ids = {row["metric"]["id"] for row in nodes}
        return drawn(edges) >= DEMO_EDGES and ids >= services and all(drawn(r) for r in rows)

    # Every edge and node of the shop, once the load generator has driven each call a few times
    # and Prometheus has two scrapes of each side.
    edges, nodes, rows = poll(read, complete, 90.0, "the shop's call graph", interval=1.0)
    assert drawn(edges) == DEMO_EDGES, "an edge the shop does not make"
    for row in edges:
        # Exactly the fields an edge needs, with a unique id and a rate.
        assert set(row["metric"]) == {"id", "source", "target"}, row
        assert row["metric"]["id"] == f"{row['metric']['source']} -> {row['metric']['target']}"
        assert float(row["value"][1]) > 0, row
    ids = [row["metric"]["id"] for row in nodes]
    assert all(set(row["metric"]) == {"id"} for row in nodes)
    assert len(ids) == len(set(ids)), "a node twice"
    # The table under the map: rate, error ratio (0 when none failed) and p99 of each edge.
    for target, answer in zip(table["targets"], rows, strict=True):
        assert drawn(answer) <= DEMO_EDGES, (target["refId"], sorted(drawn(answer)))
        assert all(set(row["metric"]) == {"source", "target"} for row in answer)
