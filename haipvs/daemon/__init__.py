"""The daemon layer: pure decisions (what a file may run, what a reload does) the
supervisor executes.

- ``accept``: the one gate a config file passes (check-config, start, reload).
- ``reload``: ``plan_reload(running, new) -> ReloadPlan``, frozen and pure.
"""
