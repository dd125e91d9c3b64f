"""Type stub and lazy-export table of haipvs.ipvs: the names below are imported on first
use (lazy_loader.attach_stub), so importing one pure submodule loads no IO module."""

from .coalescer import Coalescer as Coalescer
from .desired import AdminState as AdminState
from .desired import AdminView as AdminView
from .desired import Desired as Desired
from .desired import HealthKey as HealthKey
from .desired import HealthView as HealthView
from .desired import Note as Note
from .desired import NoteKey as NoteKey
from .desired import ServiceSpec as ServiceSpec
from .desired import build_desired as build_desired
from .desired import desired_table as desired_table
from .desired import with_drains as with_drains
from .drain import Drain as Drain
from .drain import DrainEvent as DrainEvent
from .drain import DrainEventKind as DrainEventKind
from .drain import DrainTracker as DrainTracker
from .errors import EBUSY as EBUSY
from .errors import EEXIST as EEXIST
from .errors import EINVAL as EINVAL
from .errors import ENOENT as ENOENT
from .errors import ESRCH as ESRCH
from .errors import IpvsError as IpvsError
from .errors import KernelError as KernelError
from .fake import FakeIpvsKernel as FakeIpvsKernel
from .kernel import BatchIpvsKernel as BatchIpvsKernel
from .kernel import DirectorKernel as DirectorKernel
from .kernel import IpvsKernel as IpvsKernel
from .kernel import SyncDaemonPort as SyncDaemonPort
from .model import SCHEDULERS as SCHEDULERS
from .model import ActualTable as ActualTable
from .model import AddDest as AddDest
from .model import AddService as AddService
from .model import DeleteDest as DeleteDest
from .model import DeleteService as DeleteService
from .model import Dest as Dest
from .model import DestKey as DestKey
from .model import DestStats as DestStats
from .model import Family as Family
from .model import Forwarding as Forwarding
from .model import IpvsTable as IpvsTable
from .model import IpvsTimeouts as IpvsTimeouts
from .model import Op as Op
from .model import OpReason as OpReason
from .model import Protocol as Protocol
from .model import SchedFlags as SchedFlags
from .model import Service as Service
from .model import ServiceEntry as ServiceEntry
from .model import ServiceKey as ServiceKey
from .model import TunFlags as TunFlags
from .model import TunType as TunType
from .model import UpdateDest as UpdateDest
from .model import UpdateService as UpdateService
from .model import op_dest_key as op_dest_key
from .model import op_name as op_name
from .model import op_target as op_target
from .plan import apply_op as apply_op
from .plan import apply_ops as apply_ops
from .plan import plan_changes as plan_changes
from .programmer import DrainStatus as DrainStatus
from .programmer import IpvsProgrammer as IpvsProgrammer
from .programmer import ProgrammerEvent as ProgrammerEvent
from .programmer import ProgrammerStatus as ProgrammerStatus
from .programmer import event_name as event_name

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
    "DirectorKernel",
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
    "SyncDaemonPort",
    "TunFlags",
    "TunType",
    "UpdateDest",
    "UpdateService",
    "apply_op",
    "apply_ops",
    "build_desired",
    "desired_table",
    "event_name",
    "op_dest_key",
    "op_name",
    "op_target",
    "plan_changes",
    "with_drains",
]
