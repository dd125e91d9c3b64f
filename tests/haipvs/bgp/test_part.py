"""BgpPart with FakeSpeaker on looptime's virtual clock: times are exact and cost nothing."""

from __future__ import annotations

import asyncio
import errno
from collections.abc import Iterable, Iterator, MutableMapping
from dataclasses import replace
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path
from typing import Any

import pytest
from structlog.testing import capture_logs

from haipvs.bgp.bird import BirdError
from haipvs.bgp.fake import FakeSpeaker
from haipvs.bgp.part import BgpPart, DirectorState
from haipvs.bgp.plan import ScaleOutPlan, VipPlan
from haipvs.bgp.snippet import BirdSettings, Neighbour, protocol_name
from haipvs.status.snapshot import ProgrammerView, RealServerView, ServiceView, Snapshot
from haipvs.supervisor import director_state

pytestmark = pytest.mark.looptime

VIP = IPv4Address("192.0.2.10")
VIP2 = IPv4Address("192.0.2.11")
WEB = "tcp/192.0.2.10:80"
API = "tcp/192.0.2.11:80"
Logs = list[MutableMapping[str, Any]]


def plan(
    path: Path, *, need: int = 2, learn: float = 0.0, vips: tuple[IPv4Address, ...] = (VIP, VIP2)
) -> ScaleOutPlan:
    services = {VIP: (WEB,), VIP2: (API,)}
    return ScaleOutPlan(
        bird=BirdSettings(
            router_id=IPv4Address("10.0.1.2"),
            local_as=65001,
            neighbours=(Neighbour(IPv4Address("10.0.1.1"), 65000),),
            vips=vips,
        ),
        control_socket="/unused",
        config_file=str(path),
        max_loop_lag=1.0,
        vips={vip: VipPlan(need=need, learn=learn, services=services[vip]) for vip in vips},
    )


class State:
    def __init__(self) -> None:
        self.now = DirectorState({WEB: 2, API: 2}, table_in_sync=True, loop_lag=0.0)
        self.missing: dict[IPv4Address | IPv6Address, str] = {}  # VIPs not on this host

    def unusable(self, vips: Iterable[IPv4Address | IPv6Address],
                 ) -> dict[IPv4Address | IPv6Address, str]:
        return {vip: self.missing[vip] for vip in vips if vip in self.missing}

    def __call__(self) -> DirectorState:
        return self.now

    def set(self, **changes: Any) -> None:
        self.now = replace(self.now, **changes)


@pytest.fixture(autouse=True)
def logs() -> Iterator[Logs]:
    # Every test: an earlier supervisor test leaves structlog writing to its own captured
    # (by now closed) stdout, and the part's first log line would fail on it.
    with capture_logs() as captured:
        yield captured


def events(logs: Logs, name: str) -> Logs:
    return [entry for entry in logs if entry["event"] == name]


def started(tmp_path: Path, **kwargs: Any) -> tuple[BgpPart, FakeSpeaker, State]:
    config = tmp_path / "haipvs.conf"
    speaker = FakeSpeaker(config_file=config)
    state = State()
    part = BgpPart(plan(config, **kwargs), speaker, state, vip_check=state.unusable)
    part.start()
    return part, speaker, state


def on(speaker: FakeSpeaker) -> set[str]:
    return set(speaker.announced())


async def test_writes_the_config_then_announces_only_when_the_gates_hold(
    tmp_path: Path, logs: Logs
) -> None:
    part, speaker, state = started(tmp_path)
    state.set(table_in_sync=False)
    await asyncio.sleep(1.0)
    assert "protocol static haipvs_vip_192_0_2_10" in (tmp_path / "haipvs.conf").read_text()
    assert speaker.configures == 1
    assert on(speaker) == set()
    state.set(table_in_sync=True)
    part.poke()
    await asyncio.sleep(0)
    await asyncio.sleep(0)
    assert on(speaker) == {protocol_name(VIP), protocol_name(VIP2)}
    assert [e["vip"] for e in events(logs, "bgp.vip.announced")] == [str(VIP), str(VIP2)]
    assert part.view().announced == (str(VIP), str(VIP2))
    await part.stop()


async def test_withdraws_a_vip_whose_service_falls_below_need_and_says_why(
    tmp_path: Path, logs: Logs
) -> None:
    part, speaker, state = started(tmp_path)
    await asyncio.sleep(0.1)
    state.set(up_by_service={WEB: 1, API: 2})
    part.poke()
    await asyncio.sleep(0.1)
    assert on(speaker) == {protocol_name(VIP2)}
    (withdrawn,) = events(logs, "bgp.vip.withdrawn")
    assert withdrawn["vip"] == str(VIP)
    assert withdrawn["reason"] == f"need 2 real servers up on {WEB}, 1 up"
    state.set(up_by_service={WEB: 2, API: 2})
    await asyncio.sleep(0.6)  # no poke: the periodic evaluation picks it up
    assert on(speaker) == {protocol_name(VIP), protocol_name(VIP2)}
    await part.stop()


