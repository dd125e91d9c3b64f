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
