"""Adding stubs for new RPCs to a handler module the user owns, changing nothing else in it.

The module is parsed with :mod:`ast` only to find where its class ends; the stubs are then inserted
as text after that line, so every byte the user wrote (bodies, comments, formatting) stays as it
was. An RPC the class already defines, under any body, is never offered again.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping
from dataclasses import dataclass

from telemetry.scaffold.errors import ScaffoldError


@dataclass(frozen=True)
class Merged:
    text: str
    appended: tuple[str, ...]
    """The RPCs a stub was added for."""
    defined: frozenset[str]
    """The methods the class defines (after the merge)."""
    found: bool = True
    """False: the module has no such class (renamed or moved), and nothing was added."""


def append_stubs(text: str, class_name: str, stubs: Mapping[str, str], where: str) -> Merged:
    """``text`` with ``stubs`` (RPC name -> method text, indented for a class body) added at the
    end of the top-level class ``class_name``, but for the methods it defines already."""
    try:
        tree = ast.parse(text)
    except SyntaxError as exc:
        raise ScaffoldError(
            f"{where}:{exc.lineno}: cannot add stubs to it, it does not parse: {exc.msg}"
        ) from exc
    node = next((n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == class_name), None)
    if node is None:
        return Merged(text, (), frozenset(), found=False)
    defined = frozenset(_defined(node))
    missing = [name for name in stubs if name not in defined]
    if not missing:
        return Merged(text, (), defined)
    lines = text.splitlines(keepends=True)
    end = node.end_lineno or len(lines)
    head = "".join(lines[:end])
    if not head.endswith("\n"):
        head += "\n"
    first = node.body[0]
    # The class body's own indentation (four spaces for a body on the class's own line).
    indent = lines[first.lineno - 1][: first.col_offset] if first.lineno > node.lineno else "    "
    added = "".join("\n" + _reindent(stubs[name], indent) for name in missing)
    merged = head + added + "".join(lines[end:])
    try:
        ast.parse(merged)  # what was inserted is whole methods: the module still parses
    except SyntaxError as exc:  # a class body on its own line (class C: x = 1) has no room for them
        raise ScaffoldError(
            f"{where}:{node.lineno}: cannot add stubs to class {class_name}: write its body on the "
            "lines below the class statement"
        ) from exc
    return Merged(merged, tuple(missing), defined | set(missing))


def _defined(node: ast.ClassDef) -> list[str]:
    names = []
    for statement in node.body:
        if isinstance(statement, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
            names.append(statement.name)
        elif isinstance(statement, ast.Assign):  # Method = other_method
            names += [t.id for t in statement.targets if isinstance(t, ast.Name)]
        elif isinstance(statement, ast.AnnAssign) and isinstance(statement.target, ast.Name):
            names.append(statement.target.id)
    return names


def _reindent(method: str, indent: str) -> str:
    """``method`` (rendered for four spaces) for a class body indented with ``indent``."""
    if indent == "    ":
        return method
    return "".join(
        indent + line[4:] if line.startswith("    ") else line
        for line in method.splitlines(keepends=True)
    )
