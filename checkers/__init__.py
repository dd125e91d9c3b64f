"""checkers: health checks for IPVS real servers.

Public API. Other packages import only from here (pyproject's import contracts).

* Settings (filled in by ``haipvs.config.compile``): ``Target``, ``BackendId``,
  ``Timing``, ``DampingSettings``, ``FailOpenSettings`` and the check specs
  ``TcpCheck``, ``HttpCheck``, ``ExecCheck``, ``DnsCheck``, ``UdpCheck``
  (``CheckSpec`` is their union); ``check_key`` is the probe identity.
* Running checks: ``CheckerPool`` (``update``/``start``/``stop``/``snapshot``)
  emits ``HealthChanged``; ``effective_weight`` turns a configured weight and
  a ``weight_factor`` into the kernel weight.
* Probes: ``run_probe`` and ``ProbeResult``; ``ScriptedProber`` for tests and
  dry runs.
"""

from checkers.fake import ScriptedProber
from checkers.health import (
    BackendStatus,
    HealthChanged,
    HistoryEntry,
    PoolSnapshot,
    ServiceStatus,
)
from checkers.hysteresis import Reason
from checkers.pool import DEFAULT_MAX_CONCURRENCY, CheckerPool, Prober
from checkers.probe import ProbeResult, run_probe
from checkers.slowstart import effective_weight
from checkers.spec import (
    DEFAULT_EXPECT_STATUS,
    BackendId,
    CheckKey,
    CheckSpec,
    DampingSettings,
    DnsCheck,
    ExecCheck,
    FailOpenSettings,
    HttpCheck,
    IPAddress,
    SpecError,
    Target,
    TcpCheck,
    Timing,
    UdpCheck,
    check_key,
)

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
    "HealthChanged",
    "HistoryEntry",
    "HttpCheck",
    "IPAddress",
    "PoolSnapshot",
    "ProbeResult",
    "Prober",
    "Reason",
    "ScriptedProber",
    "ServiceStatus",
    "SpecError",
    "Target",
    "TcpCheck",
    "Timing",
    "UdpCheck",
    "check_key",
    "effective_weight",
    "run_probe",
]
