"""Validated Config -> the settings the parts take (they never see YAML or pydantic).

Pure. One function, `compile_config`, returns a `Compiled` value with:
- `instances`: vrrp.InstanceSettings per VRRP instance (sync group names filled in);
- `services`: haipvs.ipvs ServiceSpec per virtual server, plus the owned keys;
- `checks`: checkers assignments (BackendId -> (Target, CheckSpec)) for real servers
  that have a check, `always_up` for those that have none (keepalived: a real server
  without a checker is always in the table), and `fail_open` per service;
- `up_at_start`: the checked backends whose check has ``alpha: false``: at start-up they
  count as up until their first result (pass them as CheckerPool ``adopted``);
- `backends`: BackendId -> (ipvs ServiceKey, DestKey), how a health change reaches
  the IPVS programmer;
- the IPVS timeouts, sync daemon and programmer intervals.

Rule: a config that loaded compiles. The settings types validate themselves and raise on
misuse; if one refuses a value the config rules let through, `CompileError` names the key
path, and the loader reports it as ``FILE:LINE: key.path: message`` (so `check-config`
catches it before the daemon would).

Not carried, because no settings type has a field for it yet: the track script ``name``
(vrrp TrackScript).

(First written by the lead for the supervisor; extended by the config engineer.)
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv6Address

import checkers
import vrrp
from haipvs.bgp.plan import ScaleOutPlan, VipPlan
from haipvs.bgp.snippet import BfdTimers, BirdSettings, Neighbour
from haipvs.config import model as m
from haipvs.config.rules import scheduler_flags_in_use
from haipvs.ipvs import (
    Dest,
    DestKey,
    Family,
    Forwarding,
    IpvsTimeouts,
    Protocol,
    SchedFlags,
    Service,
    ServiceKey,
    ServiceSpec,
    TunFlags,
    TunType,
)

__all__ = [
    "CompileError",
    "Compiled",
    "SyncDaemonSettings",
    "compile_config",
    "ipvs_service_key",
]


class CompileError(ValueError):
    """A settings type refused a value of a validated config (a gap in the config rules)."""

    def __init__(self, key_path: m.KeyPath, message: str) -> None:
        self.key_path = key_path
        self.message = message
        super().__init__(f"{m.format_key_path(key_path)}: {message}")


_FORWARDING = {
    m.Forwarding.NAT: Forwarding.MASQ,
    m.Forwarding.DR: Forwarding.DROUTE,
    m.Forwarding.TUN: Forwarding.TUNNEL,
}
_TUN_TYPE = {
    m.TunnelType.IPIP: TunType.IPIP,
    m.TunnelType.GUE: TunType.GUE,
    m.TunnelType.GRE: TunType.GRE,
}
_TUN_FLAGS = {
    m.TunnelChecksum.NONE: TunFlags.NOCSUM,
    m.TunnelChecksum.CSUM: TunFlags.CSUM,
    m.TunnelChecksum.REMCSUM: TunFlags.REMCSUM,
}
_UNICAST_CHECKSUM = {
    m.UnicastChecksum.AUTO: vrrp.UnicastChecksum.auto,
    m.UnicastChecksum.OLD: vrrp.UnicastChecksum.old,
    m.UnicastChecksum.NEVER: vrrp.UnicastChecksum.never,
}
_PROTOCOL = {
    m.Protocol.TCP: Protocol.TCP,
    m.Protocol.UDP: Protocol.UDP,
    m.Protocol.SCTP: Protocol.SCTP,
}


@dataclass(frozen=True, slots=True)
class SyncDaemonSettings:
    """IPVS connection sync (keepalived lvs_sync_daemon), following one VRRP instance."""

    interface: str
    instance: str | None
    syncid: int
    maxlen: int | None
    group: str | None
    port: int
    ttl: int
    mode: str = "vrrp"  # "mesh": master and backup at once, independent of VRRP
    #: net.ipv4.vs.sync_refresh_period haipvs sets (sync_threshold's period 0); None: untouched
    refresh_period: int | None = None


@dataclass(frozen=True, slots=True)
class QuorumCommands:
    """keepalived quorum_up / quorum_down of one service: argv, killed after ``timeout``."""

    up: tuple[str, ...] | None
    down: tuple[str, ...] | None
    timeout: float


@dataclass(frozen=True, slots=True)
class Compiled:
    director: str
    instances: tuple[vrrp.InstanceSettings, ...]
    services: tuple[ServiceSpec, ...]
    service_names: Mapping[ServiceKey, str]
    checks: Mapping[checkers.BackendId, tuple[checkers.Target, checkers.CheckSpec]]
    always_up: frozenset[checkers.BackendId]
    fail_open: Mapping[str, checkers.FailOpenSettings | None]
    backends: Mapping[checkers.BackendId, tuple[ServiceKey, DestKey]]
    timeouts: IpvsTimeouts | None
    sync_daemon: SyncDaemonSettings | None
    min_interval: float
    max_interval: float
    warnings: tuple[str, ...] = field(default=())
    up_at_start: frozenset[checkers.BackendId] = frozenset()
    quorum_commands: Mapping[ServiceKey, QuorumCommands] = field(default_factory=dict)
    bgp: ScaleOutPlan | None = None  # scale-out mode (the config's bgp section)

    @property
    def quorum_argvs(self) -> tuple[tuple[str, ...], ...]:
        """Every quorum_up / quorum_down argv, for the script-security check."""
        return tuple(
            argv
            for commands in self.quorum_commands.values()
            for argv in (commands.up, commands.down)
            if argv is not None
        )

    @property
    def owned(self) -> frozenset[ServiceKey]:
        return frozenset(spec.key for spec in self.services)


def ipvs_service_key(vs: m.VirtualServer) -> ServiceKey:
    if vs.fwmark is not None:
        family = Family.INET6 if vs.service_family is m.Family.IPV6 else Family.INET
        return ServiceKey.for_fwmark(vs.fwmark, family)
    assert vs.vip is not None and vs.port is not None  # the model's rules guarantee it
    return ServiceKey(protocol=_PROTOCOL[vs.protocol], address=str(vs.vip), port=vs.port)


def compile_config(config: m.Config, *, hostname: str = "director") -> Compiled:
    """Translate a validated config; raise `CompileError` if a settings type refuses it."""
    director = config.director.name or hostname
    groups = {name: group for group in config.sync_groups for name in group.instances}
    instances = []
    for index, instance in enumerate(config.vrrp):
        group = groups.get(instance.name)
        with _at(("vrrp", index)):
            settings = _instance(instance, None if group is None else group.name)
            if instance.auth_hmac is not None:
                settings = dataclasses.replace(
                    settings,
                    auth_hmac=_auth_hmac(instance.auth_hmac, ("vrrp", index, "auth_hmac")),
                )
            if group is not None and _notify_settings(group.notify) is not None:
                settings = dataclasses.replace(
                    settings, sync_group_notify=_notify_settings(group.notify)
                )
            instances.append(settings)
    services: list[ServiceSpec] = []
    names: dict[ServiceKey, str] = {}
    checks: dict[checkers.BackendId, tuple[checkers.Target, checkers.CheckSpec]] = {}
    always_up: set[checkers.BackendId] = set()
    up_at_start: set[checkers.BackendId] = set()
    fail_open: dict[str, checkers.FailOpenSettings | None] = {}
    backends: dict[checkers.BackendId, tuple[ServiceKey, DestKey]] = {}
    quorum_commands: dict[ServiceKey, QuorumCommands] = {}
    for vs_index, vs in enumerate(config.virtual_servers):
        base: m.KeyPath = ("virtual_servers", vs_index)
        with _at(base):
            key = ipvs_service_key(vs)
        names[key] = vs.name or vs.label
        # The `vs` key of the checkers' lines, as on the ipvs.* and drain lines about the
        # same service (one renderer): tcp/198.51.100.10:80, never the operator's name.
        label = str(key)
        dests = []
        for rs_index, rs in enumerate(vs.real_servers):
            path: m.KeyPath = (*base, "real_servers", rs_index)
            port = vs.real_server_port(rs)
            with _at(path):
                dest = _dest(vs, rs, port)
                backend = checkers.BackendId(label, rs.address, port)
            dests.append(dest)
            backends[backend] = (key, dest.key)
            check = vs.real_server_check(rs)
            if check is None:
                always_up.add(backend)
                continue
            with _at((*path, "check") if rs.check is not None else (*base, "check")):
                checks[backend] = (
                    checkers.Target(rs.address, port),
                    _check(check, vs, base_weight=rs.weight),
                )
            if not check.alpha:
                # keepalived without `alpha`: a real server is up until its checker says
                # otherwise; the pool's `adopted` does exactly that at start-up.
                up_at_start.add(backend)
        with _at((*base, "fail_open")):
            fail_open[label] = _fail_open(vs)
        with _at((*base, "sorry_server")):
            sorry = _sorry(vs)
        with _at(base):
            services.append(_service_spec(vs, key, dests, sorry,
                                          scale_out=config.bgp is not None))
        if vs.quorum.up is not None or vs.quorum.down is not None:
            quorum_commands[key] = QuorumCommands(
                vs.quorum.up, vs.quorum.down, vs.quorum.command_timeout
            )
    timeouts = config.ipvs.timeouts
    kernel_timeouts = None
    if timeouts.tcp is not None or timeouts.tcpfin is not None or timeouts.udp is not None:
        # 0 tells the kernel "leave this one as it is" (ipvsadm --set semantics).
        kernel_timeouts = IpvsTimeouts(
            tcp=int(timeouts.tcp or 0),
            tcp_fin=int(timeouts.tcpfin or 0),
            udp=int(timeouts.udp or 0),
        )
    sync = config.ipvs.sync_daemon
    return Compiled(
        director=director,
        instances=tuple(instances),
        services=tuple(services),
        service_names=names,
        checks=checks,
        always_up=frozenset(always_up),
        fail_open=fail_open,
        backends=backends,
        timeouts=kernel_timeouts,
        sync_daemon=None
        if sync is None
        else SyncDaemonSettings(
            interface=sync.interface,
            instance=sync.instance,
            syncid=sync.syncid,
            maxlen=sync.maxlen,
            group=None if sync.group is None else str(sync.group),
            port=sync.port,
            ttl=sync.ttl,
            mode=sync.mode,
            refresh_period=sync_refresh_period(config),
        ),
        min_interval=config.ipvs.programmer.min_interval,
        max_interval=config.ipvs.programmer.max_interval,
        quorum_commands=quorum_commands,
        up_at_start=frozenset(up_at_start),
        bgp=scale_out_plan(config),
    )


@contextmanager
def _at(path: m.KeyPath) -> Iterator[None]:
    # The settings types raise ValueError (checkers.SpecError is one) on a value they refuse.
    try:
        yield
    except CompileError:
        raise  # already located more precisely
    except ValueError as exc:
        raise CompileError(path, str(exc)) from exc


_AUTH_MODE = {
    m.AuthHmacMode.RECEIVE_ONLY: vrrp.AuthMode.receive_only,
    m.AuthHmacMode.PERMISSIVE: vrrp.AuthMode.permissive,
    m.AuthHmacMode.ENFORCE: vrrp.AuthMode.enforce,
}


def _auth_key(value: str) -> bytes:
    # keepalived `file:PATH`: the file holds what the inline value would (hex: or
    # ASCII), a trailing newline dropped; the secret then stays out of the config.
    if value.startswith("file:"):
        path = value[5:]
        try:
            with open(path, encoding="utf-8") as handle:
                value = handle.read(4 + 64 * 2 + 8).rstrip("\r\n")
        except OSError as exc:
            raise ValueError(f"key file {path}: {exc.strerror or exc}") from None
    octets = vrrp.decode_key(value)
    if not 32 <= len(octets) <= 64:
        raise ValueError(f"{len(octets)} octets; a key has 32..64 octets")
    return octets


def _auth_hmac(auth: m.AuthHmac, base: m.KeyPath) -> vrrp.AuthHmacSettings:
    keys = []
    for index, key in enumerate(auth.keys):
        with _at((*base, "keys", index, "key")):
            keys.append((key.id, _auth_key(key.key)))
    with _at(base):
        active = auth.active_key if auth.active_key is not None else auth.keys[0].id
        return vrrp.AuthHmacSettings(
            keys=tuple(keys),
            active_key=active,
            mode=_AUTH_MODE[auth.mode],
            anti_replay=vrrp.AntiReplay(auth.anti_replay.value),
            time_window=auth.time_window,
        )


def _fail_open(vs: m.VirtualServer) -> checkers.FailOpenSettings | None:
    if vs.fail_open is None:
        return None
    return checkers.FailOpenSettings(
        fail_open_ratio=vs.fail_open.ratio,
        window=vs.fail_open.window,
        min_real_servers=vs.fail_open.min_real_servers,
    )


def _sorry(vs: m.VirtualServer) -> Dest | None:
    if vs.sorry_server is None:
        return None
    port = vs.sorry_server.port if vs.sorry_server.port is not None else (vs.port or 0)
    return Dest(
        DestKey(str(vs.sorry_server.address), port),
        weight=1,
        forwarding=_FORWARDING[vs.forwarding],
    )


def _service_spec(
    vs: m.VirtualServer, key: ServiceKey, dests: list[Dest], sorry: Dest | None,
    *, scale_out: bool = False,
) -> ServiceSpec:
    flags = scheduler_flags_in_use(vs)
    return ServiceSpec(
        service=Service(
            key=key,
            scheduler=vs.scheduler.value,
            flags=SchedFlags(
                sh_fallback=m.SchedulerFlag.SH_FALLBACK in flags,
                sh_port=m.SchedulerFlag.SH_PORT in flags,
                mh_fallback=m.SchedulerFlag.MH_FALLBACK in flags,
                mh_port=m.SchedulerFlag.MH_PORT in flags,
                one_packet=vs.one_packet,
            ),
            persistence_timeout=vs.persistence.timeout,
            persistence_netmask=vs.persistence.netmask,
        ),
        real_servers=tuple(dests),
        min_up=vs.quorum.min_up,
        min_weight=vs.quorum.min_weight,
        hysteresis=vs.quorum.hysteresis,
        sorry_server=sorry,
        drain_timeout=vs.drain.timeout,
        # Scale-out mode: a real server that is down (or not yet up at start) stays in the
        # table at weight 0 (mh-fallback skips it) instead of leaving it. mh builds its
        # table in the kernel's list order, and the kernel puts each new dest at the head:
        # added and deleted as checks come and go, the list (and so the hash) would follow
        # each director's own check history; kept, it is the sorted order of the first
        # sync on every director (haipvs.ipvs.fingerprint).
        inhibit_on_failure=vs.inhibit_on_failure or scale_out,
    )


def _notify_settings(notify: m.Notify) -> vrrp.NotifySettings | None:
    """An instance's or a sync group's hooks; None when none is configured."""
    if not any((notify.master, notify.backup, notify.fault, notify.stop, notify.any)):
        return None
    return vrrp.NotifySettings(
        master=notify.master,
        backup=notify.backup,
        fault=notify.fault,
        stop=notify.stop,
        any=notify.any,
        timeout=notify.timeout,
    )


def _instance(instance: m.VrrpInstance, group: str | None) -> vrrp.InstanceSettings:
    return vrrp.InstanceSettings(
        name=instance.name,
        interface=instance.interface,
        vrid=instance.vrid,
        priority=instance.priority,
        version=instance.version,
        advert_interval=instance.advert_interval,
        preempt=instance.preempt,
        preempt_delay=instance.preempt_delay,
        vips=tuple(vrrp.VipSpec(vip.address, vip.interface) for vip in instance.vips),
        unicast_peers=tuple(instance.unicast_peers),
        unicast_source=instance.unicast_source,
        garp_repeat=instance.garp_repeat,
        garp_interval=instance.garp_interval,
        garp_master_refresh=instance.garp_master_refresh or None,
        track_interfaces=tuple(
            vrrp.TrackInterface(track.name, track.weight) for track in instance.track.interfaces
        ),
        track_scripts=tuple(
            vrrp.TrackScript(
                command=script.command,
                interval=script.interval,
                timeout=script.timeout if script.timeout is not None else script.interval,
                rise=script.rise,
                fall=script.fall,
                weight=script.weight,
            )
            for script in instance.track.scripts
        ),
        track_processes=tuple(
            vrrp.TrackProcess(
                name=process.name,
                process=process.process,
                args=process.args,
                param_match=vrrp.ParamMatch(process.param_match.value),
                full_command=process.full_command,
                weight=process.weight,
                quorum=process.quorum,
                quorum_max=process.quorum_max,
                fork_delay=process.fork_delay,
                terminate_delay=process.terminate_delay,
                interval=process.interval,
            )
            for process in instance.track.processes
        ),
        track_files=tuple(
            vrrp.TrackFile(track.name, track.path, track.weight, track.interval)
            for track in instance.track.files
        ),
        notify=_notify_settings(instance.notify),
        accept=instance.accept,
        sync_group=group,
        auth_pass=instance.auth_pass,
        garp_master_delay=instance.garp_master_delay or None,
        unicast_checksum=_UNICAST_CHECKSUM[instance.unicast_checksum],
        accept_foreign_source=instance.accept_foreign_source,
        routes=tuple(_route(route) for route in instance.routes),
        rules=tuple(_rule(rule) for rule in instance.rules),
        vmac=vrrp.VmacSettings(instance.vmac.name, instance.vmac.xmit_base, instance.vmac.ipvlan)
        if instance.vmac is not None
        else None,
        strict=instance.strict,
    )


def _route(route: m.VirtualRoute) -> vrrp.VirtualRoute:
    return vrrp.VirtualRoute(
        route.to,
        type=vrrp.RouteType(route.type.value),
        via=route.via,
        dev=route.dev,
        src=route.src,
        table=route.table,
        metric=route.metric,
        scope=vrrp.RouteScope(route.scope.value) if route.scope is not None else None,
        nexthops=tuple(vrrp.Nexthop(hop.via, hop.dev, hop.weight) for hop in route.nexthops),
    )


def _rule(rule: m.VirtualRule) -> vrrp.VirtualRule:
    prefixes = [net for net in (rule.source, rule.destination) if net is not None]
    # keepalived takes a rule without prefixes as IPv4 unless told `inet6`.
    family = prefixes[0].version if prefixes else (6 if rule.family is m.Family.IPV6 else 4)
    return vrrp.VirtualRule(
        family,
        from_=rule.source,
        to=rule.destination,
        table=rule.table,
        action=vrrp.RuleAction(rule.action.value),
        priority=rule.priority,
        iif=rule.iif,
        oif=rule.oif,
        fwmark=rule.fwmark,
        fwmask=rule.fwmask,
        invert=rule.invert,
    )


def _dest(vs: m.VirtualServer, rs: m.RealServer, port: int) -> Dest:
    forwarding = _FORWARDING[vs.real_server_forwarding(rs)]
    tun = rs.tun or m.Tunnel()
    tunnel = forwarding is Forwarding.TUNNEL
    return Dest(
        DestKey(str(rs.address), port),
        weight=rs.weight,
        forwarding=forwarding,
        u_thresh=rs.u_thresh,
        l_thresh=rs.l_thresh,
        tun_type=_TUN_TYPE[tun.type] if tunnel else TunType.IPIP,
        tun_port=(tun.port or 0) if tunnel else 0,
        tun_flags=_TUN_FLAGS[tun.csum] if tunnel else TunFlags.NOCSUM,
    )


def _timing(check: m.CheckTiming) -> checkers.Timing:
    damping = check.flap_damping
    return checkers.Timing(
        interval=check.interval,
        timeout=check.timeout,
        rise=check.rise,
        fall=check.fall,
        fast_interval=check.fast_interval,
        down_interval=check.down_interval,
        warmup=check.warmup,
        slow_start=check.slow_start,
        flap_damping=None
        if damping is None
        else checkers.DampingSettings(
            penalty_per_flap=damping.penalty_per_flap,
            half_life=damping.half_life,
            suppress_threshold=damping.suppress_threshold,
            reuse_threshold=damping.reuse_threshold,
            max_suppress=damping.max_suppress,
        ),
    )


def _status_ranges(codes: tuple[int | str, ...]) -> tuple[tuple[int, int], ...]:
    ranges = []
    for code in codes:
        if isinstance(code, int):
            ranges.append((code, code))
        else:
            low, _, high = code.partition("-")
            ranges.append((int(low), int(high)))
    return tuple(ranges)


def _check(check: m.Check, vs: m.VirtualServer, *, base_weight: int = 1) -> checkers.CheckSpec:
    timing = _timing(check)
    if isinstance(check, m.TcpCheck):
        return checkers.TcpCheck(timing, connect_port=check.port, bind_address=check.bind_to)
    if isinstance(check, m.HttpCheck | m.HttpsCheck):
        tls = isinstance(check, m.HttpsCheck)
        body = check.expect_body
        return checkers.HttpCheck(
            timing,
            tls=tls,
            method=check.method.value,
            path=check.path,
            host=check.host,
            expect_status=_status_ranges(tuple(check.expect_status)),
            body_regex=None if body is None else _literal_regex(body),
            body_digest=check.digest,
            sni=check.server_name if isinstance(check, m.HttpsCheck) else None,
            verify_tls=check.verify_tls if isinstance(check, m.HttpsCheck) else False,
            ca_file=check.ca_file if isinstance(check, m.HttpsCheck) else None,
            connect_port=check.port,
        )
    if isinstance(check, m.ExecCheck):
        return checkers.ExecCheck(timing, command=check.command, dynamic_weight=check.dynamic)
    if isinstance(check, m.DnsCheck):
        return checkers.DnsCheck(
            timing,
            query_name=check.name,
            query_type=check.record_type,
            expect_rcode=check.expect_rcode.value,
            expect_answer=check.expect_answer,
            connect_port=check.port,
        )
    if isinstance(check, m.SmtpCheck):
        return checkers.SmtpCheck(timing, helo_name=check.helo_name, connect_port=check.port)
    if isinstance(check, m.PingCheck):
        return checkers.PingCheck(timing)
    if isinstance(check, m.FileCheck):
        return checkers.FileCheck(
            timing,
            path=check.path,
            weight=check.weight,
            reverse=check.reverse,
            base_weight=base_weight,
        )
    assert isinstance(check, m.UdpCheck)
    return checkers.UdpCheck(
        timing,
        payload=(check.payload or "").encode(),
        expect=None if check.expect is None else check.expect.encode(),
        connect_port=check.port,
    )


def _literal_regex(text: str) -> str:
    # The YAML key is a plain substring (expect_body); the probe takes a regex.
    return re.escape(text)


#: What an unset ``learn`` adds to the mesh's refresh period: the kernel sends a partly
#: filled sync message within 2 s (ip_vs.h IPVS_SYNC_FLUSH_TIME), and a connection is
#: re-sent on its first packet after the period: one second of a heartbeat's gap more.
LEARN_SLACK = 3.0


def sync_refresh_period(config: m.Config) -> int | None:
    """The sync_refresh_period haipvs sets: the config's, else 5 s in mesh mode (a
    joining director must learn the others' connections), else none (vrrp mode keeps
    the kernel's, as keepalived does)."""
    sync = config.ipvs.sync_daemon
    if sync is None:
        return None
    if sync.refresh_period is not None:
        return sync.refresh_period
    return m.MESH_REFRESH_PERIOD if sync.mode == "mesh" else None


