"""Container healthchecks: exit 0 when healthy, 1 otherwise (with the reason on stderr).

python -m services.healthcheck grpc 127.0.0.1:50051 [service]   # grpc.health.v1: SERVING
python -m services.healthcheck http http://127.0.0.1:8080/healthz  # any 2xx
"""

from __future__ import annotations

import sys
import urllib.request

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

TIMEOUT = 3.0


def check_grpc(address: str, service: str = "") -> str | None:
    """None when SERVING, else why not."""
    with grpc.insecure_channel(address) as channel:
        try:
            reply = health_pb2_grpc.HealthStub(channel).Check(
                health_pb2.HealthCheckRequest(service=service), timeout=TIMEOUT
            )
        except grpc.RpcError as error:
            return f"{address}: {error.code().name}"
    if reply.status != health_pb2.HealthCheckResponse.SERVING:
        return f"{address}: {health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)}"
    return None


def check_http(url: str) -> str | None:
    try:
        with urllib.request.urlopen(url, timeout=TIMEOUT) as response:
            return None if 200 <= response.status < 300 else f"{url}: HTTP {response.status}"
    except OSError as exc:
        return f"{url}: {exc}"


def main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("grpc", "http"):
        print(__doc__, file=sys.stderr)
        return 2
    problem = check_grpc(*argv[1:3]) if argv[0] == "grpc" else check_http(argv[1])
    if problem:
        print(f"unhealthy: {problem}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
