"""keepalived vrrp_strict / strict_mode in the sans-IO core: RFC 5798 as written where
keepalived otherwise bends it, and the settings strict mode refuses. Literal times."""

from __future__ import annotations

from ipaddress import IPv4Address

import pytest
from pair import make_node, make_settings

from vrrp.machine import Announce, SendAdvert, State
from vrrp.packet import Advertisement
from vrrp.vmac import VmacSettings

B = "192.0.2.2"
C = IPv4Address("192.0.2.3")
VIP = IPv4Address("198.51.100.10")


def advert(priority: int) -> Advertisement:
    return Advertisement(3, 51, priority, 1.0, (VIP,))


@pytest.mark.parametrize(
    ("strict", "answer"), [(False, (SendAdvert(150), Announce())), (True, ())]
)
def test_a_strict_master_discards_a_lower_priority_advert(
    strict: bool, answer: tuple[object, ...]
) -> None:
    machine = make_node("b", B, priority=150, strict=strict).machine
    machine.start(0.0)
    machine.on_timer(3.4140625)
    assert machine.state is State.MASTER
    # keepalived answers a lower-priority master at once and re-announces; under
    # vrrp_strict (lower_prio_no_advert, garp_lower_prio_repeat 0) it discards the
    # advert, as RFC 5798 §6.4.3 says.
    assert machine.on_advert(advert(100), C, 4.0) == answer
    assert machine.state is State.MASTER
    # A higher priority still wins, strict or not.
    machine.on_advert(advert(200), C, 4.5)
    assert machine.state is State.BACKUP


def test_a_strict_address_owner_ignores_every_advert() -> None:
    owner = make_node("b", B, priority=255, strict=True).machine
    assert owner.start(0.0)  # the owner is master at once
    assert owner.state is State.MASTER
    # Another 255 with a higher address would take over (RFC 5798 §6.4.3); keepalived's
    # strict owner_ignore_adverts keeps the owner master.
    assert owner.on_advert(advert(255), C, 1.0) == ()
    assert owner.state is State.MASTER
    plain = make_node("b", B, priority=255).machine
    plain.start(0.0)
    plain.on_advert(advert(255), C, 1.0)
    assert plain.state is State.BACKUP


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"unicast_peers": (C,)}, "strict: unicast peers are not allowed"),
        ({"version": 2, "auth_pass": "secret"}, "strict: no authentication"),
        ({"preempt_delay": 5.0}, "strict: no preempt_delay"),
        ({"vmac": VmacSettings(xmit_base=True)}, "strict: no vmac xmit_base"),
    ],
)
def test_strict_refuses_what_keepalived_strict_mode_refuses(
    overrides: dict[str, object], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        make_settings(strict=True, **overrides)  # type: ignore[arg-type]


def test_strict_settings_without_those_are_fine() -> None:
    assert make_settings(strict=True, vmac=VmacSettings()).strict
