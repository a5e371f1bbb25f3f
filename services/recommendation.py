"""recommendation (sync gRPC): "you may also like". Non-core: order falls back to a default list
when it fails or is slow, and the order still succeeds."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import grpc

from services import runtime
from services.catalog import CATALOG
from services.protos import demoshop_pb2 as pb
from services.protos import demoshop_pb2_grpc as pb_grpc

MAX_LIMIT = 20


class Recommendation(pb_grpc.RecommendationServicer):
    def __init__(self, node: runtime.Node) -> None:
        self._node = node
        self._catalog = sorted(CATALOG)

    def Recommend(self, request: pb.RecommendRequest, context: Any) -> pb.RecommendReply:  # noqa: N802
        if not 0 <= request.limit <= MAX_LIMIT:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"limit: must be 0..{MAX_LIMIT}")
        limit = request.limit or 3
        self._node.simulated_io("cache.get user_profile", "cache_latency_ms",
                                **{"db.system.name": "redis"})  # fmt: skip
        self._node.simulated_io("model.score", "model_latency_ms", **{"model.name": "co-purchase"})
        bought = set(request.skus)
        candidates = [sku for sku in self._catalog if sku not in bought]
        # Deterministic per user, so a user sees stable suggestions.
        start = sum(map(ord, request.user)) % max(1, len(candidates))
        ranked = candidates[start:] + candidates[:start]
        return pb.RecommendReply(skus=ranked[:limit])


def add_servicers(server: Any, node: runtime.Node) -> Iterable[str]:
    pb_grpc.add_RecommendationServicer_to_server(Recommendation(node), server)
    return ["demoshop.v1.Recommendation"]


if __name__ == "__main__":
    runtime.serve("recommendation", add_servicers)
