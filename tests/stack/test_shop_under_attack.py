"""The native demo stack under hostile input (issue 17): the corpus of ``services/hostile.py`` from
outside through the gateway and from a misbehaving peer straight to every gRPC service. Nothing
answers 5xx, every 4xx is a JSON error naming the field, spoofed baggage buys nothing, series stay
within their caps, and the books balance after concurrent orders with refused payments and
duplicate SKUs. ``benchmarks/hostile.py`` runs the same corpus at 10,000 requests with memory
figures."""

from __future__ import annotations

import json
import random
import secrets
import urllib.request
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from urllib.parse import urlsplit

import grpc
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from services import hostile
from services.stack import NativeStack
from telemetry.testing._poll import poll

GRPC_SERVICES = {
    "order": "demoshop.v1.Order", "inventory": "demoshop.v1.Inventory",
    "payment": "demoshop.v1.Payment", "recommendation": "demoshop.v1.Recommendation",
    "notification": "demoshop.v1.Notification",
}  # fmt: skip
METHOD_CAP = 500  # max_method_labels and governance's MAX_METHOD_LABELS: past it, "other"
# What each kind may answer besides a 4xx: well-formed requests with odd extras are served.
SERVED_KINDS = {"spoofed_baggage", "oversized_baggage", "bad_trace_context", "rotating_user",
                "secrets", "control_characters", "rotating_path"}  # fmt: skip


def gateway_client(stack: NativeStack) -> hostile.HttpClient:
    target = urlsplit(stack.gateway_url)
    return hostile.HttpClient(target.hostname or "127.0.0.1", target.port or 80)


def send_all(
    stack: NativeStack, cases: list[hostile.HttpCase], threads: int = 8
) -> list[hostile.Answer]:
    """Every case, ``threads`` at a time (one keep-alive connection each); answers in case order."""
    numbered = list(enumerate(cases))

    def worker(share: list[tuple[int, hostile.HttpCase]]) -> list[tuple[int, hostile.Answer]]:
        client = gateway_client(stack)
        try:
            return [(index, client.send(case)) for index, case in share]
        finally:
            client.close()

    with ThreadPoolExecutor(threads) as pool:
        shares = pool.map(worker, [numbered[i::threads] for i in range(threads)])
    return [
        answer
        for _, answer in sorted((pair for share in shares for pair in share), key=lambda pair: pair[0])
    ]


@pytest.fixture
def loadgen_stopped(stack: NativeStack) -> Iterator[None]:
    """The books are read while nothing else orders: the load generator is held down meanwhile."""
    stack.stop_process("loadgen")
    try:
        yield
    finally:
        stack.start_process("loadgen")


def test_the_hostile_corpus_gets_json_4xx_and_never_a_5xx(stack: NativeStack) -> None:
    cases = list(hostile.http_corpus(random.Random(17), 12 * len(hostile.HTTP_CASES)))
    answers = send_all(stack, cases)
    by_kind = Counter((a.kind, a.status) for a in answers)
    failures = [a for a in answers if a.status >= 500 or a.status == 0]
    assert not failures, f"5xx or no answer: {by_kind}\n{failures[0].body[:300]!r}"
    unexplained = [a for a in answers if 400 <= a.status < 500 and not a.json_error]
    assert not unexplained, [(a.kind, a.status, a.body[:200]) for a in unexplained[:5]]
    served = {a.kind for a in answers if a.status < 400}
    assert served <= SERVED_KINDS, served - SERVED_KINDS
    for name in ("gateway", "order", "inventory-1", "inventory-2"):
        assert stack.restarts(name) == 0, f"{name} restarted"


def test_bytes_that_are_not_http_are_refused_without_a_5xx(stack: NativeStack) -> None:
    target = urlsplit(stack.gateway_url)
    for payload in hostile.RAW_CASES:
        status = hostile.send_raw(target.hostname or "127.0.0.1", target.port or 80, payload)
        assert status == 0 or 400 <= status < 500, (payload[:40], status)
    client = gateway_client(stack)
    try:
        assert client.send(hostile.HttpCase("health", "GET", "/healthz")).status == 200
    finally:
        client.close()


def test_spoofed_vip_baggage_buys_no_extra_stock_reads(stack: NativeStack) -> None:
    """``baggage: user=ops`` from outside is dropped at the edge: the caller is limited as the user
    the gateway names (2/s per inventory instance), not let through as ``ops``."""
    user = f"mallory-{secrets.token_hex(4)}"
    spoofed = hostile.HttpCase("spoofed", "GET", "/stock/sku-mug",
                               headers={"baggage": "user=ops", "x-user": user})  # fmt: skip
    client = gateway_client(stack)
    try:
        statuses = Counter(client.send(spoofed).status for _ in range(30))
    finally:
        client.close()
    assert statuses[429] >= 20, statuses  # ops would have had 30 of 30


