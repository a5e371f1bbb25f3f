"""The SLO file's model: valid files load, anything else is refused with an error naming the field
(fail-closed), whatever the file holds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from telemetry.slo.model import (
    LATENCY_BUCKETS,
    MAX_FILE_BYTES,
    MAX_SERVICES,
    AvailabilitySlo,
    LatencySlo,
    ServiceSlo,
    SloError,
    load_slos,
    parse_slos,
)

VALID = """\
slos:
  payment:
    protocol: grpc
    availability: {objective: 0.999}
    latency: {objective: 0.99, threshold_seconds: 0.1}
  gateway:
    protocol: http
    latency: {objective: 0.95, threshold_seconds: 1}
"""


def payment(**spec: Any) -> dict[str, Any]:
    return {"slos": {"payment": {"protocol": "grpc", **spec}}}


def refused(data: Any) -> str:
    with pytest.raises(SloError) as raised:
        parse_slos(data)
    return str(raised.value)


def test_a_valid_file_loads(tmp_path: Path) -> None:
    path = tmp_path / "slos.yml"
    path.write_text(VALID)
    slos = load_slos(path)
    assert slos.services == (
        ServiceSlo("payment", "grpc", AvailabilitySlo(0.999), LatencySlo(0.99, 0.1)),
        ServiceSlo("gateway", "http", None, LatencySlo(0.95, 1.0)),
    )


def test_the_error_names_the_field() -> None:
    message = refused(payment(availability={"objective": 1.2}))
    assert message == "slos.payment.availability.objective: must be between 0.9 and 0.99999, got 1.2"
    with pytest.raises(SloError) as raised:
        parse_slos(payment(availability={"objective": 0.5}))
    assert raised.value.field == "slos.payment.availability.objective"


@pytest.mark.parametrize(
    ("data", "field"),
    [
        (payment(availability={"objective": "0.999"}), "slos.payment.availability.objective"),
        (payment(availability={"objective": True}), "slos.payment.availability.objective"),
        (payment(availability={"objective": None}), "slos.payment.availability.objective"),
        (payment(availability={"objective": [0.99]}), "slos.payment.availability.objective"),
        (payment(availability={"objective": 10**400}), "slos.payment.availability.objective"),
        (payment(availability={"objective": float("inf")}), "slos.payment.availability.objective"),
        (payment(availability={"objective": float("nan")}), "slos.payment.availability.objective"),
        (payment(availability={"objective": 0.9999999}), "slos.payment.availability.objective"),
        (payment(availability={}), "slos.payment.availability.objective"),
        (payment(availability=0.999), "slos.payment.availability"),
        (payment(availability={"objective": 0.99, "window": "28d"}), "slos.payment.availability.window"),
        (payment(latency={"objective": 0.99}), "slos.payment.latency.threshold_seconds"),
        (
            payment(latency={"objective": 0.99, "threshold_seconds": 0.3}),
            "slos.payment.latency.threshold_seconds",
        ),
        (
            payment(latency={"objective": 0.99, "threshold_seconds": "0.1"}),
            "slos.payment.latency.threshold_seconds",
        ),
        (
            payment(latency={"objective": 0.99, "threshold_seconds": -1}),
            "slos.payment.latency.threshold_seconds",
        ),
        (payment(latency={"objective": 2, "threshold_seconds": 0.1}), "slos.payment.latency.objective"),
        (payment(), "slos.payment"),  # neither objective
        (payment(owner="team-a", availability={"objective": 0.99}), "slos.payment.owner"),
        ({"slos": {"payment": {"availability": {"objective": 0.99}}}}, "slos.payment.protocol"),
        ({"slos": {"payment": {"protocol": "grpcs"}}}, "slos.payment.protocol"),
        ({"slos": {"payment": {"protocol": ["grpc"]}}}, "slos.payment.protocol"),
        ({"slos": {"payment": "0.999"}}, "slos.payment"),
        ({"slos": {'pay"ment': {"protocol": "grpc"}}}, 'slos.pay"ment'),
        ({"slos": {"Payment": {"protocol": "grpc"}}}, "slos.Payment"),
        ({"slos": {"x" * 64: {"protocol": "grpc"}}}, "slos." + "x" * 40 + "..."),
        ({"slos": {1: {"protocol": "grpc"}}}, "slos.1"),
        ({"slos": ["payment"]}, "slos"),
        ({"slos": {}}, "slos"),
        ({"slos": None}, "slos"),
        ({}, "(file).slos"),
        ({"slos": {}, "version": 2}, "(file).version"),
        (None, "(file)"),
        ("slos", "(file)"),
    ],
)
def test_invalid_values_are_refused(data: Any, field: str) -> None:
    with pytest.raises(SloError) as raised:
        parse_slos(data)
    assert raised.value.field == field
    assert str(raised.value).startswith(f"{field}: ")


def test_the_threshold_must_be_a_bucket_boundary() -> None:
    message = refused(payment(latency={"objective": 0.99, "threshold_seconds": 0.2}))
    assert message.startswith(
        "slos.payment.latency.threshold_seconds: must be a histogram bucket boundary"
    )
    assert message.endswith("got 0.2")
    for bound in LATENCY_BUCKETS:
        parse_slos(payment(latency={"objective": 0.99, "threshold_seconds": bound}))


def test_the_buckets_are_the_ones_the_package_exports() -> None:
    from telemetry.config import DEFAULT_LATENCY_BUCKETS, TelemetryConfig

    assert LATENCY_BUCKETS == DEFAULT_LATENCY_BUCKETS == TelemetryConfig().latency_buckets


def test_too_many_services_are_refused() -> None:
    services = {
        f"s{i}": {"protocol": "grpc", "availability": {"objective": 0.99}} for i in range(MAX_SERVICES)
    }
    assert len(parse_slos({"slos": services}).services) == MAX_SERVICES
    services["one-more"] = services["s0"]
    assert (
        refused({"slos": services}) == f"slos: at most {MAX_SERVICES} services, got {MAX_SERVICES + 1}"
    )


def test_a_huge_file_is_refused_unread(tmp_path: Path) -> None:
    path = tmp_path / "slos.yml"
    path.write_text(VALID + "#" * MAX_FILE_BYTES)
    with pytest.raises(SloError, match="too large"):
        load_slos(path)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("slos: [", "not valid YAML"),
        ("slos:\n  payment: {protocol: grpc}\n  payment: {protocol: http}\n", "duplicate key 'payment'"),
        ("slos:\n  payment:\n    protocol: grpc\n    protocol: http\n", "duplicate key 'protocol'"),
        ("[" * 5000 + "]" * 5000, "not valid YAML"),
        ("slos: !!python/object/apply:os.system ['true']", "not valid YAML"),
        ("", "(file): must be a mapping, got NoneType"),
        (
            "slos:\n  payment:\n    protocol: grpc\n    availability: {objective: .inf}\n",
            "must be finite",
        ),
        (
            "slos:\n  payment:\n    protocol: grpc\n    availability: {objective: 1.0e+400}\n",
            "must be finite",
        ),
    ],
)
def test_hostile_files_are_refused(tmp_path: Path, text: str, expected: str) -> None:
    path = tmp_path / "slos.yml"
    path.write_text(text)
    with pytest.raises(SloError) as raised:
        load_slos(path)
    assert expected in str(raised.value)


def test_a_missing_file_is_an_slo_error(tmp_path: Path) -> None:
    with pytest.raises(SloError) as raised:
        load_slos(tmp_path / "absent.yml")
    assert raised.value.field == str(tmp_path / "absent.yml")


def test_the_demo_file_loads() -> None:
    root = Path(__file__).resolve().parents[2]
    slos = load_slos(root / "slo" / "slos.yml")
    assert len(slos.services) == 6
