"""haipvs.status: what the daemon tells the operator about itself.

- ``snapshot`` (pure): ``Snapshot``, one view of the director (VRRP, services, real
  servers with health, kernel weight, drains and overrides, the IPVS programmer), built
  by the supervisor; ``/status`` and ``/metrics`` both render it, so they never disagree.
- ``api``: the HTTP API (``/status``, ``/metrics``, ``/healthz``, ``/reload``, the page).
- ``metrics``: the Prometheus rendering of a snapshot.
- ``command``: ``haipvs status``, the ``ipvsadm -Ln``-like text view.

Modules are imported by name (``haipvs.status.snapshot``...): the package exports nothing,
so importing the pure snapshot loads no HTTP server.
"""
