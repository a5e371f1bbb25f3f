"""Live governance rules, faults and trace sampling against a real etcd, on real loopback servers.
A package so that its conftest.py (one etcd for all its modules) and support module have their own
module names (``live_rules.conftest``) beside the root ``conftest``.
"""
