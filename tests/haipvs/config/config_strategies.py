"""Hypothesis strategies for valid configs (plain data, valid by construction)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

DURATIONS = st.sampled_from([0.5, 1.0, 2.0, 2.5, 5.0])


@st.composite
def checks(draw: st.DrawFn) -> dict[str, Any]:
    kind = draw(st.sampled_from(["tcp", "http", "https", "exec", "dns", "udp"]))
    interval = draw(DURATIONS)
    check: dict[str, Any] = {
        "type": kind,
        "interval": interval,
        "timeout": draw(st.sampled_from([0.25, interval])),
        "rise": draw(st.integers(1, 5)),
        "fall": draw(st.integers(1, 5)),
    }
    if draw(st.booleans()):
        check["warmup"] = draw(st.sampled_from([0, 1.5]))
    if kind in ("http", "https"):
        check["path"] = draw(st.sampled_from(["/", "/healthz", "/status?full=1"]))
        check["expect_status"] = draw(
            st.lists(st.integers(200, 399) | st.just("200-299"), min_size=1, max_size=3)
        )
    elif kind == "exec":
        check["command"] = ["/usr/local/bin/check", draw(st.text("abc-", min_size=1, max_size=5))]
    elif kind == "dns":
        check["name"] = "example.org"
        check["record_type"] = draw(st.sampled_from(["A", "AAAA", "SOA"]))
    elif kind == "udp":
        check["payload"] = draw(st.text("xyz ", min_size=1, max_size=4))
    return check


@st.composite
def virtual_servers(draw: st.DrawFn, index: int, vip: str) -> dict[str, Any]:
    forwarding = draw(st.sampled_from(["nat", "dr", "tun"]))
    scheduler = draw(st.sampled_from(["rr", "wrr", "wlc", "sh", "mh", "fo"]))
    port = 1000 + index
    vs: dict[str, Any] = {
        "name": f"svc{index}",
        "vip": vip,
        "port": port,
        "protocol": draw(st.sampled_from(["tcp", "udp", "sctp"])),
        "scheduler": scheduler,
        "forwarding": forwarding,
    }
    if scheduler in ("sh", "mh") and draw(st.booleans()):
        vs["scheduler_flags"] = [f"{scheduler}-port"]
    if draw(st.booleans()):
        vs["persistence"] = {
            "timeout": draw(st.integers(1, 3600)),
            "netmask": draw(st.integers(8, 32)),
        }
    if draw(st.booleans()):
        vs["check"] = draw(checks())
    if draw(st.booleans()):
        vs["inhibit_on_failure"] = True
    count = draw(st.integers(0, 4))
    real_servers = []
    for number in range(count):
        rs: dict[str, Any] = {
            "address": f"10.{index}.0.{number + 1}",
            "weight": draw(st.integers(0, 100)),
        }
        if forwarding == "nat":
            rs["port"] = draw(st.integers(1, 65535))
        elif draw(st.booleans()):
            rs["port"] = port
        if draw(st.booleans()):
            rs["check"] = draw(checks())
        real_servers.append(rs)
    vs["real_servers"] = real_servers
    return vs


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    vrids = draw(st.lists(st.integers(1, 255), unique=True, max_size=4))
    instances = []
    for number, vrid in enumerate(vrids):
        version = draw(st.sampled_from([2, 3]))
        instance: dict[str, Any] = {
            "name": f"VI_{number}",
            "interface": draw(st.sampled_from(["eth0", "eth1", "bond0.10"])),
            "vrid": vrid,
            "priority": draw(st.integers(1, 254)),
            "version": version,
            "advert_interval": draw(
                st.sampled_from([1.0, 2.0, 3.0] if version == 2 else [0.1, 1.0, 0.55])
            ),
            "preempt": draw(st.booleans()),
            "vips": [f"198.51.{number}.10/24"],
        }
        if draw(st.booleans()):
            instance["unicast_peers"] = [f"192.0.2.{number + 100}"]
        instances.append(instance)
    vips = [f"198.51.{number}.10" for number in range(len(instances))] or ["203.0.113.1"]
    services = [
        draw(virtual_servers(index, draw(st.sampled_from(vips))))
        for index in range(draw(st.integers(0, 3)))
    ]
    data: dict[str, Any] = {"vrrp": instances, "virtual_servers": services}
    if draw(st.booleans()):
        data["director"] = {"name": "lb1", "log_level": draw(st.sampled_from(["debug", "info"]))}
    if draw(st.booleans()):
        data["ipvs"] = {"timeouts": {"tcp": draw(st.integers(1, 7200))}}
    return data
