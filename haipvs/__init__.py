"""haipvs: a keepalived-class high-availability director for Linux Virtual Server.

The daemon layer and its tools: ``haipvs.config`` (the YAML contract), ``haipvs.ipvs``
(the IPVS programmer and its netlink codec), ``haipvs.supervisor`` (the composition
root of ``haipvs run``), ``haipvs.status`` (status API and metrics), ``haipvs.importer``
(``import-keepalived``), ``haipvs.lab`` (the user-mode-linux lab) and ``haipvs.cli``.
The VRRP core and the health checkers are the sibling packages ``vrrp`` and
``checkers``, which know nothing of this one.
"""
