"""checkers: health checks for IPVS real servers.

Public API. Other packages import only from here (design.md §2).
"""

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
    "BackendId",
    "CheckKey",
    "CheckSpec",
    "DampingSettings",
    "DnsCheck",
    "ExecCheck",
    "FailOpenSettings",
    "HttpCheck",
    "IPAddress",
    "SpecError",
    "Target",
    "TcpCheck",
    "Timing",
    "UdpCheck",
    "check_key",
]
