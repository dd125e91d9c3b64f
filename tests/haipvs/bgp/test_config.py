"""The bgp section: a valid scale-out config compiles into the BGP part's plan."""

from __future__ import annotations

import textwrap
from ipaddress import ip_address

import pytest

from haipvs.bgp.snippet import BfdTimers
from haipvs.config import ConfigInvalid, load_config_text
from haipvs.config.compile import compile_config

SERVICES = """\
virtual_servers:
  - vip: 192.0.2.10
    port: 80
    scheduler: mh
    scheduler_flags: [mh-port, mh-fallback]
    forwarding: tun
    real_servers: [{address: 10.1.1.2}, {address: 10.1.2.2}]
  - vip: 192.0.2.10
    port: 443
    scheduler: mh
    scheduler_flags: [mh-port, mh-fallback]
    forwarding: tun
    real_servers: [{address: 10.1.1.2}]
  - vip: 192.0.2.11
    port: 80
    scheduler: mh
    scheduler_flags: [mh-port, mh-fallback]
    forwarding: dr
    real_servers: [{address: 192.0.2.100}]
"""


def compiled(bgp: str) -> object:
    loaded = load_config_text(SERVICES + textwrap.dedent(bgp), "t.yaml")
    return compile_config(loaded.config).bgp


def test_without_bgp_there_is_no_plan() -> None:
    assert compile_config(load_config_text("{}").config).bgp is None


def test_the_plan_carries_every_vip_with_its_services_and_gates() -> None:
    plan = compiled("""\
        bgp:
          router_id: 10.0.1.2
          local_as: 65001
          neighbours: [{address: 10.0.1.1, remote_as: 65000}]
          need: 1
          learn: 2
          vips: [{vip: 192.0.2.11, need: 0, learn: 5}]
        """)
    assert plan is not None
    first, second = ip_address("192.0.2.10"), ip_address("192.0.2.11")
    assert plan.vips[first].services == ("tcp/192.0.2.10:80", "tcp/192.0.2.10:443")
    assert (plan.vips[first].need, plan.vips[first].learn) == (1, 2.0)
    assert (plan.vips[second].need, plan.vips[second].learn) == (0, 5.0)
    assert plan.bird.bfd == BfdTimers(100, 3)
    assert plan.bird.local_as == 65001
    assert [n.remote_as for n in plan.bird.neighbours] == [65000]
    assert plan.control_socket == "/run/bird/bird.ctl"


@pytest.mark.parametrize("off", ["off", "false", "null"])
def test_bfd_off_leaves_the_hold_timer_alone(off: str) -> None:
    plan = compiled(f"""\
        bgp:
          router_id: 10.0.1.2
          local_as: 65001
          neighbours: [{{address: 10.0.1.1, remote_as: 65000}}]
          bfd: {off}
        """)
    assert plan is not None and plan.bird.bfd is None


def test_a_scale_out_config_gets_no_vrrp_coverage_warning() -> None:
    loaded = load_config_text(SERVICES + textwrap.dedent("""\
        bgp:
          router_id: 10.0.1.2
          local_as: 65001
          neighbours: [{address: 10.0.1.1, remote_as: 65000}]
        """))
    assert not [w for w in loaded.warnings if "no failover" in str(w)]


def test_an_ipv6_router_id_is_refused_at_its_line() -> None:
    with pytest.raises(ConfigInvalid) as caught:
        load_config_text(SERVICES + "bgp: {router_id: '2001:db8::1', local_as: 1}\n", "t.yaml")
    assert [str(e) for e in caught.value.errors] == [
        "t.yaml:20: bgp.router_id: must be an IPv4 address (a 32-bit BGP router id)"
    ]


BGP = """\
bgp:
  router_id: 10.0.1.2
  local_as: 65001
  neighbours: [{address: 10.0.1.1, remote_as: 65000}]
"""


@pytest.mark.parametrize(("ipvs", "learn", "refresh"), [
    # No sync: nothing to learn, the gate waits for nothing.
    ("", 0.0, None),
    # The mesh re-sends every live connection within 5 s; the kernel's 2 s flush and a
    # packet's gap more.
    ("ipvs: {sync_daemon: {interface: eth1, mode: mesh}}\n", 8.0, 5),
    ("ipvs: {sync_daemon: {interface: eth1, mode: mesh, refresh_period: 10}}\n", 13.0, 10),
    # A VRRP pair's sync keeps the kernel's settings unless told.
    ("ipvs: {sync_daemon: {interface: eth1}}\n", 0.0, None),
    ("ipvs: {sync_daemon: {interface: eth1, refresh_period: 30}}\n", 0.0, 30),
])
def test_an_unset_learn_waits_for_the_mesh_to_resend_every_connection(
    ipvs: str, learn: float, refresh: int | None
) -> None:
    loaded = load_config_text(SERVICES + ipvs + BGP, "t.yaml")
    result = compile_config(loaded.config)
    assert result.bgp is not None
    assert {plan.learn for plan in result.bgp.vips.values()} == {learn}
    sync = result.sync_daemon
    assert (None if sync is None else sync.refresh_period) == refresh
    assert not [w for w in loaded.warnings if "refresh period" in str(w)]


def test_a_learn_shorter_than_the_mesh_refresh_is_a_located_warning() -> None:
    text = (SERVICES + "ipvs: {sync_daemon: {interface: eth1, mode: mesh}}\n" + BGP
            + "  learn: 1\n  vips: [{vip: 192.0.2.11, learn: 6}, {vip: 192.0.2.10, learn: 3}]\n")
    loaded = load_config_text(text, "t.yaml")
    plan = compile_config(loaded.config).bgp
    assert plan is not None  # a warning: the operator's values stand
    assert {str(vip): p.learn for vip, p in plan.vips.items()} == {
        "192.0.2.10": 3.0, "192.0.2.11": 6.0}
    tail = ("s is shorter than the sync mesh's refresh period (5 s): a director that "
            "joins announces before its peers have re-sent their long-lived connections, "
            "and the flows moved to it rely on mh alone")
    assert [str(w) for w in loaded.warnings if "refresh period" in str(w)] == [
        f"t.yaml:25: warning: bgp.learn: 1 {tail}",
        f"t.yaml:26: warning: bgp.vips[1].learn: 3 {tail}",
    ]
