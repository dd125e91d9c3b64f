"""PING_CHECK: echo packets with literal bytes, a real echo on loopback, and (lab) a
real server that stops answering ICMP and starts again."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterator
from ipaddress import IPv4Address
from typing import Any

import pytest

from checkers.ping import build_echo_request, check_ping, echo_reply_matches
from checkers.probe import run_probe
from checkers.spec import PingCheck, Target, Timing

PAYLOAD = bytes(range(16))


def test_an_ipv4_echo_request_carries_its_checksum() -> None:
    request = build_echo_request(4, 0x1234, 7, PAYLOAD)
    assert request[:8] == bytes.fromhex("0800ad8412340007")
    # The Internet checksum over the whole message sums to 0xFFFF (RFC 1071).
    words = [int.from_bytes(request[i : i + 2], "big") for i in range(0, len(request), 2)]
    total = sum(words)
    while total > 0xFFFF:
        total = (total & 0xFFFF) + (total >> 16)
    assert total == 0xFFFF


def test_an_ipv6_echo_request_leaves_the_checksum_to_the_kernel() -> None:
    assert build_echo_request(6, 1, 2, PAYLOAD)[:8] == bytes.fromhex("8000000000010002")


@pytest.mark.parametrize(
    ("message", "identifier", "matches"),
    [
        (bytes.fromhex("0000000012340007") + PAYLOAD, 0x1234, True),
        (bytes.fromhex("0000000012340007") + PAYLOAD, None, True),  # ping socket: kernel's id
        (bytes.fromhex("0000000099990007") + PAYLOAD, 0x1234, False),  # someone else's echo
        (bytes.fromhex("0000000012340008") + PAYLOAD, 0x1234, False),  # another sequence
        (bytes.fromhex("0800000012340007") + PAYLOAD, 0x1234, False),  # a request, not a reply
        (bytes.fromhex("0000000012340007") + bytes(16), 0x1234, False),  # spoofed payload
        (bytes.fromhex("00000000123400"), 0x1234, False),  # truncated
    ],
)
def test_only_our_reply_matches(message: bytes, identifier: int | None, matches: bool) -> None:
    assert echo_reply_matches(4, message, 7, PAYLOAD, identifier) is matches


async def test_loopback_answers() -> None:
    spec = PingCheck(Timing(interval=1.0, timeout=2.0, rise=1, fall=1))
    result = await run_probe(spec, Target(IPv4Address("127.0.0.1"), 0))
    assert (result.ok, result.detail) == (True, "echo reply")
    result6 = await check_ping("::1", 2.0)
    assert (result6.ok, result6.detail) == (True, "echo reply")


@contextlib.contextmanager
def _in_netns(name: str) -> Iterator[None]:
    from pyroute2 import netns

    netns.pushns(name)
    try:
        yield
    finally:
        netns.popns()


@pytest.mark.lab
def test_a_server_that_ignores_echo_is_down_until_it_answers_again() -> None:
    from haipvs.lab.topology import Endpoint, Host, Topology, Veth, build

    topology = Topology(
        hosts=(Host("dir"), Host("rs", sysctls={"net.ipv4.icmp_echo_ignore_all": "1"})),
        links=(
            Veth(
                Endpoint("dir", "eth0", ("10.9.0.1/24",)), Endpoint("rs", "eth0", ("10.9.0.2/24",))
            ),
        ),
    )
    with build(topology, prefix="ping-") as net:

        def ping() -> Any:
            with _in_netns(net.ns("dir")):
                return asyncio.run(check_ping("10.9.0.2", 0.5))

        silent = ping()
        assert (silent.ok, silent.detail) == (False, "no echo reply after 0.5s")
        net.run("rs", ["sysctl", "-q", "-w", "net.ipv4.icmp_echo_ignore_all=0"])
        answering = ping()
        assert (answering.ok, answering.detail) == (True, "echo reply")
