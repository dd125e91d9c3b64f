"""The daemon layer: pure decisions the supervisor executes, and the adapters around them.

- ``accept``: the one gate a config file passes (check-config, start, reload);
  ``check``: `haipvs check-config`, which prints that gate's verdict.
- ``reload``: ``plan_reload(running, new) -> ReloadPlan``, frozen and pure.
- ``overrides``: the operator's drains, maintenance and failover holds (pure), persisted.
- ``admin``: the admin socket those commands arrive on.
"""
