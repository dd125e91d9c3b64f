"""Type stub and lazy-export table of checkers: the names below are imported on first
use (lazy_loader.attach_stub), so importing one pure submodule loads no IO module."""

from .fake import ScriptedProber as ScriptedProber
from .health import BackendStatus as BackendStatus
from .health import HealthChanged as HealthChanged
from .health import HistoryEntry as HistoryEntry
from .health import PoolSnapshot as PoolSnapshot
from .health import ServiceStatus as ServiceStatus
from .hysteresis import Reason as Reason
from .pool import DEFAULT_MAX_CONCURRENCY as DEFAULT_MAX_CONCURRENCY
from .pool import CheckerPool as CheckerPool
from .pool import Prober as Prober
from .probe import run_probe as run_probe
from .result import ProbeResult as ProbeResult
from .slowstart import effective_weight as effective_weight
from .spec import DEFAULT_EXPECT_STATUS as DEFAULT_EXPECT_STATUS
from .spec import BackendId as BackendId
from .spec import CheckKey as CheckKey
from .spec import CheckSpec as CheckSpec
from .spec import DampingSettings as DampingSettings
from .spec import DnsCheck as DnsCheck
from .spec import ExecCheck as ExecCheck
from .spec import FailOpenSettings as FailOpenSettings
from .spec import FileCheck as FileCheck
from .spec import HttpCheck as HttpCheck
from .spec import IPAddress as IPAddress
from .spec import PingCheck as PingCheck
from .spec import SmtpCheck as SmtpCheck
from .spec import SpecError as SpecError
from .spec import Target as Target
from .spec import TcpCheck as TcpCheck
from .spec import Timing as Timing
from .spec import UdpCheck as UdpCheck
from .spec import check_key as check_key
from .spec import endpoint_label as endpoint_label

__all__ = [
    "DEFAULT_EXPECT_STATUS",
    "DEFAULT_MAX_CONCURRENCY",
    "BackendId",
    "BackendStatus",
    "CheckKey",
    "CheckSpec",
    "CheckerPool",
    "DampingSettings",
    "DnsCheck",
    "ExecCheck",
    "FailOpenSettings",
    "FileCheck",
    "HealthChanged",
    "HistoryEntry",
    "HttpCheck",
    "IPAddress",
    "PingCheck",
    "PoolSnapshot",
    "ProbeResult",
    "Prober",
    "Reason",
    "ScriptedProber",
    "ServiceStatus",
    "SmtpCheck",
    "SpecError",
    "Target",
    "TcpCheck",
    "Timing",
    "UdpCheck",
    "check_key",
    "effective_weight",
    "run_probe",
]
