"""Type stub and lazy-export table of vrrp: the names below are imported on first
use (lazy_loader.attach_stub), so importing one pure submodule loads no IO module."""

from .auth_hmac import AntiReplay as AntiReplay
from .auth_hmac import AuthHmacSettings as AuthHmacSettings
from .auth_hmac import AuthMode as AuthMode
from .auth_hmac import AuthVerdict as AuthVerdict
from .auth_hmac import decode_key as decode_key
from .errors import DropReason as DropReason
from .errors import MalformedAdvert as MalformedAdvert
from .errors import VrrpError as VrrpError
from .errors import VrrpUsageError as VrrpUsageError
from .fake import FakeAdvertLink as FakeAdvertLink
from .fake import FakeLinkMonitor as FakeLinkMonitor
from .fake import FakePorts as FakePorts
from .fake import FakeRouting as FakeRouting
from .fake import FakeSegment as FakeSegment
from .fake import FakeVipAddresses as FakeVipAddresses
from .fake import FakeVirtualMacs as FakeVirtualMacs
from .fake import RecordingAnnouncer as RecordingAnnouncer
from .linux import LinuxPorts as LinuxPorts
from .linux import LinuxVipAddresses as LinuxVipAddresses
from .machine import TRANSITIONS as TRANSITIONS
from .machine import Action as Action
from .machine import AdvertDropped as AdvertDropped
from .machine import AdvertMismatch as AdvertMismatch
from .machine import Announce as Announce
from .machine import InstallVips as InstallVips
from .machine import InstanceReload as InstanceReload
from .machine import InstancesPlan as InstancesPlan
from .machine import InstanceStep as InstanceStep
from .machine import OldUnicastChecksum as OldUnicastChecksum
from .machine import PriorityChanged as PriorityChanged
from .machine import RemoveVips as RemoveVips
from .machine import SendAdvert as SendAdvert
from .machine import State as State
from .machine import Transition as Transition
from .machine import TransitionReason as TransitionReason
from .machine import VipsChanged as VipsChanged
from .machine import VrrpMachine as VrrpMachine
from .machine import build_advert as build_advert
from .machine import instance_reload as instance_reload
from .machine import plan_instances as plan_instances
from .machine import vip_changes as vip_changes
from .notify import HookKind as HookKind
from .notify import Notifier as Notifier
from .notify import RunOutcome as RunOutcome
from .notify import run_argv as run_argv
from .packet import IPPROTO_VRRP as IPPROTO_VRRP
from .packet import VRRP_MULTICAST_V4 as VRRP_MULTICAST_V4
from .packet import VRRP_MULTICAST_V6 as VRRP_MULTICAST_V6
from .packet import VRRP_TTL as VRRP_TTL
from .packet import Advertisement as Advertisement
from .packet import check_ttl as check_ttl
from .packet import decode_advert as decode_advert
from .packet import encode_advert as encode_advert
from .packet import parse_ipv4_packet as parse_ipv4_packet
from .ports import AdvertLink as AdvertLink
from .ports import Announcer as Announcer
from .ports import InstancePorts as InstancePorts
from .ports import LinkEvent as LinkEvent
from .ports import LinkMonitor as LinkMonitor
from .ports import PortsProvider as PortsProvider
from .ports import ReceivedAdvert as ReceivedAdvert
from .ports import VipAddresses as VipAddresses
from .ports import VirtualMacs as VirtualMacs
from .ports import VirtualRouting as VirtualRouting
from .ports import VrrpIoError as VrrpIoError
from .routes import Nexthop as Nexthop
from .routes import RouteScope as RouteScope
from .routes import RouteType as RouteType
from .routes import RuleAction as RuleAction
from .routes import VirtualRoute as VirtualRoute
from .routes import VirtualRule as VirtualRule
from .runner import InstanceRunner as InstanceRunner
from .service import SyncGroup as SyncGroup
from .service import VrrpService as VrrpService
from .settings import PRIORITY_OWNER as PRIORITY_OWNER
from .settings import InstanceKey as InstanceKey
from .settings import InstanceSettings as InstanceSettings
from .settings import NotifySettings as NotifySettings
from .settings import TrackInterface as TrackInterface
from .settings import TrackScript as TrackScript
from .settings import UnicastChecksum as UnicastChecksum
from .settings import VipSpec as VipSpec
from .status import FaultSource as FaultSource
from .status import InstanceStatus as InstanceStatus
from .status import LoopLag as LoopLag
from .status import RunnerCounters as RunnerCounters
from .sync_group import SyncGroupPolicy as SyncGroupPolicy
from .sync_group import group_state as group_state
from .timing import master_down_interval as master_down_interval
from .timing import skew_time as skew_time
from .track import InstanceTracker as InstanceTracker
from .track_file import TrackFile as TrackFile
from .track_process import ParamMatch as ParamMatch
from .track_process import TrackProcess as TrackProcess
from .track_verdict import TrackVerdict as TrackVerdict
from .track_verdict import clamp_priority as clamp_priority
from .vmac import VmacSettings as VmacSettings
from .vmac import VmacSpec as VmacSpec
from .vmac import virtual_mac as virtual_mac

__all__ = [
    "IPPROTO_VRRP",
    "PRIORITY_OWNER",
    "TRANSITIONS",
    "VRRP_MULTICAST_V4",
    "VRRP_MULTICAST_V6",
    "VRRP_TTL",
    "Action",
    "AdvertDropped",
    "AdvertLink",
    "AdvertMismatch",
    "Advertisement",
    "Announce",
    "Announcer",
    "AntiReplay",
    "AuthHmacSettings",
    "AuthMode",
    "AuthVerdict",
    "DropReason",
    "FakeAdvertLink",
    "FakeLinkMonitor",
    "FakePorts",
    "FakeRouting",
    "FakeSegment",
    "FakeVipAddresses",
    "FakeVirtualMacs",
    "FaultSource",
    "HookKind",
    "InstallVips",
    "InstanceKey",
    "InstancePorts",
    "InstanceReload",
    "InstanceRunner",
    "InstanceSettings",
    "InstanceStatus",
    "InstanceStep",
    "InstanceTracker",
    "InstancesPlan",
    "LinkEvent",
    "LinkMonitor",
    "LinuxPorts",
    "LinuxVipAddresses",
    "LoopLag",
    "MalformedAdvert",
    "Nexthop",
    "Notifier",
    "NotifySettings",
    "OldUnicastChecksum",
    "ParamMatch",
    "PortsProvider",
    "PriorityChanged",
    "ReceivedAdvert",
    "RecordingAnnouncer",
    "RemoveVips",
    "RouteScope",
    "RouteType",
    "RuleAction",
    "RunOutcome",
    "RunnerCounters",
    "SendAdvert",
    "State",
    "SyncGroup",
    "TrackFile",
    "TrackInterface",
    "TrackProcess",
    "TrackScript",
    "TrackVerdict",
    "Transition",
    "TransitionReason",
    "UnicastChecksum",
    "VipAddresses",
    "VipSpec",
    "VipsChanged",
    "VirtualMacs",
    "VirtualRoute",
    "VirtualRouting",
    "VirtualRule",
    "VmacSettings",
    "VmacSpec",
    "VrrpError",
    "VrrpIoError",
    "VrrpMachine",
    "VrrpService",
    "VrrpUsageError",
    "build_advert",
    "check_ttl",
    "decode_advert",
    "decode_key",
    "encode_advert",
    "instance_reload",
    "master_down_interval",
    "parse_ipv4_packet",
    "plan_instances",
    "run_argv",
    "skew_time",
    "vip_changes",
    "virtual_mac",
]
