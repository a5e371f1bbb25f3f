"""Live load control: the load generator's settings (rate, scenario mix, profile) in etcd, applied
within a second and reported back; the panel's *Load* control writes them (audited).

* :mod:`telemetry.load.settings`: the bounded model (no grpc, no etcd);
* :mod:`telemetry.load.schedule`: the open-loop schedule that re-reads the rate live;
* :mod:`telemetry.load.live`: the etcd watch and the status key (``/loadgen/settings``,
  ``/loadgen/status``);
* :mod:`telemetry.load.capacity`: the capacity test's analysis (points A, B, C, the recommended
  limit, the manual estimate), and :mod:`telemetry.load.stepping`: its bounded steps (the runner
  with etcd and Prometheus is ``python -m telemetry.panel.capacity``).

Import from the submodules: this package imports nothing, so the model stays grpc-free.
"""
