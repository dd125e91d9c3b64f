"""haipvs VRRP: a sans-IO VRRPv2/v3 core (codec + election machine) and its IO runner.

Other packages import only from here (design.md §2). The core modules
(settings, packet, timing, machine, errors) are pure: no IO, no clock, no logger.
"""

from vrrp.errors import DropReason, MalformedAdvert, VrrpError, VrrpUsageError
from vrrp.machine import (
    TRANSITIONS,
    Action,
    AdvertDropped,
    AdvertMismatch,
    Announce,
    InstallVips,
    PriorityChanged,
    RemoveVips,
    SendAdvert,
    State,
    Transition,
    TransitionReason,
    VrrpMachine,
    build_advert,
)
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
from vrrp.timing import master_down_interval, skew_time

# --- IO side (vrrp IO engineer: ports, fake, linux, runner, track, notify) ---
# The lead fills this section in; keep the core exports above unchanged.
# --- end of IO side ---

__all__ = [
    # core (vrrp core engineer)
    "IPPROTO_VRRP",
    "PRIORITY_OWNER",
    "TRANSITIONS",
    "VRRP_MULTICAST_V4",
    "VRRP_MULTICAST_V6",
    "VRRP_TTL",
    "Action",
    "AdvertDropped",
    "AdvertMismatch",
    "Advertisement",
    "Announce",
    "DropReason",
    "InstallVips",
    "InstanceKey",
    "InstanceSettings",
    "MalformedAdvert",
    "NotifySettings",
    "PriorityChanged",
    "RemoveVips",
    "SendAdvert",
    "State",
    "TrackInterface",
    "TrackScript",
    "Transition",
    "TransitionReason",
    "VipSpec",
    "VrrpError",
    "VrrpMachine",
    "VrrpUsageError",
    "build_advert",
    "check_ttl",
    "decode_advert",
    "encode_advert",
    "master_down_interval",
    "parse_ipv4_packet",
    "skew_time",
    # IO side: the lead adds the names of the section above here.
]
