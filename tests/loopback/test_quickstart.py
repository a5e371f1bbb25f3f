"""The README's example end to end, as separate processes: one trace across loadgen -> order (aio)
-> inventory (sync) reaches the OTLP receiver through the real exporter, and each service's log file
has lines carrying that trace id."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_quickstart_example_runs_end_to_end(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "examples/quickstart/run.py",
            "--duration",
            "3",
            "--rate",
            "20",
            "--workdir",
            str(tmp_path),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    spans = [json.loads(line) for line in (tmp_path / "spans.jsonl").read_text().splitlines()]
    by_trace: dict[str, list[dict[str, object]]] = {}
    for span in spans:
        by_trace.setdefault(str(span["trace_id"]), []).append(span)
    complete = [
        (trace_id, group)
        for trace_id, group in by_trace.items()
        if {s["service_name"] for s in group} == {"loadgen", "order", "inventory"}
    ]
    assert complete, f"no trace spans all three services: {sorted(by_trace)[:3]}"
    trace_id, group = complete[0]
    names = {s["name"] for s in group}
    assert {"shop.v1.Order/PlaceOrder", "shop.v1.Inventory/Reserve", "db.select stock"} <= names
    ids = {s["span_id"] for s in group}
    assert all(s["parent_span_id"] in ids for s in group if s["name"] != "place order")
    for service in ("order", "inventory"):
        lines = [
            json.loads(line)
            for line in (tmp_path / "logs" / f"{service}.log").read_text().splitlines()
            if line.startswith("{")
        ]
        mine = [line for line in lines if line.get("trace_id") == trace_id]
        assert any(line["event"] == "finished call" for line in mine), service
        assert all(line["service"] == service for line in mine)
    # The first request, and every 20th, is invalid: the server logs it, the client sees it.
    order_lines = (tmp_path / "logs" / "order.log").read_text()
    assert '"grpc.code":"InvalidArgument"' in order_lines
    assert "'INVALID_ARGUMENT'" in result.stdout
