"""Small helpers shared by the test modules (tests/ is on sys.path: conftest.py lives here)."""

from __future__ import annotations

import asyncio
import socket
import struct
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import ClassVar

import vrrp
from haipvs.status.snapshot import InstanceView
from haipvs.supervisor import Supervisor


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for a condition the code under test reaches on its own (not a timing assertion)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


async def rounds(counter: Callable[[], int], more: int = 2, timeout: float = 5.0) -> None:
    """Wait until ``counter`` (a loop's completed rounds) has moved by ``more``: "nothing
    happened for a whole round" then holds by construction, not after a guessed sleep."""
    start = counter()
    await until(lambda: counter() >= start + more, timeout)


def gate_rounds(supervisor: Supervisor) -> int:
    """The scale-out part's completed gate evaluations (-1 before the part exists)."""
    part = supervisor.bgp
    return -1 if part is None else part.evaluations


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    """Poll ``condition`` from a thread without a loop; its last value after ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()


def read_pcap(path: Path) -> list[bytes]:
    """Frames of a classic pcap file (either byte order), as tcpdump -w writes it."""
    data = path.read_bytes()
    (magic,) = struct.unpack_from("<I", data)
    order = "<" if magic == 0xA1B2C3D4 else ">"
    assert struct.unpack_from(f"{order}I", data)[0] == 0xA1B2C3D4, f"{path}: not a pcap file"
    linktype = struct.unpack_from(f"{order}I", data, 20)[0]
    assert linktype == 1, f"{path}: link type {linktype}, expected Ethernet"
    frames, offset = [], 24
    while offset + 16 <= len(data):
        incl_len = struct.unpack_from(f"{order}I", data, offset + 8)[0]
        offset += 16
        frames.append(data[offset : offset + incl_len])
        offset += incl_len
    return frames


class FakeHost:
    """Host facts for haipvs.daemon.accept: these interfaces exist, no other."""

    def __init__(self, *interfaces: str) -> None:
        self.interfaces = set(interfaces or ("lo", "eth0", "eth1"))

    def has_interface(self, name: str) -> bool:
        return name in self.interfaces


class FakeVrrpPart:
    """The supervisor's VRRP part (haipvs.supervisor.VrrpPart) with no VRRP behind it.

    Pass the class as ``vrrp_factory``. The newest part built is ``FakeVrrpPart.last``,
    so a test can deliver transitions through ``last.on_transition``; set ``last`` to
    None before building the supervisor it waits for.
    """

    last: ClassVar[FakeVrrpPart | None] = None

    def __init__(self, instances: Sequence[vrrp.InstanceSettings],
                 on_transition: Callable[[str, str, str, str, str], None]) -> None:
        self.instances = tuple(instances)
        self.on_transition = on_transition
        self.holds: dict[str, str] = {}
        FakeVrrpPart.last = self

    async def start(self) -> None:
        pass

    async def update(self, instances: Sequence[vrrp.InstanceSettings]) -> None:
        self.instances = tuple(instances)

    async def stop(self) -> None:
        pass

    def views(self) -> tuple[InstanceView, ...]:
        return ()

    def loop_lag(self) -> float:
        return 0.0

    def restarts(self) -> int:
        return 0

    async def set_holds(self, holds: Mapping[str, str]) -> None:
        self.holds = dict(holds)
