"""Hypothesis strategies for valid configs (plain data, valid by construction).

They cover both families, address and fwmark services, every forwarding method with its
tunnels, sorry servers, every check type, track/notify/sync groups and the ipvs block, so
the round trip and the compile properties see what operators write.
"""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

DURATIONS = st.sampled_from([0.5, 1.0, 2.0, 2.5, 5.0])


@st.composite
def checks(draw: st.DrawFn, socket_port_known: bool = True) -> dict[str, Any]:
    kinds = ["tcp", "http", "https", "exec", "dns", "udp"]
    kind = draw(st.sampled_from(kinds))
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
    if draw(st.booleans()):
        check["alpha"] = True
    if draw(st.booleans()):
        check["slow_start"] = draw(st.sampled_from([0, 10, 60.5]))
    if draw(st.booleans()):
        check["flap_damping"] = {"half_life": 30}
    if kind in ("tcp", "http", "https", "udp") and (not socket_port_known or draw(st.booleans())):
        check["port"] = draw(st.integers(1, 65535))
    if kind in ("http", "https"):
        check["path"] = draw(st.sampled_from(["/", "/healthz", "/status?full=1"]))
        check["expect_status"] = draw(
            st.lists(st.integers(200, 399) | st.just("200-299"), min_size=1, max_size=3)
        )
        if draw(st.booleans()):
            check["host"] = "www.example.org"
        if kind == "https" and draw(st.booleans()):
            check["verify_tls"] = True
            check["server_name"] = "www.example.org"
    elif kind == "exec":
        check["command"] = ["/usr/local/bin/check", draw(st.text("abc-", min_size=1, max_size=5))]
        check["dynamic"] = draw(st.booleans())
    elif kind == "dns":
        check["name"] = "example.org"
        check["record_type"] = draw(st.sampled_from(["A", "AAAA", "SOA"]))
        check["expect_rcode"] = draw(st.sampled_from(["NOERROR", "NXDOMAIN"]))
    elif kind == "udp":
        check["payload"] = draw(st.text("xyz ", min_size=1, max_size=4))
    return check


def _address(family: int, group: int, number: int) -> str:
    if family == 4:
        return f"10.{group}.0.{number}"
    return f"2001:db8:{group:x}::{number:x}"


@st.composite
def virtual_servers(draw: st.DrawFn, index: int, vip: str | None, family: int) -> dict[str, Any]:
    forwarding = draw(st.sampled_from(["nat", "dr", "tun"]))
    scheduler = draw(st.sampled_from(["rr", "wrr", "wlc", "sh", "mh", "fo", "twos"]))
    port = 1000 + index
    protocol = draw(st.sampled_from(["tcp", "udp", "sctp"]))
    vs: dict[str, Any] = {"name": f"svc{index}", "scheduler": scheduler, "forwarding": forwarding}
    if vip is None:
        vs["fwmark"] = index + 1
        if family == 6 or draw(st.booleans()):
            vs["family"] = f"ipv{family}"
    else:
        vs.update({"vip": vip, "port": port, "protocol": protocol})
        if protocol == "udp" and draw(st.booleans()):
            vs["one_packet"] = True
    if scheduler in ("sh", "mh") and draw(st.booleans()):
        vs["scheduler_flags"] = draw(
            st.lists(st.sampled_from([f"{scheduler}-port", f"{scheduler}-fallback"]), unique=True)
        )
    if draw(st.booleans()):
        vs["persistence"] = {
            "timeout": draw(st.integers(1, 3600)),
            "netmask": draw(st.integers(8, 32 if family == 4 else 128)),
        }
    if draw(st.booleans()):
        vs["check"] = draw(checks(socket_port_known=vip is not None))
    if draw(st.booleans()):
        vs["inhibit_on_failure"] = True
    if draw(st.booleans()):
        vs["drain"] = {"timeout": draw(st.sampled_from([0, 5, 30.5]))}
    if draw(st.booleans()):
        vs["fail_open"] = {"ratio": draw(st.sampled_from([0, 0.5, 0.99]))}
    count = draw(st.integers(0, 4))
    vs["quorum"] = {"min_up": draw(st.integers(0, count)) if count else 0}
    real_servers = []
    for number in range(count):
        rs_forwarding = draw(st.sampled_from([None, "nat", "dr", "tun"]))
        effective = rs_forwarding or forwarding
        rs_family = family
        if effective == "tun" and draw(st.booleans()):
            rs_family = 10 - family  # the kernel lets TUN mix families
        rs: dict[str, Any] = {
            "address": _address(rs_family, index, number + 1),
            "weight": draw(st.integers(0, 100)),
        }
        if rs_forwarding is not None:
            rs["forwarding"] = rs_forwarding
        if vip is None:
            rs["port"] = 80
        elif effective == "nat":
            rs["port"] = draw(st.integers(1, 65535))
        elif draw(st.booleans()):
            rs["port"] = port
        if effective == "tun" and draw(st.booleans()):
            rs["tun"] = draw(
                st.sampled_from(
                    [
                        {"type": "ipip"},
                        {"type": "gue", "port": 6080, "csum": "csum"},
                        {"type": "gre", "csum": "remcsum"},
                    ]
                )
            )
        if draw(st.booleans()):
            upper = draw(st.integers(0, 1000))
            rs["u_thresh"] = upper
            rs["l_thresh"] = draw(st.integers(0, upper))
        if draw(st.booleans()):
            rs["check"] = draw(checks())
        real_servers.append(rs)
    vs["real_servers"] = real_servers
    if draw(st.booleans()):
        sorry = _address(family, index, 250)
        sorry_port = port if vip is not None and forwarding != "nat" else 8080
        vs["sorry_server"] = f"[{sorry}]:{sorry_port}" if family == 6 else f"{sorry}:{sorry_port}"
    return vs


