"""Type stub and lazy-export table of haipvs.config: the names below are imported on first
use (lazy_loader.attach_stub), so importing one pure submodule loads no IO module."""

from .check import summarize as summarize
from .compile import Compiled as Compiled
from .compile import CompileError as CompileError
from .compile import SyncDaemonSettings as SyncDaemonSettings
from .compile import compile_config as compile_config
from .compile import ipvs_service_key as ipvs_service_key
from .diff import Changed as Changed
from .diff import CheckKey as CheckKey
from .diff import ConfigDelta as ConfigDelta
from .diff import InstanceKey as InstanceKey
from .diff import KindDelta as KindDelta
from .diff import RealServerKey as RealServerKey
from .diff import ServiceKey as ServiceKey
from .diff import check_key as check_key
from .diff import diff_configs as diff_configs
from .diff import instance_key as instance_key
from .diff import real_server_key as real_server_key
from .diff import service_key as service_key
from .load import ConfigError as ConfigError
from .load import ConfigInvalid as ConfigInvalid
from .load import ConfigWarning as ConfigWarning
from .load import LoadedConfig as LoadedConfig
from .load import dump_config as dump_config
from .load import load_config as load_config
from .load import load_config_text as load_config_text
from .model import Check as Check
from .model import CheckTiming as CheckTiming
from .model import Config as Config
from .model import Director as Director
from .model import DnsCheck as DnsCheck
from .model import DnsRcode as DnsRcode
from .model import Drain as Drain
from .model import ExecCheck as ExecCheck
from .model import FailOpen as FailOpen
from .model import Family as Family
from .model import FlapDamping as FlapDamping
from .model import Forwarding as Forwarding
from .model import HttpCheck as HttpCheck
from .model import HttpMethod as HttpMethod
from .model import HttpsCheck as HttpsCheck
from .model import IpvsSettings as IpvsSettings
from .model import IpvsTimeouts as IpvsTimeouts
from .model import LogFormat as LogFormat
from .model import LogLevel as LogLevel
from .model import Notify as Notify
from .model import Persistence as Persistence
from .model import PingCheck as PingCheck
from .model import ProgrammerSettings as ProgrammerSettings
from .model import Protocol as Protocol
from .model import Quorum as Quorum
from .model import RealServer as RealServer
from .model import Scheduler as Scheduler
from .model import SchedulerFlag as SchedulerFlag
from .model import SmtpCheck as SmtpCheck
from .model import SorryServer as SorryServer
from .model import SyncDaemon as SyncDaemon
from .model import SyncGroup as SyncGroup
from .model import TcpCheck as TcpCheck
from .model import Track as Track
from .model import TrackInterface as TrackInterface
from .model import TrackScript as TrackScript
from .model import Tunnel as Tunnel
from .model import TunnelChecksum as TunnelChecksum
from .model import TunnelType as TunnelType
from .model import UdpCheck as UdpCheck
from .model import UnicastChecksum as UnicastChecksum
from .model import Vip as Vip
from .model import VirtualServer as VirtualServer
from .model import VrrpInstance as VrrpInstance

__all__ = [
    "Changed",
    "Check",
    "CheckKey",
    "CheckTiming",
    "CompileError",
    "Compiled",
    "Config",
    "ConfigDelta",
    "ConfigError",
    "ConfigInvalid",
    "ConfigWarning",
    "Director",
    "DnsCheck",
    "DnsRcode",
    "Drain",
    "ExecCheck",
    "FailOpen",
    "Family",
    "FlapDamping",
    "Forwarding",
    "HttpCheck",
    "HttpMethod",
    "HttpsCheck",
    "InstanceKey",
    "IpvsSettings",
    "IpvsTimeouts",
    "KindDelta",
    "LoadedConfig",
    "LogFormat",
    "LogLevel",
    "Notify",
    "Persistence",
    "PingCheck",
    "ProgrammerSettings",
    "Protocol",
    "Quorum",
    "RealServer",
    "RealServerKey",
    "Scheduler",
    "SchedulerFlag",
    "ServiceKey",
    "SmtpCheck",
    "SorryServer",
    "SyncDaemon",
    "SyncDaemonSettings",
    "SyncGroup",
    "TcpCheck",
    "Track",
    "TrackInterface",
    "TrackScript",
    "Tunnel",
    "TunnelChecksum",
    "TunnelType",
    "UdpCheck",
    "UnicastChecksum",
    "Vip",
    "VirtualServer",
    "VrrpInstance",
    "check_key",
    "compile_config",
    "diff_configs",
    "dump_config",
    "instance_key",
    "ipvs_service_key",
    "load_config",
    "load_config_text",
    "real_server_key",
    "service_key",
    "summarize",
]
