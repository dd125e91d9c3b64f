"""haipvs VRRP: a sans-IO VRRPv2/v3 core (codec + election machine) and its IO runner.

Other packages import only from here (design.md §2). The core modules
(settings, packet, timing, machine, errors) are pure: no IO, no clock, no logger.
"""

from vrrp.errors import DropReason, MalformedAdvert, VrrpError, VrrpUsageError
from vrrp.packet import (
    IPPROTO_VRRP,
    VRRP_MULTICAST_V4,
    VRRP_MULTICAST_V6,
    VRRP_TTL,
    Advertisement,
    check_ttl,
    decode_advert,
    encode_advert,
    parse_ipv4_packet,
)
from vrrp.settings import (
    PRIORITY_OWNER,
    InstanceKey,
    InstanceSettings,
    NotifySettings,
    TrackInterface,
    TrackScript,
    VipSpec,
)

# --- IO side (vrrp IO engineer: ports, fake, linux, runner, track, notify) ---
# The lead fills this section in; keep the core exports above unchanged.
# --- end of IO side ---

__all__ = [
    "IPPROTO_VRRP",
    "PRIORITY_OWNER",
    "VRRP_MULTICAST_V4",
    "VRRP_MULTICAST_V6",
    "VRRP_TTL",
    "Advertisement",
    "DropReason",
    "InstanceKey",
    "InstanceSettings",
    "MalformedAdvert",
    "NotifySettings",
    "TrackInterface",
    "TrackScript",
    "VipSpec",
    "VrrpError",
    "VrrpUsageError",
    "check_ttl",
    "decode_advert",
    "encode_advert",
    "parse_ipv4_packet",
]
