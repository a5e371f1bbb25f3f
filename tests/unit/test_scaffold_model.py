"""What `telemetry new` reads of a .proto, through protoc's descriptors: services, the four RPC
kinds, the Python names of their messages across imports, nested packages and messages, and the
well-known types; and the names and import blocks of a generated project."""

from __future__ import annotations

from pathlib import Path

import pytest
from scaffold_projects import CATALOG, CATALOG_ROOT, DEMOSHOP

from telemetry.scaffold.errors import ScaffoldError
from telemetry.scaffold.model import Model, build_model
from telemetry.scaffold.names import check_project_name, import_block, pb2_module, snake_case
from telemetry.scaffold.protos import compile_descriptors
from telemetry.scaffold.render import API_NAMES


@pytest.fixture(scope="module")
def catalog() -> Model:
    return build_model(compile_descriptors([CATALOG], [CATALOG_ROOT]), API_NAMES)


def test_every_rpc_kind_and_its_messages(catalog: Model) -> None:
    service = catalog.services[0]
    assert (service.full_name, service.grpc_module) == (
        "acme.shop.v1.Catalog",
        "acme.shop.v1.catalog_pb2_grpc",
    )
    kinds = {rpc.name: rpc.kind for rpc in service.rpcs}
    assert kinds == {
        "GetProduct": "unary_unary",
        "ListProducts": "unary_stream",
        "ImportProducts": "stream_unary",
        "WatchPrices": "stream_stream",
        "Quote": "unary_unary",
    }
    watch = next(rpc for rpc in service.rpcs if rpc.name == "WatchPrices")
    # a nested message, and a message of an imported file in another package
    assert (watch.request.module, watch.request.path, watch.request.alias) == (
        "acme.shop.v1.catalog_pb2", "Query.Filter", "QueryFilter",
    )  # fmt: skip
    assert (watch.reply.full_name, watch.reply.module) == (
        "acme.common.v1.Money",
        "acme.common.v1.money_pb2",
    )


def test_messages_of_the_same_name_get_distinct_aliases(catalog: Model) -> None:
    aliases = {message.full_name: message.alias for message in catalog.messages}
    assert aliases["acme.common.v1.Money"] == "Money"
    assert aliases["acme.shop.v1.Money"] == "AcmeShopV1Money"
    assert len(set(aliases.values())) == len(aliases)
    assert not set(aliases.values()) & API_NAMES


def test_well_known_types_come_from_protobuf_and_are_not_copied(catalog: Model) -> None:
    ping = catalog.services[1].rpcs[0]
    assert (ping.request.module, ping.reply.module) == (
        "google.protobuf.empty_pb2", "google.protobuf.timestamp_pb2",
    )  # fmt: skip
    assert catalog.local_files == ("acme/common/v1/money.proto", "acme/shop/v1/catalog.proto")
    assert catalog.stub_packages() == {"acme"}


def test_the_demo_shop() -> None:
    model = build_model(compile_descriptors([DEMOSHOP], [DEMOSHOP.parent]), API_NAMES)
    assert [s.full_name for s in model.services] == [
        "demoshop.v1.Order", "demoshop.v1.Inventory", "demoshop.v1.Payment",
        "demoshop.v1.Recommendation", "demoshop.v1.Notification",
    ]  # fmt: skip
    assert "demoshop.v1.Inventory/Release" in model.full_methods
    assert {rpc.kind for s in model.services for rpc in s.rpcs} == {"unary_unary"}
    assert model.stub_packages() == {"demoshop_pb2", "demoshop_pb2_grpc"}


@pytest.mark.parametrize("name", ["shop", "order_service", "Shop2"])
def test_a_valid_name(name: str) -> None:
    check_project_name(name)


@pytest.mark.parametrize(
    ("name", "why"),
    [("9shop", "identifier"), ("shop-x", "identifier"), ("café", "identifier"), ("", "identifier"),
     ("class", "keyword"), ("match", "keyword"), ("json", "shadow"), ("grpc", "shadow"),
     ("telemetry", "shadow"), ("tests", "shadow")],
)  # fmt: skip
def test_an_invalid_name(name: str, why: str) -> None:
    with pytest.raises(ScaffoldError, match=why):
        check_project_name(name)


