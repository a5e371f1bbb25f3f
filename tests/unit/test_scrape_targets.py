"""The registry's scrape targets for Prometheus: what is listed, what is left out, and hostile
registrations skipped with a reason, never listed."""

from __future__ import annotations

import json

import pytest

from telemetry.discovery.etcd import EtcdClient, EtcdConfig
from telemetry.discovery.instance import instance_key
from telemetry.discovery.scrape_targets import RegistryTargets, check_address, scrape_targets


def registration(address: str = "127.0.0.1:50051", metrics: str | None = "127.0.0.1:9464",
                 **extra: object) -> bytes:  # fmt: skip
    metadata = {} if metrics is None else {"metrics": metrics}
    return json.dumps({"address": address, "metadata": metadata, **extra}).encode()


def state(*entries: tuple[str, str, bytes]) -> dict[str, bytes]:
    return {instance_key(service, iid): value for service, iid, value in entries}


@pytest.mark.parametrize(
    "address",
    ["127.0.0.1:9464", "10.0.0.5:1", "[::1]:9464", "shop:9464", "shop-1.default.svc:65535",
     "localhost:9464"],
)  # fmt: skip
def test_valid_addresses(address: str) -> None:
    assert check_address(address) is None


@pytest.mark.parametrize(
    ("address", "why"),
    [
        ("127.0.0.1", "host:port"),
        (":9464", "host:port"),
        ("127.0.0.1:0", "outside 1-65535"),
        ("127.0.0.1:65536", "outside 1-65535"),
        ("127.0.0.1:+80", "host:port"),
        ("127.0.0.1:٩٤٦٤", "host:port"),  # Arabic-Indic digits: isdigit() but not a port
        ("::1:9464", "not a host name"),  # IPv6 without brackets
        ("[fe80::1%eth0]:9464", "zone index"),
        ("[nope]:9464", "not an IPv6 address"),
        ("999.1.1.1:9464", "not a host name"),
        ("-shop:9464", "not a host name"),
        ("sh_op:9464", "not a host name"),
        ("shop/..:9464", "not a host name"),
        ("http://shop:9464", "not a host name"),
        ("a" * 64 + ":9464", "not a host name"),
        ("shop\n:9464", "not a host name"),
        ("x" * 300, "host:port"),
    ],
)
def test_invalid_addresses_say_why(address: str, why: str) -> None:
    problem = check_address(address)
    assert problem is not None and why in problem


def test_loopback_only_refuses_other_hosts() -> None:
    for address in ("127.0.0.1:1", "127.9.9.9:1", "[::1]:1", "LOCALHOST:1"):
        assert check_address(address, loopback_only=True) is None, address
    for address in ("10.0.0.5:9464", "169.254.169.254:80", "shop:9464", "[::]:1"):
        problem = check_address(address, loopback_only=True)
        assert problem is not None and "loopback" in problem, address


def test_one_group_per_service_labelled_with_its_job() -> None:
    built = scrape_targets(state(
        ("shop", "b", registration(metrics="127.0.0.1:2002")),
        ("shop", "a", registration(metrics="127.0.0.1:2001")),
        ("atlas", "x", registration(metrics="127.0.0.1:3001")),
    ))  # fmt: skip
    assert built.groups == [
        {"labels": {"job": "atlas"}, "targets": ["127.0.0.1:3001"]},
        {"labels": {"job": "shop"}, "targets": ["127.0.0.1:2001", "127.0.0.1:2002"]},
    ]
    assert built.count == 3 and not built.skipped and built.over_limit == 0
    assert json.loads(built.document()) == built.groups


def test_what_the_static_configuration_scrapes_is_left_out() -> None:
    built = scrape_targets(
        state(
            ("order", "order", registration(metrics="127.0.0.1:4001")),  # its job scrapes it: silent
            ("order", "mine", registration(metrics="127.0.0.1:4009")),  # a static job's name
            ("shop", "a", registration(metrics="127.0.0.1:4001")),  # order's address, another name
            ("shop", "b", registration(metrics="127.0.0.1:4002")),
        ),
        skip_jobs={"order"},
        skip_addresses={"127.0.0.1:4001"},
    )
    assert built.groups == [{"labels": {"job": "shop"}, "targets": ["127.0.0.1:4002"]}]
    assert built.skipped == {
        "/services/order/mine": "order has a static job, which does not list 127.0.0.1:4009: rename "
        "the service (the job label is taken) or add the target to that job",
        "/services/shop/a": "127.0.0.1:4001 is scraped already, by the static configuration",
    }


def test_hostile_registrations_are_skipped_with_the_reason() -> None:
    built = scrape_targets(state(
        ("shop", "json", b"{not json"),
        ("shop", "field", registration(evil=True)),
        ("shop", "host", registration(metrics="evil host:9464")),
        ("shop", "type", registration(metrics=None, metadata={"metrics": 9464})),
        ("shop", "dup", registration(metrics="127.0.0.1:5001")),
        ("shop", "first", registration(metrics="127.0.0.1:5001")),
        ("x" * 65, "long", registration(metrics="127.0.0.1:5002")),
        ('sh"op', "quote", registration(metrics="127.0.0.1:5003")),
        ("shop", "none", registration(metrics=None)),  # metrics off: nothing to scrape, no fault
    ))  # fmt: skip
    assert built.groups == [{"labels": {"job": "shop"}, "targets": ["127.0.0.1:5001"]}]
    why = {key.rpartition("/")[2]: reason for key, reason in built.skipped.items()}
    assert set(why) == {"json", "field", "host", "type", "first", "long", "quote"}
    assert "not JSON" in why["json"] and "unknown field" in why["field"]
    assert "metadata.metrics" in why["host"] and "host name" in why["host"]
    assert "metadata" in why["type"]
    assert "scraped already, for /services/shop/dup" in why["first"]  # keys in order: dup first
    assert "plain name" in why["long"] and "plain name" in why["quote"]


def test_the_list_is_capped_and_the_rest_counted() -> None:
    many = state(*((f"s{i:03}", "a", registration(metrics=f"127.0.0.1:{6000 + i}")) for i in range(50)))
    built = scrape_targets(many, limit=10)
    assert built.count == 10 and built.over_limit == 40
    assert [g["labels"]["job"] for g in built.groups] == [f"s{i:03}" for i in range(10)]
    assert scrape_targets(many, limit=0).groups == []


def test_loopback_only_skips_registrations_elsewhere() -> None:
    built = scrape_targets(
        state(("shop", "a", registration(metrics="169.254.169.254:80"))), loopback_only=True
    )
    assert built.groups == [] and "loopback" in built.skipped["/services/shop/a"]


def test_a_hostile_key_cannot_forge_log_lines(caplog: pytest.LogCaptureFixture) -> None:
    client = EtcdClient(EtcdConfig(endpoints=("127.0.0.1:1",)))  # never started: no etcd needed
    targets = RegistryTargets(client)
    hostile = "/services/shop/a\nINFO forged line"
    try:
        with caplog.at_level("WARNING", logger="telemetry.discovery"):
            targets._on_change({hostile: b"{not json", "/services/shop/b": b"x" * 5000}, 1)
            targets._on_change({hostile: b"{not json", "/services/shop/b": b"x" * 5000}, 2)
    finally:
        client.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 2, lines  # each once, not again at the next change
    assert all("\n" not in line and len(line) < 700 for line in lines), lines
    assert any("'/services/shop/a\\nINFO forged line'" in line for line in lines), lines
    assert targets.document() == b"[]"
