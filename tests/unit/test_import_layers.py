"""The package's layers, checked on its real import graph (grimp, the graph behind import-linter).

* no module imports itself back through others, and no two packages import each other: each
  layer can be read, tested and changed knowing only the layers below it;
* the governance algorithms and engine are pure: they import nothing of the chain (rpc, tracing,
  logging, metrics, the handle), and import in a process where grpc cannot be imported at all.
"""

from __future__ import annotations

import subprocess
import sys

import grimp
import pytest

PACKAGE = "telemetry"
# What the pure governance layer may use besides itself: shared helpers with no grpc in them.
GOVERNANCE_MAY_IMPORT = (
    "telemetry.governance",
    "telemetry.method_names",
    "telemetry.config",
    "telemetry._validation",
    "telemetry.backoff",
)


@pytest.fixture(scope="module")
def graph() -> grimp.ImportGraph:
    return grimp.build_graph(PACKAGE)


def _unit(module: str) -> str:
    """The first level under the package: ``telemetry.rpc``, ``telemetry.handle`` ..."""
    return ".".join(module.split(".")[:2])


def _in_cycles(edges: dict[str, set[str]]) -> list[str]:
    """The nodes on some cycle or downstream-blocked by one: what Kahn's topological sort cannot
    peel off (an empty list: the graph has no cycle)."""
    remaining = {node: set(targets) for node, targets in edges.items()}
    for targets in edges.values():
        for target in targets:
            remaining.setdefault(target, set())
    leaves = [node for node, targets in remaining.items() if not targets]
    importers: dict[str, set[str]] = {}
    for node, targets in remaining.items():
        for target in targets:
            importers.setdefault(target, set()).add(node)
    while leaves:
        leaf = leaves.pop()
        for importer in importers.get(leaf, ()):
            targets = remaining[importer]
            targets.discard(leaf)
            if not targets:
                leaves.append(importer)
        remaining.pop(leaf, None)
    return sorted(node for node, targets in remaining.items() if targets)


def _module_edges(graph: grimp.ImportGraph) -> dict[str, set[str]]:
    return {m: set(graph.find_modules_directly_imported_by(m)) for m in graph.modules}


def test_no_module_imports_itself_back(graph: grimp.ImportGraph) -> None:
    assert _in_cycles(_module_edges(graph)) == []


def test_no_two_packages_import_each_other(graph: grimp.ImportGraph) -> None:
    edges: dict[str, set[str]] = {}
    for module, imported in _module_edges(graph).items():
        for other in imported:
            if other != PACKAGE and _unit(module) != _unit(other) and module != PACKAGE:
                edges.setdefault(_unit(module), set()).add(_unit(other))
    stuck = _in_cycles(edges)
    assert stuck == [], "\n".join(
        f"{m} -> {o}"
        for m in sorted(graph.modules)
        for o in sorted(graph.find_modules_directly_imported_by(m))
        if _unit(m) in stuck and _unit(o) in stuck and _unit(m) != _unit(o)
    )


def test_governance_imports_nothing_of_the_chain(graph: grimp.ImportGraph) -> None:
    leaks = sorted(
        f"{module} -> {other}"
        for module in graph.modules
        if module.startswith("telemetry.governance")
        for other in graph.find_modules_directly_imported_by(module)
        if not other.startswith(GOVERNANCE_MAY_IMPORT)
    )
    assert leaks == []


def test_governance_imports_where_grpc_cannot() -> None:
    script = (
        "import pkgutil, sys\n"
        "sys.modules['grpc'] = None  # any import of grpc now raises ImportError\n"
        "import telemetry.governance as governance\n"
        "for info in pkgutil.walk_packages(governance.__path__, 'telemetry.governance.'):\n"
        "    __import__(info.name)\n"
        "rules = {'server': {'methods': {'*': {'rate_limit': {'limit': 5}}}}}\n"
        "gov = governance.Governance(rules, cpu=lambda: 0.0)\n"
        "print(sorted(m for m in sys.modules if m.startswith('telemetry.governance')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=False
    )
    assert result.returncode == 0, result.stderr
    assert "telemetry.governance.breaker" in result.stdout
