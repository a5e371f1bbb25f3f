"""gRPC method names (``/pkg.Service/Method``), shared by the chain and the grpc-free governance."""

from __future__ import annotations

__all__ = ["split_method"]


def split_method(full_method: str) -> tuple[str, str]:
    """``/pkg.Service/Method`` -> (``pkg.Service``, ``Method``); anything else -> ("unknown", ...)."""
    parts = full_method.split("/")
    if len(parts) == 3 and not parts[0] and parts[1] and parts[2]:
        return parts[1], parts[2]
    return "unknown", full_method.strip("/") or "unknown"