async def test_a_vip_this_host_does_not_hold_is_withdrawn_and_shown(
    tmp_path: Path, logs: Logs
) -> None:
    part, speaker, state = started(tmp_path)
    await asyncio.sleep(0.1)
    assert len(on(speaker)) == 2
    state.missing[VIP] = "192.0.2.10 is not an address of this director (put it on lo)"
    await asyncio.sleep(0.6)  # the periodic evaluation reads it
    assert on(speaker) == {protocol_name(VIP2)}
    assert part.view().withheld == {str(VIP): state.missing[VIP]}
    assert events(logs, "bgp.vip.withdrawn")[0]["reason"] == state.missing[VIP]
    del state.missing[VIP]
    await asyncio.sleep(0.6)
    assert len(on(speaker)) == 2 and part.view().withheld == {}
    await part.stop()


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"table_in_sync": False}, "IPVS table not yet equal to the desired one"),
        ({"sloppy_tcp": "cannot set it: Permission denied"},
         "net.ipv4.vs.sloppy_tcp is not 1 (cannot set it: Permission denied): a flow the "
         "routers move here would arrive as a bare ACK and be reset"),
        ({"loop_lag": 2.5}, "control loop stalled (2.50 s > 1 s)"),
    ],
)
async def test_each_director_gate_withdraws_every_vip(
    tmp_path: Path, logs: Logs, change: dict[str, Any], reason: str
) -> None:
    part, speaker, state = started(tmp_path)
    await asyncio.sleep(0.1)
    state.set(**change)
    await asyncio.sleep(0.6)
    assert on(speaker) == set()
    assert {e["reason"] for e in events(logs, "bgp.vip.withdrawn")} == {reason}
    await part.stop()


async def test_operator_drain_withdraws_and_undrain_announces_again(
    tmp_path: Path, logs: Logs
) -> None:
    part, speaker, state = started(tmp_path)
    await asyncio.sleep(0.1)
    state.set(drained=True)
    part.poke()
    await asyncio.sleep(0.1)
    assert on(speaker) == set()
    assert part.view().drained
    assert events(logs, "bgp.vip.withdrawn")[0]["reason"] == "director drained by the operator"
    state.set(drained=False)
    part.poke()
    await asyncio.sleep(0.1)
    assert len(on(speaker)) == 2
    await part.stop()


async def test_learn_holds_the_announcement_for_its_warm_up(tmp_path: Path) -> None:
    part, speaker, _ = started(tmp_path, learn=3.0)
    await asyncio.sleep(2.9)
    assert on(speaker) == set()
    await asyncio.sleep(0.6)
    assert len(on(speaker)) == 2
    await part.stop()


async def test_learn_counts_from_when_the_sync_mesh_began_to_listen(tmp_path: Path) -> None:
    # The joiner of the lab walk announced 8 s after its start but its backup sync daemon
    # had run for less: it held 82 % of its peers' connections, not all.
    part, speaker, state = started(tmp_path, learn=3.0)
    state.set(learning_since=asyncio.get_running_loop().time() + 2.0)
    await asyncio.sleep(4.9)
    assert on(speaker) == set()
    await asyncio.sleep(0.6)
    assert len(on(speaker)) == 2
    await part.stop()


async def test_a_sync_mesh_started_by_reload_does_not_withdraw_an_announced_vip(
    tmp_path: Path, logs: Logs
) -> None:
    # The mesh reload restarts the learn count (nothing was synced before it listened);
    # a director already carrying flows must keep them: only the first announcement waits.
    part, speaker, state = started(tmp_path, learn=3.0)
    await asyncio.sleep(3.5)
    assert len(on(speaker)) == 2
    state.set(learning_since=asyncio.get_running_loop().time())
    part.poke()
    await asyncio.sleep(1.0)
    assert len(on(speaker)) == 2
    assert events(logs, "bgp.vip.withdrawn") == []
    await part.stop()


async def test_a_speaker_that_is_down_is_logged_retried_with_backoff_and_never_fatal(
    tmp_path: Path, logs: Logs
) -> None:
    part, speaker, _ = started(tmp_path)
    speaker.running = False
    await asyncio.sleep(10.0)
    failures = events(logs, "bgp.speaker.failed")
    assert failures[0]["code"] == errno.ECONNREFUSED
    assert failures[0]["error"] == "Connection refused"
    # 0.5, 1, 2, 4 s apart: five attempts in ten seconds, not twenty.
    assert [f["retry_in"] for f in failures] == [0.5, 1.0, 2.0, 4.0, 8.0]
    assert part.view().speaker_error is not None
    speaker.running = True
    await asyncio.sleep(8.0)
    assert len(on(speaker)) == 2
    assert part.view().speaker_error is None
    await part.stop()


