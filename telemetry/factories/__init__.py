"""How a :class:`~telemetry.handle.Telemetry` handle's parts are made, one job per module:

* :mod:`.running`: what ``start()`` does, the handle's I/O (export thread, /metrics, etcd);
* :mod:`.chains`: the server and client concern chains;
* :mod:`.servers`: instrumented ``grpc.Server`` / ``grpc.aio.Server``;
* :mod:`.channels`: instrumented channels, plain or balanced over a service's instances.

None of them holds process-wide state (that is :mod:`telemetry.process`) or imports the handle.
"""
