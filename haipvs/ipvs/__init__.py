"""haipvs.ipvs: keep the kernel IPVS table equal to the config and the health checks.

Public API (other packages import only from here):

* values (model.py): ServiceKey, DestKey, Service, Dest, SchedFlags, DestStats, IpvsTable,
  ServiceEntry, ActualTable, IpvsTimeouts, the ops (AddService ... DeleteDest, ``Op``) and
  their ``OpReason``;
* what the config compiler produces (desired.py): ServiceSpec; what the checkers feed:
  HealthView keyed by (ServiceKey, DestKey);
* pure logic: desired_table / build_desired, plan_changes / apply_ops, DrainTracker;
* the kernel port (kernel.py) IpvsKernel, its strict in-memory FakeIpvsKernel, KernelError;
* the loop: IpvsProgrammer (programmer.py), run by a Coalescer.

The real kernel adapter is ``haipvs.ipvs.netlink.NetlinkIpvsKernel`` (imported lazily by the
composition root: it needs pyroute2 and a kernel with IPVS).
"""

import lazy_loader

# The public names live in __init__.pyi (also the table mypy reads); each is imported on
# first use, so `import haipvs.ipvs.<pure module>` does not drag in the IO modules.
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
