"""The daemon layer: pure cores the supervisor executes, and the adapters around them.

- ``accept``: the one gate a config file passes (check-config, start, reload).
- ``reload``: ``plan_reload(running, new) -> ReloadPlan``, frozen and pure.
- ``plan``: `haipvs plan FILE`, that plan against the running daemon.
"""
