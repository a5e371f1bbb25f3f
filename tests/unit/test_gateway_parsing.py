"""Fuzz: whatever JSON body reaches the gateway's ``POST /orders`` parser, the answer is a
PlaceOrder request within the shop's bounds, or a 400 naming the field. Never another exception
(which would be a 500), never a request the services would refuse for its shape (an int32 overflow,
a 20 KB SKU). Bounded: a few seconds; the live gateway gets bytes and headers in
``tests/stack/test_shop_under_attack.py``."""

from __future__ import annotations

import json
import re
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from services.catalog import CATALOG
from services.gateway import (
    MAX_CURRENCY,
    MAX_ITEMS,
    MAX_NAME,
    MAX_QUANTITY,
    BadRequestError,
    parse_order,
)
from services.protos import demoshop_pb2 as pb

SETTINGS = settings(
    max_examples=400,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# The message starts with the field, then ": " (items[3].quantity: must be 1..1000, got 0).
FIELD = re.compile(r"(body|user|currency|items|items\[\d+\]\.(sku|quantity)): \S")
INT32_MAX = 2**31 - 1

numbers = st.one_of(
    st.integers(),
    st.integers(min_value=-2, max_value=MAX_QUANTITY + 2),
    st.sampled_from([2**31, 2**63, 2**64, -(2**63), 10**30, INT32_MAX]),
    st.floats(allow_nan=False, allow_infinity=False),
    st.booleans(),
)
strings = st.one_of(
    st.text(max_size=80),
    st.text(st.characters(codec=None, categories=["Cs"]), min_size=1, max_size=4),  # surrogates
    st.sampled_from(["", "x" * (MAX_NAME + 1), "\x00", "\ud800", "a\udfff", "EUR", "€" * 9]),
)
scalars = st.one_of(st.none(), numbers, strings)
json_values = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=12,
)
items = st.one_of(
    st.fixed_dictionaries(
        {"sku": st.one_of(strings, json_values)}, optional={"quantity": st.one_of(numbers, json_values)}
    ),
    json_values,
)
orders = st.fixed_dictionaries(
    {},
    optional={
        "user": st.one_of(strings, json_values),
        "items": st.one_of(st.lists(items, max_size=MAX_ITEMS + 3), json_values),
        "currency": st.one_of(strings, json_values),
        "note": json_values,
    },
)
# Shaped like a real order, so every field's own checks are reached with the fields before it valid.
shaped = st.builds(
    lambda user, lines, currency: {"user": user, "items": lines, "currency": currency},
    st.one_of(st.sampled_from(["ada", "bob"]), strings),
    st.lists(st.builds(lambda sku, quantity: {"sku": sku, "quantity": quantity},
                       st.one_of(st.sampled_from(sorted(CATALOG)), strings),
                       st.one_of(st.integers(1, MAX_QUANTITY), numbers)),
             min_size=1, max_size=MAX_ITEMS + 1),
    st.one_of(st.just("EUR"), strings),
)  # fmt: skip
bodies = st.one_of(shaped, orders, json_values)


def check(body: Any) -> None:
    try:
        request = parse_order(body)
    except BadRequestError as bad:
        assert bad.status == 400
        assert FIELD.match(str(bad)), str(bad)
        assert len(str(bad)) <= 200, str(bad)  # no echo of an oversized value
        return
    assert isinstance(request, pb.PlaceOrderRequest)
    assert 0 < len(request.user) <= MAX_NAME and len(request.currency) <= MAX_CURRENCY
    assert 0 < len(request.items) <= MAX_ITEMS
    for item in request.items:
        assert 0 < len(item.sku) <= MAX_NAME
        assert 1 <= item.quantity <= MAX_QUANTITY
    pb.PlaceOrderRequest.FromString(request.SerializeToString())  # what order will parse


@SETTINGS
@given(bodies)
def test_any_json_body_is_a_bounded_request_or_a_400_naming_the_field(body: Any) -> None:
    check(body)


@SETTINGS
@given(orders)
def test_the_same_through_the_gateways_json_decoder(body: dict[str, Any]) -> None:
    """As the gateway reads it: orjson, which refuses integers past 64 bits (a 400 there)."""
    try:
        raw = json.dumps(body).encode()
        decoded = orjson.loads(raw)
    except (orjson.JSONDecodeError, ValueError):
        return
    check(decoded)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ([], "body: expected a JSON object"),
        ({"user": "ada", "items": [{"sku": "sku-mug", "quantity": 10**4000}]},
         "items[0].quantity: must be 1..1000, got an integer of 13288 bits"),
        ({"user": "ada", "items": [{"sku": "sku-mug", "quantity": INT32_MAX + 1}]},
         "items[0].quantity: must be 1..1000, got 2147483648"),
        ({"user": "a\ud800", "items": [{"sku": "sku-mug"}]},
         "user: not valid Unicode text (a lone surrogate)"),
    ],
)  # fmt: skip
def test_examples(body: Any, message: str) -> None:
    with pytest.raises(BadRequestError) as bad:
        parse_order(body)
    assert str(bad.value) == message
