"""gRPC status codes and details as this package reports them: the Go spelling of code names
(go-grpc-prometheus's ``grpc_code`` label values, which community dashboards expect), the code of
any ``RpcError``, and status details bounded to what a peer's metadata limit lets through."""

from __future__ import annotations

import grpc

# Status codes in Go spelling (grpc_code label values community dashboards expect).
_GO_CODE_NAMES = {
    grpc.StatusCode.OK: "OK",
    grpc.StatusCode.CANCELLED: "Canceled",
    grpc.StatusCode.UNKNOWN: "Unknown",
    grpc.StatusCode.INVALID_ARGUMENT: "InvalidArgument",
    grpc.StatusCode.DEADLINE_EXCEEDED: "DeadlineExceeded",
    grpc.StatusCode.NOT_FOUND: "NotFound",
    grpc.StatusCode.ALREADY_EXISTS: "AlreadyExists",
    grpc.StatusCode.PERMISSION_DENIED: "PermissionDenied",
    grpc.StatusCode.RESOURCE_EXHAUSTED: "ResourceExhausted",
    grpc.StatusCode.FAILED_PRECONDITION: "FailedPrecondition",
    grpc.StatusCode.ABORTED: "Aborted",
    grpc.StatusCode.OUT_OF_RANGE: "OutOfRange",
    grpc.StatusCode.UNIMPLEMENTED: "Unimplemented",
    grpc.StatusCode.INTERNAL: "Internal",
    grpc.StatusCode.UNAVAILABLE: "Unavailable",
    grpc.StatusCode.DATA_LOSS: "DataLoss",
    grpc.StatusCode.UNAUTHENTICATED: "Unauthenticated",
}


# Keyed by the member's name: hashing a StatusCode runs Enum.__hash__ in Python.
_GO_CODE_NAMES_BY_NAME = {code._name_: name for code, name in _GO_CODE_NAMES.items()}


def go_code_name(code: grpc.StatusCode) -> str:
    return _GO_CODE_NAMES_BY_NAME.get(getattr(code, "_name_", ""), "Unknown")


# grpc sends status details in the grpc-message trailer, which the peer's metadata limit (8 KiB
# soft, 16 KiB hard by default) also bounds: a handler echoing a 20 KB input in its error would
# have the stream reset and its caller see UNAVAILABLE, blaming the server's health. Details
# longer than this many UTF-8 bytes are cut and marked.
MAX_STATUS_DETAILS = 1024
_TRUNCATED = "... [truncated {} bytes]"


def bounded_details(details: str) -> str:
    """``details`` cut to :data:`MAX_STATUS_DETAILS` UTF-8 bytes (at a character boundary) and
    marked with how much was cut."""
    if len(details) * 4 <= MAX_STATUS_DETAILS:  # no character takes more than 4 bytes
        return details
    raw = details.encode("utf-8", "replace")
    if len(raw) <= MAX_STATUS_DETAILS:
        return details
    keep = MAX_STATUS_DETAILS - len(_TRUNCATED.format(len(raw)))
    head = raw[:keep].decode("utf-8", "ignore")
    return head + _TRUNCATED.format(len(raw) - len(head.encode()))


def rpc_error_code(exc: grpc.RpcError) -> grpc.StatusCode | None:
    """The status code of an RpcError (None when it has none, e.g. a bare RpcError)."""
    try:
        return exc.code()
    except Exception:  # a bare RpcError has no code()
        return None
