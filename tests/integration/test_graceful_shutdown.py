"""SIGTERM on a registered server: deregister first, finish in-flight calls, refuse new ones."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import echo_pb2
import echo_pb2_grpc
import grpc
import pytest
from helpers import wait_until

from telemetry.discovery.directory import ServiceDirectory
from telemetry.discovery.etcd import EtcdClient, EtcdConfig
from telemetry.testing.etcd_server import EtcdServer

SERVER = """
import sys, time
import echo_pb2, echo_pb2_grpc
import telemetry

class Slow(echo_pb2_grpc.EchoServicer):
    def Unary(self, request, context):
        print("handling", flush=True)
        time.sleep(request.sleep_seconds)
        return echo_pb2.EchoReply(text=request.text)

tel = telemetry.init(service_name="slow", etcd=sys.argv[1], instance_id="s1", metrics_port=None,
                     tracing_enabled=False, access_log=False)
server = tel.server()
echo_pb2_grpc.add_EchoServicer_to_server(Slow(), server)
port = server.add_insecure_port("127.0.0.1:0")
server.start()
tel.register(f"127.0.0.1:{port}", ttl=5)
print(port, flush=True)
tel.serve(server, grace=5)
print("stopped", flush=True)
"""


@pytest.fixture
def etcd() -> Iterator[EtcdServer]:
    with EtcdServer() as server:
        yield server


def test_sigterm_deregisters_then_drains_in_flight_calls(etcd: EtcdServer) -> None:
    client = EtcdClient(EtcdConfig(endpoints=(etcd.endpoint,)))
    directory = ServiceDirectory(client).start()
    stubs = Path(echo_pb2.__file__).parent
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(stubs), *sys.path])}
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVER, etcd.endpoint], stdout=subprocess.PIPE, text=True, env=env
    )
    try:
        assert proc.stdout is not None
        port = int(proc.stdout.readline())
        wait_until(lambda: directory.instances("slow"), message="registered")
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        stub = echo_pb2_grpc.EchoStub(channel)
        in_flight = stub.Unary.future(echo_pb2.EchoRequest(text="slow", sleep_seconds=1.5), timeout=10)
        assert proc.stdout.readline().strip() == "handling"
        os.kill(proc.pid, signal.SIGTERM)
        # Gone from the registry while the call is still running.
        wait_until(lambda: not directory.instances("slow"), message="deregistered")
        assert not in_flight.done()
        assert in_flight.result().text == "slow"  # drained, not cut
        assert proc.wait(15) == 0
        assert proc.stdout.read().strip().endswith("stopped")
        with pytest.raises(grpc.RpcError) as refused:
            stub.Unary(echo_pb2.EchoRequest(text="late"), timeout=2)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
        channel.close()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        directory.stop()
        client.close()
