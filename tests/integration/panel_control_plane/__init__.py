"""The panel's control plane against a real etcd and real services, and its HTTP clients against
local HTTP servers. A package so that its conftest.py (one etcd for all its modules) and support
module have their own module names (``panel_control_plane.conftest``) beside the root
``conftest``.
"""
