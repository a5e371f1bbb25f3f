"""Long names (the longest project name, a deep package, long service, RPC and message names)
still give a project that ruff accepts as it is: the templates lay long lines out as ruff format
would."""

from __future__ import annotations

from pathlib import Path

import pytest
from scaffold_projects import run_in, tool

from telemetry.scaffold import new_project
from telemetry.scaffold.names import MAX_NAME

NAME = "warehouse_inventory_management_x"
PROTO = """syntax = "proto3";
package com.example.platform.inventory.v1alpha1;
import "google/protobuf/timestamp.proto";

service InventoryManagementServiceForAllWarehouses {
  rpc ListInventoryItemsAcrossAllWarehouses(ListInventoryItemsAcrossAllWarehousesRequest)
      returns (stream ListInventoryItemsAcrossAllWarehousesResponse);
  rpc SynchronizeInventoryLevelsBetweenWarehouses(
      stream ListInventoryItemsAcrossAllWarehousesRequest.Filter)
      returns (stream google.protobuf.Timestamp);
}

message ListInventoryItemsAcrossAllWarehousesRequest {
  message Filter {
    string prefix = 1;
  }
}

message ListInventoryItemsAcrossAllWarehousesResponse {}
"""


@pytest.mark.parametrize("aio", [False, True], ids=["sync", "aio"])
def test_long_names_pass_ruff(tmp_path: Path, aio: bool) -> None:
    assert len(NAME) == MAX_NAME
    proto = tmp_path / "protos" / "com" / "example" / "platform" / "inventory" / "v1alpha1"
    proto.mkdir(parents=True)
    (proto / "inventory_management_service.proto").write_text(PROTO)
    new_project(
        NAME,
        [proto / "inventory_management_service.proto"],
        tmp_path,
        includes=[tmp_path / "protos"],
        aio=aio,
    )
    project = tmp_path / NAME
    for check in (["check", "."], ["format", "--check", "--diff", "."]):
        result = run_in(project, tool("ruff"), *check)
        assert result.returncode == 0, result.stdout + result.stderr