@st.composite
def instances(draw: st.DrawFn, number: int, vrid: int) -> dict[str, Any]:
    family = draw(st.sampled_from([4, 6]))
    version = 3 if family == 6 else draw(st.sampled_from([2, 3]))
    vip = f"198.51.{number}.10/24" if family == 4 else f"2001:db8:f{number}::10/64"
    instance: dict[str, Any] = {
        "name": f"VI_{number}",
        "interface": draw(st.sampled_from(["eth0", "eth1", "bond0.10"])),
        "vrid": vrid,
        "priority": draw(st.integers(1, 254)),
        "version": version,
        "advert_interval": draw(
            st.sampled_from([1.0, 2.0, 3.0] if version == 2 else [0.1, 1.0, 0.55, 40.95])
        ),
        "preempt": draw(st.booleans()),
        "preempt_delay": draw(st.sampled_from([0, 30, 0.5])),
        "vips": [vip],
    }
    if draw(st.booleans()):
        peer = f"192.0.2.{number + 100}" if family == 4 else f"fe80::{number + 100:x}"
        instance["unicast_peers"] = [peer]
        if family == 4 and version == 3:
            instance["unicast_checksum"] = draw(st.sampled_from(["auto", "old", "never"]))
    if draw(st.booleans()):
        instance["track"] = {
            "interfaces": [{"name": "eth9", "weight": draw(st.integers(-253, 253))}],
            "scripts": [{"command": ["/usr/local/bin/check-uplink"], "interval": 2, "weight": -10}],
        }
    if draw(st.booleans()):
        instance["notify"] = {"master": ["/usr/local/bin/notify", "master"], "timeout": 5}
    if version == 2 and draw(st.booleans()):
        instance["auth_pass"] = "s3cret"
    if draw(st.booleans()):
        instance["garp_master_refresh"] = 60
    return instance


@st.composite
def configs(draw: st.DrawFn) -> dict[str, Any]:
    vrids = draw(st.lists(st.integers(1, 255), unique=True, max_size=4))
    vrrp = [draw(instances(number, vrid)) for number, vrid in enumerate(vrids)]
    vips = [instance["vips"][0].split("/")[0] for instance in vrrp] or ["203.0.113.1"]
    services = []
    for index in range(draw(st.integers(0, 3))):
        vip: str | None = draw(st.sampled_from(vips)) if draw(st.integers(0, 3)) else None
        family = 6 if vip is not None and ":" in vip else 4
        if vip is None:
            family = draw(st.sampled_from([4, 6]))
        services.append(draw(virtual_servers(index, vip, family)))
    data: dict[str, Any] = {"vrrp": vrrp, "virtual_servers": services}
    if len(vrrp) >= 2 and draw(st.booleans()):
        data["sync_groups"] = [{"name": "G", "instances": [vrrp[0]["name"], vrrp[1]["name"]]}]
    if draw(st.booleans()):
        data["director"] = {"name": "lb1", "log_level": draw(st.sampled_from(["debug", "info"]))}
    if draw(st.booleans()):
        data["ipvs"] = {
            "timeouts": {"tcp": draw(st.integers(1, 7200))},
            "programmer": {"min_interval": 0.5, "max_interval": 30},
        }
    return data
