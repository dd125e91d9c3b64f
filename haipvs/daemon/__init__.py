"""The daemon layer: pure cores the supervisor (haipvs.supervisor) executes, and the
adapters around them.

- ``accept``: the one gate a config file passes (check-config, start, reload);
  ``check``: `haipvs check-config`, which prints that gate's verdict.
- ``reload``: ``plan_reload(running, new) -> ReloadPlan``, frozen and pure;
  ``plan``: `haipvs plan FILE`, that plan against the running daemon.
- ``overrides``: the operator's drains, maintenance and failover holds (pure),
  persisted; ``admin``: the admin socket the operator commands arrive on.
- ``vrrp_part``: VRRP in the daemon's process (the runner's thread);
  ``vrrp_process``: VRRP in a process of its own (keepalived's VRRP child), what
  ``haipvs run`` uses.
"""
