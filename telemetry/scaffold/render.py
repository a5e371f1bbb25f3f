"""A project's files, rendered from the Jinja2 templates next to this module, each with the rule
that decides whether a later run may write it (see :mod:`telemetry.scaffold.writer`)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from telemetry.scaffold.errors import ScaffoldError
from telemetry.scaffold.model import Model, Rpc, Service
from telemetry.scaffold.names import import_block

TEMPLATES = Path(__file__).resolve().parent / "templates"
LINE_LENGTH = 100
"""The generated project's line length (its pyproject.toml says the same to ruff)."""

Policy = Literal["generated", "once", "handlers"]
"""``generated``: rewritten by every run; ``once``: written when absent, then the user's;
``handlers``: written when absent, then only appended to (a stub per new RPC)."""

API_NAMES = frozenset(
    {"annotations", "Any", "AsyncIterator", "Iterator", "Never", "grpc", "Runtime", "Context", "Stream",
     "NOT_WRITTEN", "SERVICES", "not_written", "google"}
)  # fmt: skip
"""The names the ``api`` template defines or imports: no message alias may take one."""

ENVIRONMENTS: dict[str, dict[str, Any]] = {
    "dev": {"comment": "in development: loopback, a local etcd if one runs, every trace sampled.",
            "host": "127.0.0.1", "metrics_port": 0, "etcd": "127.0.0.1:2379", "log_level": "info",
            "ratio": 1.0},
    "prod": {"comment": "deployed: every interface, the stack's etcd, one trace in ten sampled.",
             "host": "0.0.0.0", "metrics_port": 9464, "etcd": "etcd:2379", "log_level": "info",
             "ratio": 0.1},
}  # fmt: skip

_ONCE = {
    "main.py": "main.py",
    "pyproject.toml": "pyproject.toml",
    "README.md": "README.md",
    "Dockerfile": "Dockerfile",
    "compose.yaml": "compose.yaml",
    ".dockerignore": "dockerignore",
    ".gitignore": "gitignore",
    "{name}/__init__.py": "package_init.py",
    "{name}/config.py": "config.py",
    "{name}/runtime.py": "runtime.py",
    "{name}/server.py": "server.py",
    "{name}/handlers/__init__.py": "handlers_init.py",
    "tests/conftest.py": "conftest.py",
    "tests/test_rpcs.py": "test_rpcs.py",
    "tests/test_config.py": "test_config.py",
}
"""The user's files once written: output path -> template (without ``.jinja``)."""

_MULTICALLABLES = {
    "unary_unary": "UnaryUnaryMultiCallable",
    "unary_stream": "UnaryStreamMultiCallable",
    "stream_unary": "StreamUnaryMultiCallable",
    "stream_stream": "StreamStreamMultiCallable",
}


@dataclass(frozen=True)
class Planned:
    path: str
    """Relative to the project, with ``/``."""
    content: str | bytes
    policy: Policy
    service: Service | None = None
    """For ``handlers``: the service whose handler module this is."""


@dataclass(frozen=True)
class Options:
    name: str
    aio: bool
    compose_context: str
    """The build context as the stack's compose file sees it."""
    compose_file: str
    """This project's compose.yaml as a path from the stack's root."""
    versions: dict[str, Any] = field(default_factory=dict)
    """``grpc_version``, ``protobuf_version``, ``protobuf_major``, ``telemetry_version``."""


def wrap(indent: int, opening: str, inner: str, closing: str, after: str = "") -> str:
    """``opening inner closing`` on one line if it fits (with ``after``, which follows on that
    line), else ``inner`` on a line of its own between them: ruff format's layout of a bracket."""
    line = f"{opening}{inner}{closing}"
    if indent + len(line) + len(after) <= LINE_LENGTH:
        return line
    pad = " " * indent
    return f"{opening}\n{pad}    {inner}\n{pad}{closing}"


def assign(name: str, value: str) -> str:
    """``name = value``, the value parenthesized on a line of its own if that makes it fit, as
    ruff format would."""
    line = f"{name} = {value}"
    if len(line) <= LINE_LENGTH or len(value) + 4 > LINE_LENGTH:
        return line
    return f"{name} = (\n    {value}\n)"


