"""use_vmac (vrrp.vmac): the RFC 5798 §7.3 virtual MAC, the settings that place VIPs and
adverts, the strict fake of the macvlan port, and an instance whose VIPs live on it."""

from __future__ import annotations

import asyncio
import errno
from ipaddress import IPv4Address, ip_interface

import pytest

from vrrp.fake import FakePorts, FakeSegment, FakeVipAddresses, FakeVirtualMacs
from vrrp.machine import State
from vrrp.ports import VrrpIoError
from vrrp.runner import InstanceRunner
from vrrp.settings import InstanceSettings, VipSpec
from vrrp.vmac import VmacSettings, VmacSpec, virtual_mac, vmac_name

VIP = ip_interface("198.51.100.10/24")
GATEWAY = ip_interface("10.0.0.1/24")


def settings(**overrides: object) -> InstanceSettings:
    values: dict[str, object] = {
        "name": "VI_1",
        "interface": "eth0",
        "vrid": 51,
        "priority": 150,
        "version": 3,
        "advert_interval": 1.0,
        "preempt": True,
        "preempt_delay": 0.0,
        "vips": (VipSpec(VIP), VipSpec(GATEWAY, "eth1")),
        "garp_repeat": 1,
        "vmac": VmacSettings(),
    }
    values.update(overrides)
    return InstanceSettings(**values)  # type: ignore[arg-type]


def test_the_virtual_router_mac_is_rfc_5798_section_7_3() -> None:
    assert virtual_mac(51, 4) == "00:00:5e:00:01:33"
    assert virtual_mac(255, 4) == "00:00:5e:00:01:ff"
    assert virtual_mac(1, 6) == "00:00:5e:00:02:01"
    with pytest.raises(ValueError, match=r"vrid: 0 outside 1\.\.255"):
        virtual_mac(0, 4)


def test_the_macvlan_name_is_keepaliveds_default_unless_named() -> None:
    assert vmac_name(51, None) == "vrrp.51"
    assert vmac_name(51, "vip0") == "vip0"
    with pytest.raises(ValueError, match="vmac name: 'a/b'"):
        VmacSettings("a/b")


def test_vips_go_on_the_macvlan_and_adverts_follow_xmit_base() -> None:
    plain = settings()
    assert plain.vmac_spec == VmacSpec("vrrp.51", "eth0", "00:00:5e:00:01:33")
    assert (plain.vip_interface, plain.advert_interface) == ("vrrp.51", "vrrp.51")
    base = settings(vmac=VmacSettings("vip0", xmit_base=True))
    assert (base.vip_interface, base.advert_interface) == ("vip0", "eth0")
    none = settings(vmac=None)
    assert (none.vmac_spec, none.vip_interface, none.advert_interface) == (None, "eth0", "eth0")


def test_an_ipv6_instance_with_a_vmac_is_refused() -> None:
    with pytest.raises(ValueError, match="vmac: offered for IPv4 instances only"):
        settings(vips=(VipSpec(ip_interface("2001:db8::10/64")),))


async def test_the_fake_macvlans_fail_like_the_kernel_and_set_keepaliveds_sysctls() -> None:
    addresses = FakeVipAddresses(["eth0", "eth1"])
    vmacs = FakeVirtualMacs(["eth0", "eth1"], addresses=addresses)
    spec = VmacSpec("vrrp.51", "eth0", "00:00:5e:00:01:33")
    await vmacs.ensure(spec)
    await vmacs.ensure(spec)  # identical: taken over
    assert vmacs.ops == [("add", "vrrp.51")]
    assert vmacs.sysctls["vrrp.51"] == {"arp_ignore": 1, "accept_local": 1, "rp_filter": 0}
    assert vmacs.sysctls["eth0"] == {"arp_ignore": 1, "arp_filter": 1, "arp_announce": 2}
    await addresses.add("vrrp.51", VIP)  # the addresses fake knows the new link
    with pytest.raises(VrrpIoError, match=r"vrrp\.51") as taken:
        await vmacs.ensure(VmacSpec("vrrp.51", "eth1", "00:00:5e:00:01:33"))
    assert taken.value.errno == errno.EEXIST
    with pytest.raises(VrrpIoError, match="eth1") as clash:
        await vmacs.ensure(VmacSpec("eth1", "eth0", "00:00:5e:00:01:34"))
    assert clash.value.errno == errno.EEXIST
    with pytest.raises(VrrpIoError, match="nosuch0") as missing:
        await vmacs.ensure(VmacSpec("vrrp.52", "nosuch0", "00:00:5e:00:01:34"))
    assert missing.value.errno == errno.ENODEV
    await vmacs.remove(spec)
    await vmacs.remove(spec)  # absent: succeeds
    assert vmacs.sysctls["eth0"] == {"arp_ignore": 0, "arp_filter": 0, "arp_announce": 0}
    assert addresses.held() == ()


@pytest.mark.looptime
async def test_a_master_holds_its_vips_on_the_macvlan_and_announces_from_it() -> None:
    segment = FakeSegment()
    addresses = FakeVipAddresses(["eth0", "eth1"])
    vmacs = FakeVirtualMacs(["eth0", "eth1"], addresses=addresses)
    provider = FakePorts(segment, IPv4Address("198.51.100.1"), addresses=addresses, vmacs=vmacs)
    config = settings()
    ports = await provider(config)
    assert vmacs.links == {"vrrp.51": config.vmac_spec}
    runner = InstanceRunner(
        config, link=ports.link, addresses=ports.addresses, announcer=ports.announcer
    )
    task = asyncio.create_task(runner.run())
    async with asyncio.timeout(30):
        while runner.state is not State.MASTER:
            await asyncio.sleep(0.5)
    await asyncio.sleep(1)
    # The VIP without an interface of its own sits on the macvlan; the other stays put.
    assert addresses.held("vrrp.51") == (VIP,)
    assert addresses.held("eth1") == (GATEWAY,)
    announced = {(a.interface, a.vips) for a in provider.announcer.announcements}
    assert ("vrrp.51", (VIP,)) in announced
    await runner.stop()
    await task
    assert addresses.held() == ()
    await provider.release()
    assert vmacs.links == {}


def test_an_ipvlan_has_no_virtual_mac_and_no_xmit_base() -> None:
    spec = settings(vmac=VmacSettings(ipvlan=True)).vmac_spec
    assert spec == VmacSpec("vrrp.51", "eth0", None)
    assert spec is not None and spec.kind == "ipvlan"
    assert spec.describe() == "vrrp.51 (ipvlan l2 bridge on eth0)"
    with pytest.raises(ValueError, match="xmit_base is a macvlan's option"):
        settings(vmac=VmacSettings(ipvlan=True, xmit_base=True))
