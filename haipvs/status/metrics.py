"""Prometheus metrics, rendered from the status snapshot at scrape time.

A custom collector reads one Snapshot per scrape, so the numbers in /metrics and
/status can never disagree and no part of the daemon keeps a second set of books.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from checkers.spec import endpoint_label
from haipvs.ipvs.fingerprint import fingerprint_number
from haipvs.status.snapshot import ScaleOutView, Snapshot

__all__ = ["SnapshotCollector", "render_metrics"]

STATES = ("INIT", "BACKUP", "MASTER", "FAULT")


class SnapshotCollector(Collector):
    def __init__(self, snapshot: Callable[[], Snapshot]) -> None:
        self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        info = GaugeMetricFamily(
            "haipvs_info", "The running director.", labels=["director", "version"]
        )
        info.add_metric([snap.director, snap.version], 1)
        yield info
        yield from _vrrp(snap)
        yield from _services(snap)
        yield from _programmer(snap)
        reloads = CounterMetricFamily(
            "haipvs_reloads", "Config reloads by result.", labels=["result"]
        )
        reloads.add_metric(["applied"], snap.reloads_applied)
        reloads.add_metric(["rejected"], snap.reloads_rejected)
        yield reloads
        # As Prometheus' own prometheus_config_last_reload_successful: 0 while the file
        # on disk was rejected and the daemon runs the previous config.
        last_ok = GaugeMetricFamily(
            "haipvs_config_last_reload_successful",
            "0 when the last reload was rejected (the running config is not the file).",
        )
        last_ok.add_metric(
            [], 0 if snap.last_reload is not None and snap.last_reload.result == "rejected" else 1
        )
        yield last_ok
        lag = GaugeMetricFamily(
            "haipvs_event_loop_lag_seconds",
            "How late the event loop ran a timer, last measurement.",
            labels=["loop"],
        )
        lag.add_metric(["main"], snap.loop_lag_ms / 1000)
        lag.add_metric(["vrrp"], snap.vrrp_loop_lag_ms / 1000)
        yield lag
        restarts = CounterMetricFamily(
            "haipvs_vrrp_process_restarts",
            "Times the VRRP process died on its own and was started again.",
        )
        restarts.add_metric([], snap.vrrp_restarts)
        yield restarts
        inconclusive = CounterMetricFamily(
            "haipvs_check_inconclusive",
            "Failed probes not counted: their deadline passed while the checker was not "
            "running (a stopped or starved daemon); each was run again.",
        )
        inconclusive.add_metric([], snap.checks_inconclusive)
        yield inconclusive
        yield from _overrides(snap)
        yield from _fingerprints(snap)
        if snap.bgp is not None:
            yield from _scale_out(snap.bgp)


def _vrrp(snap: Snapshot) -> Iterator[Metric]:
    labels = ["instance", "vrid", "interface"]
    state = GaugeMetricFamily(
        "haipvs_vrrp_state", "1 for the instance's current VRRP state.", labels=[*labels, "state"]
    )
    priority = GaugeMetricFamily(
        "haipvs_vrrp_effective_priority", "Priority after tracking weights.", labels=labels
    )
    transitions = CounterMetricFamily(
        "haipvs_vrrp_transitions", "VRRP state transitions.", labels=labels
    )
    sent = CounterMetricFamily("haipvs_vrrp_adverts_sent", "Adverts sent.", labels=labels)
    received = CounterMetricFamily(
        "haipvs_vrrp_adverts_received", "Adverts received and accepted.", labels=labels
    )
    dropped = CounterMetricFamily(
        "haipvs_vrrp_adverts_dropped", "Adverts dropped, by reason.", labels=[*labels, "reason"]
    )
    auth = CounterMetricFamily(
        "haipvs_vrrp_auth_verdicts",
        "auth_hmac verdicts of received adverts (ok, unsigned, missing, malformed, "
        "unknown_key, invalid_hmac, stale, replay).",
        labels=[*labels, "verdict"],
    )
    route_errors = CounterMetricFamily(
        "haipvs_vrrp_route_errors",
        "Virtual routes and rules the kernel refused to install or remove.",
        labels=labels,
    )
    for inst in snap.instances:
        values = [inst.name, str(inst.vrid), inst.interface]
        route_errors.add_metric(values, inst.route_errors)
        for verdict, count in sorted(inst.auth_verdicts.items()):
            auth.add_metric([*values, verdict], count)
        for name in STATES:
            state.add_metric([*values, name], 1 if inst.state == name else 0)
        priority.add_metric(values, inst.effective_priority)
        transitions.add_metric(values, inst.transitions)
        sent.add_metric(values, inst.adverts_sent)
        received.add_metric(values, inst.adverts_received)
        for reason, count in sorted(inst.adverts_dropped.items()):
            dropped.add_metric([*values, reason], count)
    yield from (state, priority, transitions, sent, received, dropped, auth, route_errors)


def _services(snap: Snapshot) -> Iterator[Metric]:
    labels = ["vs", "rs"]
    up = GaugeMetricFamily(
        "haipvs_check_up", "1 when the real server's check is up.", labels=labels
    )
    latency = GaugeMetricFamily(
        "haipvs_check_latency_seconds", "Latency of the last check.", labels=labels
    )
    weight = GaugeMetricFamily(
        "haipvs_real_server_weight", "Weight in the kernel table (absent: not in it).",
        labels=labels,
    )
    conns = GaugeMetricFamily(
        "haipvs_real_server_connections", "IPVS connections.", labels=[*labels, "state"]
    )
    draining = GaugeMetricFamily(
        "haipvs_real_server_draining", "1 while draining.", labels=labels
    )
    fail_open = GaugeMetricFamily(
        "haipvs_service_fail_open",
        "1 while the service keeps its last known-good set because too many checks failed.",
        labels=["vs"],
    )
    for service in snap.services:
        fail_open.add_metric([service.key], 1 if service.fail_open else 0)
        for rs in service.real_servers:
            values = [service.key, endpoint_label(rs.address, rs.port)]
            up.add_metric(values, 1 if rs.health == "up" else 0)
            if rs.latency_ms is not None:
                latency.add_metric(values, rs.latency_ms / 1000)
            if rs.kernel_weight is not None:
                weight.add_metric(values, rs.kernel_weight)
            conns.add_metric([*values, "active"], rs.active_conns)
            conns.add_metric([*values, "inactive"], rs.inactive_conns)
            draining.add_metric(values, 1 if rs.drain is not None else 0)
    yield from (up, latency, weight, conns, draining, fail_open)


def _overrides(snap: Snapshot) -> Iterator[Metric]:
    admin = GaugeMetricFamily(
        "haipvs_real_server_admin_state",
        "1 for a real server the operator drained or put in maintenance.",
        labels=["vs", "rs", "state"],
    )
    for service in snap.services:
        for rs in service.real_servers:
            if rs.admin is not None:
                admin.add_metric([service.key, endpoint_label(rs.address, rs.port), rs.admin], 1)
    yield admin
    overrides = GaugeMetricFamily(
        "haipvs_operator_overrides", "Operator overrides in force, by kind.", labels=["kind"]
    )
    for kind in ("drain", "maintenance", "failover", "drain-director"):
        overrides.add_metric([kind], sum(1 for o in snap.overrides if o.kind == kind))
    yield overrides
    held = GaugeMetricFamily(
        "haipvs_vrrp_operator_hold",
        "1 while haipvs failover holds the instance as backup.",
        labels=["instance"],
    )
    for override in snap.overrides:
        if override.kind == "failover":
            held.add_metric([override.target], 1)
    yield held


def _scale_out(bgp: ScaleOutView) -> Iterator[Metric]:
    announced = GaugeMetricFamily(
        "haipvs_bgp_vip_announced",
        "1 for a VIP this director announces to its routers (its announce gates hold).",
        labels=["vip"],
    )
    for vip in bgp.announced:
        announced.add_metric([vip], 1)
    yield announced
    drained = GaugeMetricFamily(
        "haipvs_bgp_director_drained",
        "1 while haipvs drain-director keeps every VIP withdrawn.",
    )
    drained.add_metric([], 1 if bgp.drained else 0)
    yield drained
    speaker = GaugeMetricFamily(
        "haipvs_bgp_speaker_up", "0 while the last call to BIRD's control socket failed."
    )
    speaker.add_metric([], 0 if bgp.speaker_error else 1)
    yield speaker


def _fingerprints(snap: Snapshot) -> Iterator[Metric]:
    fingerprint = GaugeMetricFamily(
        "haipvs_ipvs_service_fingerprint",
        "The programmed table's fingerprint (scheduler, flags, real servers with weights "
        "in canonical order) as a 48-bit number: equal on directors that hash alike.",
        labels=["vs"],
    )
    canonical = GaugeMetricFamily(
        "haipvs_ipvs_service_dest_order_canonical",
        "1 when the kernel's real-server list is in the order a cold start builds "
        "(mh hashes in list order).",
        labels=["vs"],
    )
    for service in snap.services:
        if service.fingerprint is not None:
            fingerprint.add_metric([service.key], fingerprint_number(service.fingerprint))
        if service.dest_order_canonical is not None:
            canonical.add_metric([service.key], 1 if service.dest_order_canonical else 0)
    yield fingerprint
    yield canonical


def _programmer(snap: Snapshot) -> Iterator[Metric]:
    prog = snap.programmer
    ops = CounterMetricFamily("haipvs_ipvs_ops", "IPVS operations applied.", labels=["op"])
    for name, count in sorted(prog.ops_applied.items()):
        ops.add_metric([name], count)
    yield ops
    yield CounterMetricFamily(
        "haipvs_ipvs_op_failures", "IPVS operations the kernel refused.", value=prog.ops_failed
    )
    yield CounterMetricFamily(
        "haipvs_ipvs_drift_repairs", "Kernel table drift repaired.", value=prog.drift_repairs
    )
    yield CounterMetricFamily("haipvs_ipvs_syncs", "Reconcile runs.", value=prog.syncs)
    yield GaugeMetricFamily(
        "haipvs_ipvs_in_sync", "1 when the last reconcile applied its whole plan.",
        value=1 if prog.in_sync else 0,
    )


def render_metrics(snapshot: Callable[[], Snapshot]) -> bytes:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(SnapshotCollector(snapshot))
    return generate_latest(registry)