class Renderer:
    def __init__(self, model: Model, options: Options) -> None:
        try:
            import jinja2
        except ImportError:
            raise ScaffoldError(
                "Jinja2 is not installed: install this package with its scaffold extra "
                "(pip install -e '<this repository>[scaffold]'; README, Install in your own project)"
            ) from None
        self._env = jinja2.Environment(
            loader=jinja2.FileSystemLoader(TEMPLATES),
            undefined=jinja2.StrictUndefined,  # a misspelt variable fails, never renders as ""
            keep_trailing_newline=True,
            trim_blocks=True,
            lstrip_blocks=True,
            autoescape=False,  # Python, YAML and TOML, never HTML
        )
        self._env.globals.update(
            assign=assign, wrap=wrap, multicallable=lambda rpc: _MULTICALLABLES[rpc.kind]
        )
        self._model = model
        self._options = options
        self._first_party = {options.name, *model.stub_packages()}
        self._context: dict[str, Any] = {
            "name": options.name,
            "aio": options.aio,
            "prefix": options.name.upper() + "_",
            "model": model,
            "proto_list": ", ".join(model.targets),
            "compose_context": options.compose_context,
            "compose_file": options.compose_file,
            **options.versions,
        }

    def render(self, template: str, **extra: Any) -> str:
        return self._env.get_template(f"{template}.jinja").render(**self._context, **extra)

    def stub(self, rpc: Rpc) -> str:
        """One RPC's stub method, as a handler module's class body has it."""
        return self.render("stub.py", rpc=rpc).strip("\n") + "\n"

    def plan(self) -> list[Planned]:
        name = self._options.name
        api = self.render("api.py", imports=self._api_imports())
        routes = self.render("routes.py", imports=self._routes_imports())
        files = [
            Planned(f"{name}/_generated/__init__.py", _GENERATED_INIT, "generated"),
            Planned(f"{name}/_generated/api.py", api, "generated"),
            Planned(f"{name}/_generated/routes.py", routes, "generated"),
        ]
        files += self._grpc_types()
        for env, settings in ENVIRONMENTS.items():
            files.append(Planned(f"conf/{env}.yaml", self.render("conf.yaml", env=settings), "once"))
        files += [
            Planned(path.format(name=name), self.render(template), "once")
            for path, template in _ONCE.items()
        ]
        files += [
            Planned(f"{name}/handlers/{service.module}.py", self.render("handler.py", service=service),
                    "handlers", service)
            for service in self._model.services
        ]  # fmt: skip
        return files

    def _grpc_types(self) -> list[Planned]:
        """A typed ``.pyi`` next to each ``_pb2_grpc.py`` module that serves a service."""
        by_file: dict[str, list[Service]] = {}
        for service in self._model.services:
            by_file.setdefault(service.grpc_module, []).append(service)
        planned = []
        for module, services in by_file.items():
            messages = {m.module for s in services for rpc in s.rpcs for m in (rpc.request, rpc.reply)}
            imports = self._imports(["typing:Any", "grpc", *messages])
            text = self.render(
                "pb2_grpc.pyi", proto=services[0].proto, services=services, imports=imports
            )
            planned.append(Planned(module.replace(".", "/") + ".pyi", text, "generated"))
        return planned

    def _api_imports(self) -> str:
        aio = self._options.aio
        return self._imports(
            ["__future__:annotations", "typing:Never", "grpc", f"{self._options.name}.runtime:Runtime",
             "collections.abc:AsyncIterator" if aio else "collections.abc:Iterator",
             *(["typing:Any"] if aio else []),
             *(m.module for m in self._model.messages),
             *(s.grpc_module for s in self._model.services)]
        )  # fmt: skip

    def _routes_imports(self) -> str:
        name = self._options.name
        return self._imports(
            ["__future__:annotations", "grpc", f"{name}._generated:api", f"{name}.runtime:Runtime",
             *(s.grpc_module for s in self._model.services),
             *(f"{name}.handlers.{s.module}" for s in self._model.services)]
        )  # fmt: skip

    def _imports(self, items: Iterable[str]) -> str:
        return import_block(items, self._first_party, line_length=LINE_LENGTH)


_GENERATED_INIT = '"""Generated by `telemetry new`: rewritten by `telemetry regen`, do not edit."""\n'
