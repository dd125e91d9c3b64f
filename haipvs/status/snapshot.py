"""The status snapshot: everything `/status`, `/metrics` and `haipvs status` show.

A pure value built by the supervisor from its parts (VRRP instances, checker pool,
IPVS programmer, the kernel table); `to_json()` is the `/status` document, whose
schema ships as docs/status.schema.json. Times are wall-clock seconds since the
epoch (for people and dashboards), durations are seconds.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

__all__ = [
    "DrainView",
    "InstanceView",
    "OverrideView",
    "ProgrammerView",
    "RealServerView",
    "ReloadOutcome",
    "ReloadView",
    "ScaleOutView",
    "ServiceView",
    "Snapshot",
    "TransitionView",
]


@dataclass(frozen=True, slots=True)
class TransitionView:
    from_state: str
    to_state: str
    reason: str
    detail: str
    at: float


@dataclass(frozen=True, slots=True)
class InstanceView:
    name: str
    interface: str
    vrid: int
    version: int
    state: str
    priority: int  # configured
    effective_priority: int  # after tracking
    priority_reasons: tuple[str, ...]  # what lowered it ("interface eth1 down -60")
    master: str | None
    vips: tuple[str, ...]
    last_transition: TransitionView | None
    transitions: int = 0
    adverts_sent: int = 0
    adverts_received: int = 0
    adverts_dropped: dict[str, int] = field(default_factory=dict)
    # auth_hmac verdicts (keepalived's auth_ext_* counters); empty without auth_hmac.
    auth_verdicts: dict[str, int] = field(default_factory=dict)
    # virtual routes / rules the kernel refused (each logged as vrrp.route.failed)
    route_errors: int = 0


@dataclass(frozen=True, slots=True)
class DrainView:
    since: float
    deadline: float
    cause: str


@dataclass(frozen=True, slots=True)
class RealServerView:
    address: str
    port: int
    weight: int  # configured
    kernel_weight: int | None  # None: not in the kernel table
    forwarding: str
    health: str  # "up" | "down" | "unknown"
    reason: str
    since: float | None
    latency_ms: float | None
    active_conns: int = 0
    inactive_conns: int = 0
    drain: DrainView | None = None
    fail_open_held: bool = False
    #: the operator's override: "drain" | "maintenance" | None (haipvs drain / maintenance)
    admin: str | None = None


@dataclass(frozen=True, slots=True)
class ServiceView:
    name: str
    key: str  # tcp/198.51.100.10:80 or fwmark/10
    scheduler: str
    in_kernel: bool
    real_servers: tuple[RealServerView, ...]
    sorry_server: str | None = None
    sorry_active: bool = False
    fail_open: bool = False
    quorum_min_up: int = 1
    #: haipvs.ipvs.fingerprint of the kernel's table (None: the service is not in it)
    fingerprint: str | None = None
    #: the kernel's dest list is in cold-start order (mh builds its table in list order)
    dest_order_canonical: bool | None = None


@dataclass(frozen=True, slots=True)
class ProgrammerView:
    in_sync: bool
    syncs: int
    last_sync_at: float | None
    last_sync_seconds: float | None
    last_error: str | None
    last_errno: int | None
    ops_applied: dict[str, int]
    ops_failed: int
    drift_repairs: int


@dataclass(frozen=True, slots=True)
class ReloadOutcome:
    """What one reload did, as ``POST /reload`` answers it (here, not in the API module, so
    that the daemon can name it without loading aiohttp before its VRRP process starts)."""

    applied: bool
    errors: tuple[str, ...]
    summary: str


@dataclass(frozen=True, slots=True)
class ReloadView:
    at: float
    result: str  # "applied" | "rejected"
    errors: tuple[str, ...] = ()
    summary: str = ""


@dataclass(frozen=True, slots=True)
class OverrideView:
    """One operator override: a drained / in-maintenance real server, a failover hold, or
    this director drained from the routers (scale-out mode)."""

    kind: str  # "drain" | "maintenance" | "failover" | "drain-director"
    #: 10.0.0.12:80, 10.0.0.12 (every port), the VRRP instance, or the director's name
    target: str
    service: str | None  # the virtual server it is limited to (None: every one)
    uid: int  # who set it (SO_PEERCRED of the admin socket)
    since: float
    until: float | None = None  # a failover hold's end (None: until released)
    matches: int = 0  # real servers of the running config it covers (0: stale)


@dataclass(frozen=True, slots=True)
class ScaleOutView:
    """Scale-out mode (``bgp``): the VIPs this director announces, the operator's drain,
    BIRD's protocols (``haipvs_vip_192_0_2_10: up``, ``haipvs_bgp_10_0_1_1: up
    Established``) and BIRD's last error while it fails."""

    announced: tuple[str, ...]
    drained: bool
    protocols: dict[str, str] = field(default_factory=dict)
    speaker_error: str | None = None
    #: each VIP the gates keep withdrawn, with every blocker (why it is not announced)
    withheld: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Snapshot:
    director: str
    version: str
    started_at: float
    config_file: str
    instances: tuple[InstanceView, ...]
    services: tuple[ServiceView, ...]
    programmer: ProgrammerView
    last_reload: ReloadView | None
    reloads_applied: int = 0
    reloads_rejected: int = 0
    loop_lag_ms: float = 0.0
    vrrp_loop_lag_ms: float = 0.0
    #: The VRRP process died on its own and was started again this many times.
    vrrp_restarts: int = 0
    #: Failed probes not counted because the checker was not running when their deadline
    #: passed (checkers/inconclusive.py; each episode logged as check.inconclusive).
    checks_inconclusive: int = 0
    #: The operator's overrides in force (haipvs drain / maintenance / failover).
    overrides: tuple[OverrideView, ...] = ()
    #: Scale-out mode only (a bgp section); None in a VRRP pair.
    bgp: ScaleOutView | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)
