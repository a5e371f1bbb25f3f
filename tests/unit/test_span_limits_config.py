"""Span limits configured through the SDK environment variables: the spec's defaults, each
variable's limit, the general variables as fallbacks of the attribute limits, keyword limits
winning over the environment, and bad values naming their variable or field.
"""

from __future__ import annotations

import pytest

import telemetry
from telemetry.config import SPAN_LIMIT_FIELDS

# -- configuration: the SDK environment variables --------------------------------------------------

LIMIT_FIELDS = SPAN_LIMIT_FIELDS


def limit_fields(config: telemetry.TelemetryConfig) -> tuple[int | None, ...]:
    return tuple(getattr(config, name) for name in LIMIT_FIELDS)


def test_limits_default_to_the_specs() -> None:
    assert limit_fields(telemetry.TelemetryConfig.from_env({})) == (128, None, 128, 128, 128, 128)


def test_each_variable_sets_its_limit() -> None:
    config = telemetry.TelemetryConfig.from_env(
        {
            "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "10",
            "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "256",
            "OTEL_SPAN_EVENT_COUNT_LIMIT": "11",
            "OTEL_SPAN_LINK_COUNT_LIMIT": "0",
            "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT": "12",
            "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT": " 13 ",
        }
    )
    assert limit_fields(config) == (10, 256, 11, 0, 12, 13)


def test_the_general_variables_are_the_fallbacks_of_the_attribute_limits() -> None:
    general = {"OTEL_ATTRIBUTE_COUNT_LIMIT": "7", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT": "99"}
    config = telemetry.TelemetryConfig.from_env(general)
    # Attribute counts (span, event, link) and the value length fall back; event and link counts
    # have no general variable.
    assert limit_fields(config) == (7, 99, 128, 128, 7, 7)
    specific = telemetry.TelemetryConfig.from_env(
        {
            **general,
            "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT": "300",
            "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "5",
        }
    )
    assert limit_fields(specific) == (300, 5, 128, 128, 7, 7)  # the model-specific one wins


def test_keyword_limits_win_over_the_environment() -> None:
    config = telemetry.TelemetryConfig.from_env(
        {"OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT": "64", "OTEL_SPAN_EVENT_COUNT_LIMIT": "3"},
        span_attribute_value_length_limit=None,  # no limit, though the environment sets one
        span_event_count_limit=9,
    )
    assert config.span_attribute_value_length_limit is None and config.span_event_count_limit == 9


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        (
            "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT",
            "-1",
            "OTEL_SPAN_ATTRIBUTE_COUNT_LIMIT: must be within 0..2147483647",
        ),
        ("OTEL_SPAN_EVENT_COUNT_LIMIT", "many", "OTEL_SPAN_EVENT_COUNT_LIMIT: expected an integer"),
        ("OTEL_SPAN_LINK_COUNT_LIMIT", "1e3", "OTEL_SPAN_LINK_COUNT_LIMIT: expected an integer"),
        (
            "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT",
            "2147483648",
            "OTEL_EVENT_ATTRIBUTE_COUNT_LIMIT: must be within",
        ),
        (
            "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT",
            "1.5",
            "OTEL_LINK_ATTRIBUTE_COUNT_LIMIT: expected an integer",
        ),
        (
            "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT",
            "-5",
            "OTEL_SPAN_ATTRIBUTE_VALUE_LENGTH_LIMIT: must be",
        ),
        ("OTEL_ATTRIBUTE_COUNT_LIMIT", "x", "OTEL_ATTRIBUTE_COUNT_LIMIT: expected an integer"),
        ("OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT", "-1", "OTEL_ATTRIBUTE_VALUE_LENGTH_LIMIT: must be"),
    ],
)
def test_a_bad_limit_names_its_variable(variable: str, value: str, message: str) -> None:
    with pytest.raises(telemetry.ConfigError, match="^" + message):
        telemetry.TelemetryConfig.from_env({variable: value})


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("span_attribute_count_limit", -1),
        ("span_event_count_limit", 2**31),
        ("span_link_count_limit", 1.5),
        ("event_attribute_count_limit", None),
        ("link_attribute_count_limit", True),
        ("span_attribute_value_length_limit", -1),
    ],
)
def test_a_bad_limit_field_names_the_field(field: str, value: object) -> None:
    with pytest.raises(
        telemetry.ConfigError, match=f"^{field}: must be an integer within 0..2147483647"
    ):
        telemetry.TelemetryConfig(**{field: value})  # type: ignore[arg-type]