def default_learn(config: m.Config) -> float:
    """``learn`` when neither the section nor the VIP sets it: long enough for a sync
    mesh to re-send every live connection once (vc5's learn, made to match the mesh)."""
    sync = config.ipvs.sync_daemon
    refresh = sync_refresh_period(config)
    if sync is None or sync.mode != "mesh" or refresh is None:
        return 0.0
    return refresh + LEARN_SLACK


def scale_out_plan(config: m.Config) -> ScaleOutPlan | None:
    """The BGP part's settings: every virtual server's VIP is announced, gated by the
    section's ``need``/``learn`` or the VIP's own (``bgp.vips``)."""
    bgp = config.bgp
    if bgp is None:
        return None
    services: dict[IPv4Address | IPv6Address, list[str]] = {}
    for vs in config.virtual_servers:
        if vs.vip is not None:
            services.setdefault(vs.vip, []).append(vs.label)
    unset = default_learn(config)
    vips = {
        vip: VipPlan(need=bgp.need_for(vip), services=tuple(labels),
                     learn=unset if (learn := bgp.learn_for(vip)) is None else learn)
        for vip, labels in services.items()
    }
    bfd = None if bgp.bfd is None else BfdTimers(bgp.bfd.interval_ms, bgp.bfd.multiplier)
    bird = BirdSettings(
        router_id=bgp.router_id,
        local_as=bgp.local_as,
        neighbours=tuple(Neighbour(n.address, n.remote_as) for n in bgp.neighbours),
        vips=tuple(vips),
        bfd=bfd,
        hold_time=bgp.hold_time,
        keepalive_time=bgp.keepalive_time,
        error_wait=(bgp.error_wait_min, bgp.error_wait_max),
    )
    return ScaleOutPlan(
        bird=bird,
        control_socket=bgp.control_socket,
        config_file=bgp.config_file,
        max_loop_lag=bgp.max_loop_lag,
        vips=vips,
        withdraw_grace=bgp.withdraw_grace,
    )
