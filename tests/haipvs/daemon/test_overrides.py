"""haipvs.daemon.overrides: the operator's commands, their resolution onto IPVS, the file."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from haipvs.daemon.overrides import (
    CommandError,
    DirectorDrain,
    InstanceHold,
    Overrides,
    OverridesInvalidError,
    apply_command,
    load,
    parse_target,
    save,
)
from haipvs.ipvs import AdminState, AdminView, DestKey, ServiceKey

WEB = ServiceKey.tcp("198.51.100.10", 80)
TLS = ServiceKey.tcp("198.51.100.10", 443)
RS1, RS2 = DestKey("10.0.0.11", 80), DestKey("10.0.0.12", 80)
RS1_TLS = DestKey("10.0.0.11", 443)
SERVICES = {WEB: ("web", (RS1, RS2)), TLS: ("tls", (RS1_TLS,))}
INSTANCES = ("VI_1",)


def run(overrides: Overrides, uid: int = 0, now: float = 1000.0, **request: object) -> Overrides:
    outcome = apply_command(overrides, request, uid=uid, now=now, services=SERVICES,
                            instances=INSTANCES)
    return outcome.overrides


def test_targets_parse_like_ipvsadm_prints_them() -> None:
    assert parse_target("10.0.0.11:80") == ("10.0.0.11", 80)
    assert parse_target("10.0.0.11") == ("10.0.0.11", None)
    assert parse_target("[2001:db8::11]:80") == ("2001:db8::11", 80)
    assert parse_target("2001:DB8::11") == ("2001:db8::11", None)
    for bad, message in (("web1:80", "not an IP address"), ("10.0.0.11:0", "1-65535"),
                         ("[2001:db8::11]x", r"expected \[IPV6\]:PORT")):
        with pytest.raises(CommandError, match=message):
            parse_target(bad)


def test_drain_of_an_address_covers_every_port_and_every_service() -> None:
    drained = run(Overrides(), uid=1001, command="drain", target="10.0.0.11")
    assert drained.resolve(SERVICES) == {
        (WEB, RS1): AdminView(AdminState.DRAIN, "haipvs drain 10.0.0.11 by uid 1001"),
        (TLS, RS1_TLS): AdminView(AdminState.DRAIN, "haipvs drain 10.0.0.11 by uid 1001"),
    }


def test_drain_with_port_and_service_covers_only_that_row() -> None:
    drained = run(Overrides(), command="drain", target="10.0.0.11:80", service="web")
    assert list(drained.resolve(SERVICES)) == [(WEB, RS1)]


def test_maintenance_wins_over_drain_and_undrain_leaves_maintenance_alone() -> None:
    both = run(run(Overrides(), command="drain", target="10.0.0.11"),
               command="maintenance", target="10.0.0.11:80", on=True)
    assert both.resolve(SERVICES)[(WEB, RS1)].state is AdminState.MAINTENANCE
    assert both.resolve(SERVICES)[(TLS, RS1_TLS)].state is AdminState.DRAIN
    with pytest.raises(CommandError, match="is in maintenance, not drain"):
        run(both, command="undrain", target="10.0.0.11:80")
    left = run(both, command="maintenance", target="10.0.0.11:80", on=False)
    assert left.resolve(SERVICES)[(WEB, RS1)].state is AdminState.DRAIN


def test_undrain_restores_and_repeats_change_nothing() -> None:
    drained = run(Overrides(), command="drain", target="10.0.0.12:80")
    again = apply_command(drained, {"command": "drain", "target": "10.0.0.12:80"}, uid=0,
                          now=1.0, services=SERVICES, instances=INSTANCES)
    assert not again.changed and again.overrides == drained
    undone = apply_command(drained, {"command": "undrain", "target": "10.0.0.12:80"}, uid=0,
                           now=1.0, services=SERVICES, instances=INSTANCES)
    assert undone.changed and undone.event == "operator.undrain"
    assert undone.overrides.resolve(SERVICES) == {}


def test_commands_that_name_nothing_real_are_refused() -> None:
    for request, message in (
        ({"command": "drain", "target": "10.0.0.99"}, "no real server of the running config"),
        ({"command": "drain", "target": "10.0.0.11", "service": "nope"},
         "no virtual server named 'nope'"),
        ({"command": "drain", "target": "10.0.0.12:80", "service": "tls"},
         "no real server of the running config"),
        ({"command": "failover", "instance": "VI_9"}, "no VRRP instance named 'VI_9'"),
        ({"command": "maintenance", "target": "10.0.0.11"}, "maintenance needs on or off"),
        ({"command": "failover", "instance": "VI_1", "hold_for": -1}, "positive"),
        ({"command": "reboot"}, "unknown command 'reboot'"),
    ):
        with pytest.raises(CommandError, match=message):
            run(Overrides(), **request)


def test_failover_holds_until_released_or_for_the_time_given() -> None:
    held = run(Overrides(), uid=7, now=100.0, command="failover", instance="VI_1")
    assert held.active_holds(10**9) == {"VI_1": "operator failover by uid 7"}
    released = run(held, command="failover", instance="VI_1", release=True)
    assert released.holds == ()
    timed = run(Overrides(), now=100.0, command="failover", instance="VI_1", hold_for=30)
    assert timed.hold("VI_1") == InstanceHold("VI_1", 100.0, 130.0, 0)
    assert timed.active_holds(129.9) == {"VI_1": "operator failover by uid 0"}
    assert timed.active_holds(130.0) == {}
    assert timed.next_expiry(100.0) == 130.0
    assert timed.without_expired(130.0).holds == ()


def test_the_file_round_trips_and_is_replaced_atomically(tmp_path: Path) -> None:
    path = str(tmp_path / "state" / "overrides.json")
    assert load(path) == Overrides()
    overrides = run(
        run(Overrides(), uid=3, command="maintenance", target="10.0.0.12:80", on=True),
        command="failover", instance="VI_1", hold_for=5)
    save(path, overrides)
    assert load(path) == overrides
    assert os.listdir(tmp_path / "state") == ["overrides.json"]  # no temporary left behind


def test_a_damaged_file_is_refused_with_its_location(tmp_path: Path) -> None:
    path = tmp_path / "overrides.json"
    path.write_text('{"format": 1,\n "servers": [}')
    with pytest.raises(OverridesInvalidError, match=r"overrides.json:2:\d+: "):
        load(str(path))
    path.write_text(json.dumps({"format": 1, "servers": [
        {"address": "10.0.0.1", "port": 70000, "service": None, "state": "drain",
         "since": 0, "uid": 0}]}))
    with pytest.raises(OverridesInvalidError, match=r"servers\[0\]: port 70000 is not 1-65535"):
        load(str(path))
    path.write_text(json.dumps({"format": 1, "servers": [{"address": "10.0.0.1"}]}))
    with pytest.raises(OverridesInvalidError, match="bad entry"):
        load(str(path))


def director(overrides: Overrides, command: str, *, announces: bool = True,
             uid: int = 1001) -> tuple[Overrides, str, str, bool]:
    outcome = apply_command(overrides, {"command": command}, uid=uid, now=2000.0,
                            services=SERVICES, instances=INSTANCES, announces=announces)
    return outcome.overrides, outcome.event, outcome.message, outcome.changed


def test_drain_director_is_recorded_with_its_uid_and_undrain_ends_it() -> None:
    drained, event, message, changed = director(Overrides(), "drain-director")
    assert drained.director == DirectorDrain(since=2000.0, uid=1001)
    assert (event, changed) == ("operator.director.drain", True)
    assert message.startswith("director drained: every VIP withdrawn from the routers")
    again, _, message, changed = director(drained, "drain-director", uid=0)
    assert (again, message, changed) == (drained, "already drained (by uid 1001)", False)
    ended, event, message, changed = director(drained, "undrain-director")
    assert ended.director is None and changed and event == "operator.director.undrain"
    assert "announced again once its gates hold" in message
    _, _, message, changed = director(ended, "undrain-director")
    assert (message, changed) == ("this director is not drained", False)


def test_drain_director_is_refused_in_a_vrrp_pair_but_undrain_is_not() -> None:
    with pytest.raises(CommandError, match=r"announces no VIP over BGP .* haipvs failover"):
        director(Overrides(), "drain-director", announces=False)
    # A drain persisted under a bgp config stays removable after a reload to a pair.
    drained = Overrides(director=DirectorDrain(10.0, 0))
    ended, _, _, changed = director(drained, "undrain-director", announces=False)
    assert ended.director is None and changed


def test_the_director_drain_round_trips_and_older_files_still_load(tmp_path: Path) -> None:
    path = str(tmp_path / "overrides.json")
    drained = Overrides(director=DirectorDrain(since=5.0, uid=7))
    save(path, drained)
    assert load(path) == drained
    with open(path) as handle:
        doc = json.load(handle)
    doc.pop("director")  # a file written before drain-director existed
    with open(path, "w") as handle:
        json.dump(doc, handle)
    assert load(path) == Overrides()
    doc["director"] = [5.0, 7]
    with open(path, "w") as handle:
        json.dump(doc, handle)
    with pytest.raises(OverridesInvalidError, match="director must be an object or null"):
        load(path)
