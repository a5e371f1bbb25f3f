"""Names in a generated project: the project's own, module names from .proto paths, and import
blocks laid out exactly as ruff's isort rules want them, so a new project passes ``ruff check``
with no edit."""

from __future__ import annotations

import keyword
import re
import sys
from collections.abc import Collection, Iterable

from telemetry.scaffold.errors import ScaffoldError

# Modules every generated project imports: a package of the same name would shadow them.
PROJECT_IMPORTS = frozenset(
    {"grpc", "google", "telemetry", "yaml", "grpc_health", "grpc_reflection", "grpc_tools", "pytest",
     "main", "tests", "conftest", "protos", "conf"}
)  # fmt: skip


MAX_NAME = 32
"""Longer project names would push generated lines past the line length."""


def check_project_name(name: str) -> None:
    """The project's name is its Python package's: an identifier that shadows no module it uses."""
    if len(name) > MAX_NAME:
        raise ScaffoldError(f"{name!r} is not a valid name: it is longer than {MAX_NAME} characters")
    if not name.isidentifier() or not name.isascii():
        raise ScaffoldError(
            f"{name!r} is not a valid name: it names the project's Python package, so it must be an "
            "identifier (ASCII letters, digits and _, not starting with a digit), e.g. 'shop'"
        )
    if keyword.iskeyword(name) or keyword.issoftkeyword(name):
        raise ScaffoldError(f"{name!r} is not a valid name: it is a Python keyword")
    if name in sys.stdlib_module_names or name in PROJECT_IMPORTS:
        raise ScaffoldError(
            f"{name!r} is not a valid name: the project's package would shadow the module {name!r}"
        )


def snake_case(name: str) -> str:
    """``PaymentGateway`` -> ``payment_gateway``, ``HTTPProxy`` -> ``http_proxy``."""
    spaced = re.sub(r"([A-Z]+)([A-Z][a-z])", r"\1_\2", name)
    return re.sub(r"([a-z\d])([A-Z])", r"\1_\2", spaced).lower()


def pb2_module(proto_name: str, suffix: str = "_pb2") -> str:
    """The module protoc's Python generator makes of a .proto path (``a/b-c.proto`` -> ``a.b_c_pb2``)."""
    stem = proto_name.removesuffix(".proto").replace("-", "_")
    module = stem.replace("/", ".") + suffix
    if not all(part.isidentifier() and not keyword.iskeyword(part) for part in module.split(".")):
        raise ScaffoldError(
            f"{proto_name}: Python cannot import the module {module!r} protoc makes of this path; "
            "rename the file or its directories"
        )
    return module


def natural(text: str) -> str:
    """A sort key ordering as ruff's isort does: case-insensitive, numbers by value (v2 < v10)."""
    return re.sub(r"\d+", lambda m: m.group().zfill(12), text.lower())


def _member_key(name: str) -> tuple[int, str]:
    # isort's order-by-type: CONSTANTS, then Classes, then everything else.
    kind = 0 if name.isupper() and len(name) > 1 else 1 if name[:1].isupper() else 2
    return kind, natural(name)


def import_block(imports: Iterable[str], first_party: Collection[str], line_length: int = 100) -> str:
    """The import statements for ``imports`` (``"a.b"``: ``import a.b``; ``"a.b:c"``: ``from a.b
    import c``), in sections (future, standard library, third party, first party), each with the
    plain imports first, then the from-imports, one statement per module (wrapped in parentheses,
    a name a line, when longer than ``line_length``)."""
    sections: dict[int, tuple[set[str], dict[str, set[str]]]] = {}
    for item in imports:
        module, _, member = item.partition(":")
        top = module.split(".")[0]
        section = (
            0 if top == "__future__" else 1 if top in sys.stdlib_module_names
            else 3 if top in first_party else 2
        )  # fmt: skip
        plain, froms = sections.setdefault(section, (set(), {}))
        if member:
            froms.setdefault(module, set()).add(member)
        else:
            plain.add(module)
    blocks = []
    for _, (plain, froms) in sorted(sections.items()):
        lines = [f"import {module}" for module in sorted(plain, key=natural)]
        lines += [
            _from_import(module, sorted(froms[module], key=_member_key), line_length)
            for module in sorted(froms, key=natural)
        ]
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks)


def _from_import(module: str, members: list[str], line_length: int) -> str:
    line = f"from {module} import {', '.join(members)}"
    if len(line) <= line_length:
        return line
    return f"from {module} import (\n" + "".join(f"    {member},\n" for member in members) + ")"


def pascal(text: str) -> str:
    """``acme.shop.v1`` -> ``AcmeShopV1``: a qualifier for names that would otherwise collide."""
    return "".join(part[:1].upper() + part[1:] for part in re.split(r"[._]", text) if part)
