"""The services of a compiled .proto as a project needs them: each RPC's kind and the Python names
of its request and reply types, resolved through the descriptors (imports, nested messages, nested
packages and the well-known types alike)."""

from __future__ import annotations

import keyword
import sys
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass

from google.protobuf import descriptor_pb2

from telemetry.scaffold.errors import ScaffoldError
from telemetry.scaffold.names import PROJECT_IMPORTS, pascal, pb2_module, snake_case
from telemetry.scaffold.protos import Compiled

# Attributes the generated base class gives every handler: an RPC may not take these names.
HANDLER_ATTRIBUTES = frozenset({"runtime"})


@dataclass(frozen=True)
class Message:
    full_name: str
    """``acme.shop.v1.Query.Filter``"""
    module: str
    """The stub module defining it: ``acme.shop.v1.catalog_pb2``."""
    path: str
    """Its path in that module: ``Query.Filter``."""
    alias: str
    """Its name in the project's ``api`` module, unique there: ``QueryFilter``."""


@dataclass(frozen=True)
class Rpc:
    name: str
    full_method: str
    """``acme.shop.v1.Catalog/Search``: the governance rules' pattern for it."""
    request: Message
    reply: Message
    client_streaming: bool
    server_streaming: bool

    @property
    def kind(self) -> str:
        """grpc's name for the kind: ``unary_unary``, ``unary_stream``, ``stream_unary`` or
        ``stream_stream``."""
        sides = (
            "stream" if self.client_streaming else "unary",
            "stream" if self.server_streaming else "unary",
        )
        return "_".join(sides)


@dataclass(frozen=True)
class Service:
    name: str
    full_name: str
    proto: str
    """The .proto file defining it."""
    grpc_module: str
    """``acme.shop.v1.catalog_pb2_grpc``"""
    rpcs: tuple[Rpc, ...]

    @property
    def module(self) -> str:
        """The handler module's name: ``payment_gateway`` for ``PaymentGateway``."""
        return snake_case(self.name)

    @property
    def base(self) -> str:
        return f"{self.name}Base"


@dataclass(frozen=True)
class Model:
    services: tuple[Service, ...]
    messages: tuple[Message, ...]
    """Every message an RPC takes or returns, once."""
    local_files: tuple[str, ...]
    """The .proto files a project holds a copy and stubs of (all but the well-known types)."""
    targets: tuple[str, ...]

    @property
    def full_methods(self) -> tuple[str, ...]:
        return tuple(rpc.full_method for service in self.services for rpc in service.rpcs)

    def stub_packages(self) -> frozenset[str]:
        """The top-level names the local stubs take in the project (first-party for isort)."""
        modules = [
            pb2_module(name, suffix) for name in self.local_files for suffix in ("_pb2", "_pb2_grpc")
        ]
        return frozenset(module.split(".")[0] for module in modules)


def build_model(compiled: Compiled, reserved: Collection[str]) -> Model:
    """The services of the target files; ``reserved``: names the ``api`` module already uses, which
    no message alias may take (nor may the base classes' names, nor the stubs' top packages)."""
    locations = dict(_message_locations(compiled.files))
    files = {file.name: file for file in compiled.files}
    taken = set(reserved)
    taken |= {f"{s.name}Base" for target in compiled.targets for s in files[target].service}
    taken |= {pb2_module(file.name).split(".")[0] for file in compiled.files}
    aliases: dict[str, Message] = {}

    def message(type_name: str) -> Message:
        full = type_name.lstrip(".")
        if full not in aliases:
            proto, package, path = locations[full]
            alias = _free_alias(path, package, taken)
            taken.add(alias)
            aliases[full] = Message(full, pb2_module(proto), path, alias)
        return aliases[full]

    services = [
        _service(files[target], service, message)
        for target in compiled.targets
        for service in files[target].service
        if service.method
    ]
    if not services:
        raise ScaffoldError(
            f"{', '.join(compiled.targets)}: no service with an rpc; telemetry new makes a gRPC "
            "server, so the .proto needs at least one `service` with an `rpc`"
        )
    _check_unique(services)
    _check_stub_packages(compiled.sources)
    return Model(tuple(services), tuple(aliases.values()), tuple(compiled.sources), compiled.targets)


def _service(
    file: descriptor_pb2.FileDescriptorProto,
    service: descriptor_pb2.ServiceDescriptorProto,
    message: Callable[[str], Message],
) -> Service:
    full_name = f"{file.package}.{service.name}" if file.package else service.name
    _check_identifier(service.name, f"service {full_name}")
    _check_identifier(snake_case(service.name), f"service {full_name}'s handler module")
    rpcs = []
    for method in service.method:
        _check_identifier(method.name, f"rpc {full_name}/{method.name}")
        if method.name in HANDLER_ATTRIBUTES or method.name.startswith("__"):
            raise ScaffoldError(
                f"rpc {full_name}/{method.name}: the name is taken by the handlers' base"
            )
        rpcs.append(
            Rpc(method.name, f"{full_name}/{method.name}", message(method.input_type),
                message(method.output_type), method.client_streaming, method.server_streaming)
        )  # fmt: skip
    return Service(service.name, full_name, file.name, pb2_module(file.name, "_pb2_grpc"), tuple(rpcs))


def _check_identifier(name: str, what: str) -> None:
    if keyword.iskeyword(name):
        raise ScaffoldError(f"{what}: {name!r} is a Python keyword, which Python code cannot define")


def _check_unique(services: list[Service]) -> None:
    """One handler class and module per service: two services may not share either name."""
    for attribute in ("name", "module"):
        seen: dict[str, str] = {}
        for service in services:
            key = getattr(service, attribute)
            if key in seen:
                raise ScaffoldError(
                    f"services {seen[key]} and {service.full_name} would share the handler "
                    f"{'class' if attribute == 'name' else 'module'} {key!r}: rename one"
                )
            seen[key] = service.full_name


def _check_stub_packages(sources: Collection[str]) -> None:
    """Every local file gives a module Python can import, which no other module shadows."""
    for proto in sources:
        top = pb2_module(proto).split(".")[0]
        if top in sys.stdlib_module_names or top in PROJECT_IMPORTS - {"google"}:
            raise ScaffoldError(
                f"{proto}: its stubs would be the package {top!r}, which the module {top!r} shadows "
                "in the project; move the file (and its imports' paths) under another directory"
            )


def _message_locations(
    files: tuple[descriptor_pb2.FileDescriptorProto, ...],
) -> Iterator[tuple[str, tuple[str, str, str]]]:
    """``full name -> (file, package, path in the module)`` for every message, nested ones too."""
    for file in files:
        prefix = f"{file.package}." if file.package else ""
        pending = [(message, message.name) for message in file.message_type]
        while pending:
            message, path = pending.pop()
            yield prefix + path, (file.name, file.package, path)
            pending.extend((nested, f"{path}.{nested.name}") for nested in message.nested_type)


def _free_alias(path: str, package: str, taken: set[str]) -> str:
    """``Query.Filter`` -> ``QueryFilter``; qualified by the package when another message has
    that name already (``AcmeShopV1Money``), numbered if even that is taken."""
    base = path.replace(".", "")
    for candidate in (base, pascal(package) + base):
        if candidate not in taken:
            return candidate
    number = 2
    while f"{base}{number}" in taken:
        number += 1
    return f"{base}{number}"