def metric_families(url: str) -> dict[str, list[dict[str, str]]]:
    with urllib.request.urlopen(url, timeout=5) as response:
        text = response.read().decode()
    return {
        family.name: [dict(sample.labels) for sample in family.samples]
        for family in text_string_to_metric_families(text)
    }


def method_of(labels: dict[str, str]) -> object:
    """The method a sample is about (grpc and governance families), None for other families."""
    if "grpc_method" in labels:
        return labels.get("grpc_service"), labels["grpc_method"]
    return labels.get("method")


def test_distinct_methods_from_a_peer_stay_within_the_label_caps(stack: NativeStack) -> None:
    """Each gRPC service gets 4 x 160 hostile calls (unknown methods with distinct names, bytes no
    protobuf parser takes, rotating baggage users); every service answers, and no metric family of
    any service has more distinct methods than its cap + 1 ("other")."""
    rng = random.Random(23)
    instances = [*stack.backends, "order"]
    for name in instances:
        service = GRPC_SERVICES[name.split("-")[0]]
        with grpc.insecure_channel(f"127.0.0.1:{stack.ports[name]}") as channel:
            codes = Counter(hostile.send_grpc(channel, case)
                            for case in hostile.grpc_corpus(rng, service, 640))  # fmt: skip
        assert grpc.StatusCode.UNAVAILABLE not in codes, (name, codes)
        assert grpc.StatusCode.UNKNOWN not in codes, (name, codes)
    for name in instances:
        for family, samples in metric_families(stack.metrics_url(name)).items():
            methods = {method_of(sample) for sample in samples} - {None}
            assert len(methods) <= METHOD_CAP + 1, (name, family, len(methods))
        assert stack.restarts(name) == 0, f"{name} restarted"


def test_the_books_balance_after_concurrent_orders_with_refusals_and_duplicates(
    stack: NativeStack, loadgen_stopped: None
) -> None:
    """Stock is conserved on the live stack: what both inventory instances had, minus what the
    orders that succeeded took, is what they have, once the refused orders' reservations are
    released (order's compensation); nothing goes negative."""
    addresses = [f"127.0.0.1:{stack.ports[name]}" for name in ("inventory-1", "inventory-2")]
    before = poll(lambda: hostile.stock_of(addresses), lambda _: True, 10, "stock")
    orders = list(hostile.books_orders(random.Random(31), 96))
    answers = send_all(stack, [case for case, _ in orders])
    statuses = Counter(a.status for a in answers)
    assert set(statuses) <= {201, 400}, statuses
    taken: Counter[str] = Counter()
    for (_, units), answer in zip(orders, answers, strict=True):
        if answer.status == 201:
            taken.update(units)
    assert statuses[400] >= len(orders) // 4, statuses  # the refused charges

    def balanced(after: dict[str, int]) -> bool:
        return all(after[sku] == before[sku] - taken[sku] for sku in hostile.SKUS)

    after = poll(lambda: hostile.stock_of(addresses), balanced, 15, "the books to balance")
    assert all(units >= 0 for units in after.values()), after


header_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=200)
fuzzed_requests = st.builds(
    hostile.HttpCase,
    kind=st.just("fuzz"),
    method=st.sampled_from(["GET", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "HEAD", "QUERY"]),
    path=st.one_of(
        st.sampled_from(["/orders", "/orders/", "/stock/sku-mug", "/healthz", "/"]),
        st.builds(lambda a, b: f"/{a}/{b}", st.sampled_from(["orders", "stock", "x"]),
                  st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E,
                                        exclude_characters="#?/%"), max_size=80)),
    ),
    body=st.one_of(st.none(), st.binary(max_size=512),
                   st.builds(lambda v: json.dumps(v).encode(), st.recursive(
                       st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
                       lambda c: st.one_of(st.lists(c, max_size=3),
                                           st.dictionaries(st.sampled_from(
                                               ["user", "items", "sku", "quantity", "currency"]),
                                               c, max_size=4)),
                       max_leaves=10))),
    headers=st.dictionaries(
        st.sampled_from(["x-user", "baggage", "traceparent", "tracestate", "x-request-timeout-ms",
                         "content-type", "x-api-key"]),
        header_values, max_size=4,
    ),
)  # fmt: skip


@settings(max_examples=150, deadline=None, database=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])  # fmt: skip
@given(case=fuzzed_requests)
def test_fuzzed_requests_never_get_a_5xx(stack: NativeStack, case: hostile.HttpCase) -> None:
    """Bounded fuzz of the live gateway's request parsing: methods, paths, headers and bodies
    (bytes, or JSON with the order's field names); a 4xx is always a JSON error."""
    client = gateway_client(stack)
    try:
        answer = client.send(case)
    finally:
        client.close()
    assert 0 < answer.status < 500, (case, answer)
    if answer.status >= 400 and case.method != "HEAD":
        assert answer.json_error, (case, answer)
