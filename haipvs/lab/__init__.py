"""haipvs.lab: development only, a Linux kernel with IPVS to test and demonstrate against.

- ``runner``: ``haipvs lab run`` boots a user-mode-linux guest and runs a command in it
  (the host kernel may lack IPVS); benches enter it with ``rerun_in_lab_unless_ipvs``.
- ``topology``, ``pair``, ``scaleout``: network namespaces and veths: a director pair
  with clients and real servers, or N scale-out directors behind a BIRD router.
- ``servers``, ``client``, ``holders``, ``faults``: real servers, a client that measures
  outages, who holds the VIP, and the faults to inject.
- ``nemesis``: randomised fault schedules with invariants checked on the daemons' logs.
- ``demo``, ``command``, ``assets``, ``unprivileged``, ``guest``: the demo and its CLI.

Nothing here runs in a production daemon: only the CLI's ``haipvs lab`` imports it.
"""
