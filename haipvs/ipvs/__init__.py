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

from haipvs.ipvs.coalescer import Coalescer
from haipvs.ipvs.desired import (
    AdminState,
    AdminView,
    Desired,
    HealthKey,
    HealthView,
    Note,
    NoteKey,
    ServiceSpec,
    build_desired,
    desired_table,
    effective_weight,
    with_drains,
)
from haipvs.ipvs.drain import Drain, DrainEvent, DrainEventKind, DrainTracker
from haipvs.ipvs.errors import EBUSY, EEXIST, EINVAL, ENOENT, ESRCH, IpvsError, KernelError
from haipvs.ipvs.fake import FakeIpvsKernel
from haipvs.ipvs.kernel import BatchIpvsKernel, IpvsKernel
from haipvs.ipvs.model import (
    SCHEDULERS,
    ActualTable,
    AddDest,
    AddService,
    DeleteDest,
    DeleteService,
    Dest,
    DestKey,
    DestStats,
    Family,
    Forwarding,
    IpvsTable,
    IpvsTimeouts,
    Op,
    OpReason,
    Protocol,
    SchedFlags,
    Service,
    ServiceEntry,
    ServiceKey,
    TunFlags,
    TunType,
    UpdateDest,
    UpdateService,
    op_dest_key,
    op_name,
    op_target,
)
from haipvs.ipvs.plan import apply_op, apply_ops, plan_changes
from haipvs.ipvs.programmer import (
    DrainStatus,
    IpvsProgrammer,
    ProgrammerEvent,
    ProgrammerStatus,
    event_name,
)

__all__ = [
    "EBUSY",
    "EEXIST",
    "EINVAL",
    "ENOENT",
    "ESRCH",
    "SCHEDULERS",
    "ActualTable",
    "AddDest",
    "AddService",
    "AdminState",
    "AdminView",
    "BatchIpvsKernel",
    "Coalescer",
    "DeleteDest",
    "DeleteService",
    "Desired",
    "Dest",
    "DestKey",
    "DestStats",
    "Drain",
    "DrainEvent",
    "DrainEventKind",
    "DrainStatus",
    "DrainTracker",
    "FakeIpvsKernel",
    "Family",
    "Forwarding",
    "HealthKey",
    "HealthView",
    "IpvsError",
    "IpvsKernel",
    "IpvsProgrammer",
    "IpvsTable",
    "IpvsTimeouts",
    "KernelError",
    "Note",
    "NoteKey",
    "Op",
    "OpReason",
    "ProgrammerEvent",
    "ProgrammerStatus",
    "Protocol",
    "SchedFlags",
    "Service",
    "ServiceEntry",
    "ServiceKey",
    "ServiceSpec",
    "TunFlags",
    "TunType",
    "UpdateDest",
    "UpdateService",
    "apply_op",
    "apply_ops",
    "build_desired",
    "desired_table",
    "effective_weight",
    "event_name",
    "op_dest_key",
    "op_name",
    "op_target",
    "plan_changes",
    "with_drains",
]
