"""Writing a rendered project by each file's rule: every file is decided in memory first and only
then written, so a refusal (a handler module that no longer parses, say) leaves the disk as it was.

The rules follow goctl's: the files made from the protos are rewritten on every run, the user's
files are written only when absent ("goctl only generates stub logic files if they don't already
exist. It never overwrites files in internal/logic/", https://go-zero.dev/community/faq/goctl).
Handler modules add one step: a stub for each RPC new since the last run is appended to their
class (:mod:`telemetry.scaffold.merge`).
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from telemetry.scaffold.errors import ScaffoldError
from telemetry.scaffold.merge import append_stubs
from telemetry.scaffold.model import Rpc, Service
from telemetry.scaffold.render import Planned


@dataclass
class Report:
    project: Path
    created: list[str] = field(default_factory=list)
    updated: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    appended: dict[str, tuple[str, ...]] = field(default_factory=dict)
    """Handler module -> the RPCs a stub was appended for."""
    warnings: list[str] = field(default_factory=list)

    def summary(self) -> str:
        lines = [f"{self.project}: {len(self.created)} files created, {len(self.updated)} updated, "
                 f"{len(self.kept)} of yours kept"]  # fmt: skip
        lines += [f"  {path}: stubs added for {', '.join(rpcs)}" for path, rpcs in self.appended.items()]
        if "main.py" in self.created:
            lines.append(
                f"next: cd {self.project} && python main.py  (python -m pytest, ruff check ., mypy)"
            )
        return "\n".join(lines)


def apply(
    project: Path,
    plan: Sequence[Planned],
    stub: Callable[[Rpc], str],
    previous: Collection[str] | None,
) -> Report:
    """Write ``plan`` into ``project``. ``previous``: the RPCs (full methods) of the last run, whose
    stubs are never offered again (a stub the user deleted stays deleted); None: offer every one."""
    report = Report(project)
    writes: dict[Path, bytes] = {}
    root = project.resolve()
    for item in plan:
        target = project / item.path
        if not target.resolve().is_relative_to(root):
            raise ScaffoldError(f"{item.path}: would be written outside {project}")
        _check_parents(project, target)
        data = item.content.encode() if isinstance(item.content, str) else item.content
        if not target.is_file():
            report.created.append(item.path)
            writes[target] = data
        elif item.policy == "generated":
            if target.read_bytes() != data:
                report.updated.append(item.path)
                writes[target] = data
        elif item.policy == "handlers" and item.service is not None:
            merged = _merge(target, item.path, item.service, stub, previous, report)
            if merged is not None:
                writes[target] = merged
        else:
            report.kept.append(item.path)
    for target, data in writes.items():
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
    return report


def _merge(
    target: Path,
    path: str,
    service: Service,
    stub: Callable[[Rpc], str],
    previous: Collection[str] | None,
    report: Report,
) -> bytes | None:
    """The handler module with stubs for the service's new RPCs, or None when it stays as it is."""
    offered = {
        rpc.name: stub(rpc)
        for rpc in service.rpcs
        if previous is None or rpc.full_method not in previous
    }
    merged = append_stubs(target.read_text(encoding="utf-8"), service.name, offered, path)
    if not merged.found:
        report.warnings.append(
            f"{path}: no class {service.name}, so no stub was added; its new RPCs answer "
            f"UNIMPLEMENTED (api.{service.base}) until a class there defines them"
        )
        return None
    current = {rpc.name for rpc in service.rpcs}
    for name in sorted(merged.defined & _names_of(service, previous) - current):
        report.warnings.append(
            f"{path}: {service.name}.{name} is no longer in the proto; nothing calls it"
        )
    if not merged.appended:
        report.kept.append(path)
        return None
    report.appended[path] = merged.appended
    return merged.text.encode()


def _check_parents(project: Path, target: Path) -> None:
    """Every directory on the way to ``target`` is one (or absent): found now, before any write."""
    for parent in target.relative_to(project).parents:
        if parent != Path() and (project / parent).exists() and not (project / parent).is_dir():
            raise ScaffoldError(f"{project / parent} is in the way: a file where a directory goes")
    if target.exists() and not target.is_file():
        raise ScaffoldError(f"{target} is in the way: not a file")


def _names_of(service: Service, previous: Collection[str] | None) -> set[str]:
    prefix = f"{service.full_name}/"
    return {m.removeprefix(prefix) for m in previous or () if m.startswith(prefix)}