def test_module_and_handler_names() -> None:
    assert pb2_module("acme/shop/v1/my-api.proto") == "acme.shop.v1.my_api_pb2"
    assert pb2_module("demoshop.proto", "_pb2_grpc") == "demoshop_pb2_grpc"
    with pytest.raises(ScaffoldError, match="cannot import"):
        pb2_module("v1.2/shop.proto")
    assert [snake_case(n) for n in ("PaymentGateway", "HTTPProxy", "Order", "V2Api")] == [
        "payment_gateway", "http_proxy", "order", "v2_api",
    ]  # fmt: skip


def test_import_block_as_isort_lays_it_out() -> None:
    block = import_block(
        ["acme.v10.x_pb2", "grpc", "shop.runtime:Runtime", "typing:Never", "acme.v2.x_pb2",
         "__future__:annotations", "typing:Any", "google.protobuf.empty_pb2", "shop._generated:api",
         "collections.abc:Iterator", "shop.handlers.order"],
        first_party={"shop", "acme"},
    )  # fmt: skip
    assert block == (
        "from __future__ import annotations\n\n"
        "from collections.abc import Iterator\nfrom typing import Any, Never\n\n"
        "import google.protobuf.empty_pb2\nimport grpc\n\n"
        "import acme.v2.x_pb2\nimport acme.v10.x_pb2\nimport shop.handlers.order\n"
        "from shop._generated import api\nfrom shop.runtime import Runtime"
    )


def test_a_long_from_import_is_wrapped() -> None:
    block = import_block(
        ["a_long_module_name:First", "a_long_module_name:Second"], {"a_long_module_name"}, 40
    )
    assert block == "from a_long_module_name import (\n    First,\n    Second,\n)"


def _model_of(tmp_path: Path, text: str) -> Model:
    (tmp_path / "x.proto").write_text('syntax = "proto3";\npackage x.v1;\n' + text)
    return build_model(compile_descriptors([tmp_path / "x.proto"], [tmp_path]), API_NAMES)


def test_messages_never_take_a_name_the_api_module_uses(tmp_path: Path) -> None:
    model = _model_of(
        tmp_path,
        "service Order { rpc A(OrderBase) returns (Context); rpc B(grpc) returns (x_pb2); }\n"
        "message OrderBase {}\nmessage Context {}\nmessage grpc {}\nmessage x_pb2 {}\n",
    )
    assert [m.alias for m in model.messages] == ["XV1OrderBase", "XV1Context", "XV1grpc", "XV1x_pb2"]


def test_a_handler_module_that_would_be_a_keyword(tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match=r"service x\.v1\.Class's handler module: 'class'"):
        _model_of(tmp_path, "service Class { rpc A(M) returns (M); }\nmessage M {}\n")


def test_two_services_sharing_a_handler(tmp_path: Path) -> None:
    (tmp_path / "a.proto").write_text(
        'syntax = "proto3";\npackage a;\nservice S { rpc M(E) returns (E); }\nmessage E {}\n'
    )
    (tmp_path / "b.proto").write_text(
        'syntax = "proto3";\npackage b;\nservice S { rpc M(E) returns (E); }\nmessage E {}\n'
    )
    compiled = compile_descriptors([tmp_path / "a.proto", tmp_path / "b.proto"], [tmp_path])
    with pytest.raises(ScaffoldError, match=r"services a\.S and b\.S would share the handler class 'S'"):
        build_model(compiled, API_NAMES)


def test_stubs_a_module_would_shadow(tmp_path: Path) -> None:
    (tmp_path / "email").mkdir()
    (tmp_path / "email" / "x.proto").write_text(
        'syntax = "proto3";\nservice S { rpc M(E) returns (E); }\nmessage E {}\n'
    )
    compiled = compile_descriptors([tmp_path / "email" / "x.proto"], [tmp_path])
    with pytest.raises(ScaffoldError, match="the module 'email' shadows"):
        build_model(compiled, API_NAMES)