async def test_a_refused_config_is_bird_s_words_and_is_retried(
    tmp_path: Path, logs: Logs
) -> None:
    config = tmp_path / "haipvs.conf"
    speaker = FakeSpeaker(config_file=config)
    real_configure = speaker.configure
    refusals = 2

    async def refusing() -> None:
        nonlocal refusals
        if refusals:
            refusals -= 1
            raise BirdError("configure", 8002, "haipvs.conf:3:1 syntax error")
        await real_configure()

    speaker.configure = refusing  # type: ignore[method-assign]
    state = State()
    part = BgpPart(plan(config), speaker, state, vip_check=state.unusable)
    part.start()
    await asyncio.sleep(3.0)
    failures = events(logs, "bgp.speaker.failed")
    assert [(f["op"], f["code"], f["error"]) for f in failures] == [
        ("configure", 8002, "haipvs.conf:3:1 syntax error")
    ] * 2
    assert len(on(speaker)) == 2
    await part.stop()


async def test_stop_withdraws_every_vip_first(tmp_path: Path, logs: Logs) -> None:
    part, speaker, _ = started(tmp_path)
    await asyncio.sleep(0.1)
    assert len(on(speaker)) == 2
    loop = asyncio.get_running_loop()
    stop = asyncio.create_task(part.stop())
    await asyncio.sleep(0.5)
    assert on(speaker) == set()  # withdrawn at once...
    assert not stop.done()  # ...and the caller waits withdraw_grace before tearing down
    before = loop.time()
    await stop
    assert loop.time() - before == pytest.approx(0.5)
    assert [(e["vip"], e["reason"]) for e in events(logs, "bgp.vip.withdrawn")] == [
        (str(VIP), "shutting down"),
        (str(VIP2), "shutting down"),
    ]


async def test_a_reload_rewrites_the_config_and_re_announces(tmp_path: Path, logs: Logs) -> None:
    part, speaker, _ = started(tmp_path)
    await asyncio.sleep(0.1)
    part.update(plan(tmp_path / "haipvs.conf", vips=(VIP,)))
    await asyncio.sleep(0.1)
    assert speaker.configures == 2
    assert on(speaker) == {protocol_name(VIP)}
    assert "192_0_2_11" not in (tmp_path / "haipvs.conf").read_text()
    assert [e["vip"] for e in events(logs, "bgp.vip.withdrawn")] == [str(VIP2)]
    part.update(plan(tmp_path / "haipvs.conf", vips=(VIP,)))
    await asyncio.sleep(0.1)
    assert speaker.configures == 2  # same text: BIRD is left alone
    await part.stop()


def test_director_state_counts_up_servers_the_operator_has_not_taken_out() -> None:
    def rs(address: str, health: str, admin: str | None = None) -> RealServerView:
        return RealServerView(address, 80, 1, 1, "tun", health, "", None, None, admin=admin)

    snapshot = Snapshot(
        director="d1",
        version="x",
        started_at=0.0,
        config_file="c",
        instances=(),
        services=(
            ServiceView("web", WEB, "mh", True, (rs("a", "up"), rs("b", "down"),
                                                 rs("c", "up", admin="drain"))),
        ),
        programmer=ProgrammerView(True, 1, None, None, None, None, {}, 0, 0),
        last_reload=None,
        loop_lag_ms=250.0,
    )
    assert director_state(snapshot) == DirectorState({WEB: 1}, True, 0.25)


async def test_a_restarted_bird_is_configured_again_and_the_vips_re_announced(
    tmp_path: Path, logs: Logs
) -> None:
    part, speaker, _ = started(tmp_path)
    await asyncio.sleep(0.1)
    assert len(on(speaker)) == 2
    speaker.running = False
    await asyncio.sleep(0.6)
    speaker.restart()  # every static disabled, as a new BIRD on the same file
    await asyncio.sleep(2.0)
    assert len(on(speaker)) == 2
    assert speaker.configures == 2
    await part.stop()


async def test_a_vip_disabled_behind_haipvs_back_is_enabled_again(
    tmp_path: Path, logs: Logs
) -> None:
    part, speaker, _ = started(tmp_path)
    await asyncio.sleep(0.1)
    await speaker.withdraw(protocol_name(VIP))  # an operator's `birdc disable`
    await asyncio.sleep(1.1)
    assert len(on(speaker)) == 2
    (drift,) = events(logs, "bgp.vip.drift")
    assert drift["vip"] == str(VIP) and drift["bird_state"] == "down"
    await part.stop()
