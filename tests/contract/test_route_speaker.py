"""One contract for the RouteSpeaker: FakeSpeaker and a real BIRD 2 behave alike.

The real one is BIRD itself, run on this host with the configuration haipvs renders
(``render_bird_config``) and its own control socket; it needs no lab kernel and talks to
no neighbour (the statics alone), so no packet leaves the machine.
"""

from __future__ import annotations

import asyncio
import errno
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest

from haipvs.bgp.bird import BirdControl, BirdError, RouteSpeaker, SpeakerError
from haipvs.bgp.fake import FakeSpeaker
from haipvs.bgp.snippet import BirdSettings, protocol_name, render_bird_config

VIP = IPv4Address("198.51.100.10")
VIP6 = IPv6Address("2001:db8::10")
NAMES = (protocol_name(VIP), protocol_name(VIP6))
SETTINGS = BirdSettings(
    router_id=IPv4Address("192.0.2.1"), local_as=65001, neighbours=(), vips=(VIP, VIP6)
)


@dataclass
class Speaker:
    port: RouteSpeaker
    kill: Callable[[], None]
    restart: Callable[[], None]
    config: Path


class _RealBird:
    def __init__(self, directory: Path) -> None:
        self.socket = str(directory / "bird.ctl")
        self.config = directory / "bird.conf"
        self.config.write_text(render_bird_config(SETTINGS))
        self.process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        bird = shutil.which("bird")
        assert bird is not None
        self.process = subprocess.Popen(
            [bird, "-f", "-c", str(self.config), "-s", self.socket],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        for _ in range(100):
            if os.path.exists(self.socket):
                return
            if self.process.poll() is not None:
                raise AssertionError(f"bird exited: {self.process.stderr.read()!r}")  # type: ignore[union-attr]
            subprocess.run(["sleep", "0.05"], check=True)
        raise AssertionError("bird made no control socket")

    def kill(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()

    def restart(self) -> None:
        self.kill()
        os.unlink(self.socket)
        self.start()


@pytest.fixture(params=["fake", "real"])
async def speaker(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Speaker]:
    if request.param == "fake":
        config = tmp_path / "bird.conf"
        config.write_text(render_bird_config(SETTINGS))
        fake = FakeSpeaker(NAMES, config_file=config)

        def kill() -> None:
            fake.running = False

        def restart() -> None:
            fake.running = True

        yield Speaker(fake, kill, restart, config)
        return
    if shutil.which("bird") is None:
        pytest.skip("BIRD 2 is not installed (./dev installs Debian's bird2)")
    real = _RealBird(tmp_path)
    real.start()
    control = BirdControl(real.socket)
    try:
        yield Speaker(control, real.kill, real.restart, real.config)
    finally:
        await control.close()
        real.kill()


async def test_announce_and_withdraw_are_idempotent(speaker: Speaker) -> None:
    port = speaker.port
    name = protocol_name(VIP)
    assert (await port.protocol_states())[name].startswith("down")  # configured disabled
    assert await port.announce(name) is True
    assert await port.announce(name) is False
    assert (await port.protocol_states())[name].startswith("up")
    assert await port.withdraw(name) is True
    assert await port.withdraw(name) is False
    assert (await port.protocol_states())[name].startswith("down")


async def test_an_unknown_protocol_is_birds_parse_error(speaker: Speaker) -> None:
    with pytest.raises(BirdError, match="syntax error") as raised:
        await speaker.port.announce("haipvs_vip_192_0_2_99")
    assert raised.value.code == 9001
    # The session survives a refused command.
    assert await speaker.port.announce(protocol_name(VIP6)) is True


async def test_a_dead_speaker_refuses_and_a_restarted_one_is_reached_again(
    speaker: Speaker,
) -> None:
    port = speaker.port
    await port.protocol_states()
    speaker.kill()
    with pytest.raises(SpeakerError) as raised:
        await port.announce(protocol_name(VIP))
        await port.announce(protocol_name(VIP))  # the first may only see the reset
    assert raised.value.code in (errno.ECONNRESET, errno.ECONNREFUSED)
    with pytest.raises(SpeakerError) as refused:
        await port.announce(protocol_name(VIP))
    assert refused.value.code == errno.ECONNREFUSED
    speaker.restart()
    await asyncio.sleep(0)
    assert await port.announce(protocol_name(VIP)) is True


async def test_configure_disables_an_enabled_static_again_and_refuses_a_broken_file(
    speaker: Speaker,
) -> None:
    # Why BgpPart re-announces after every configure: BIRD re-applies ``disabled``.
    port = speaker.port
    name = protocol_name(VIP)
    assert await port.announce(name) is True
    await port.configure()
    for _ in range(50):  # BIRD may answer "Reconfiguration in progress" first
        if (await port.protocol_states())[name].startswith("down"):
            break
        await asyncio.sleep(0.02)
    assert (await port.protocol_states())[name].startswith("down")
    speaker.config.write_text("garbage {\n")
    with pytest.raises(BirdError, match="syntax error") as refused:
        await port.configure()
    assert refused.value.code == 8002
    # The running config stays: the protocol is still there to enable.
    assert await port.announce(name) is True
