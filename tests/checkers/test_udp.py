"""UDP probe against real datagram servers on loopback."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from ipaddress import IPv4Address
from typing import cast

import pytest

from checkers.probe import run_probe
from checkers.spec import Target, Timing, UdpCheck
from checkers.udp import check_udp


class Responder(asyncio.DatagramProtocol):
    """Answers each datagram with reply(payload) (None: stays silent)."""

    def __init__(self, reply: Callable[[bytes], bytes | None]) -> None:
        self.reply = reply
        self.received: list[bytes] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.received.append(data)
        answer = self.reply(data)
        if answer is not None and self.transport is not None:
            self.transport.sendto(answer, addr)


StartUdp = Callable[..., Awaitable[tuple[Responder, int]]]


@pytest.fixture
async def serve_udp() -> AsyncIterator[StartUdp]:
    transports: list[asyncio.DatagramTransport] = []

    async def start(
        reply: Callable[[bytes], bytes | None], host: str = "127.0.0.1"
    ) -> tuple[Responder, int]:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: Responder(reply), local_addr=(host, 0)
        )
        transports.append(transport)
        return protocol, transport.get_extra_info("sockname")[1]

    yield start
    for transport in transports:
        transport.close()


def closed_udp_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_expected_reply_is_up(serve_udp: StartUdp) -> None:
    server, port = await serve_udp(lambda data: b"PONG " + data)
    result = await check_udp("127.0.0.1", port, 1.0, payload=b"PING", expect=b"PONG")
    assert result.ok, result.detail
    assert server.received == [b"PING"]


async def test_any_reply_is_up_without_expect(serve_udp: StartUdp) -> None:
    _, port = await serve_udp(lambda data: b"?")
    result = await check_udp("127.0.0.1", port, 1.0, payload=b"hello")
    assert result.ok
    assert result.detail == "reply of 1 bytes"


async def test_unexpected_reply_is_down(serve_udp: StartUdp) -> None:
    _, port = await serve_udp(lambda data: b"ERR busy")
    result = await check_udp("127.0.0.1", port, 1.0, payload=b"PING", expect=b"PONG")
    assert not result.ok
    assert result.detail == "reply b'ERR busy' does not contain b'PONG'"


async def test_silent_server_is_no_reply(serve_udp: StartUdp) -> None:
    server, port = await serve_udp(lambda data: None)
    result = await check_udp("127.0.0.1", port, 0.2, payload=b"PING")
    assert not result.ok
    assert result.detail == "no reply after 0.2s"
    assert server.received == [b"PING"]


async def test_closed_port_is_port_unreachable() -> None:
    # The kernel answers with ICMP port unreachable; the connected socket sees it.
    result = await check_udp("127.0.0.1", closed_udp_port(), 1.0, payload=b"PING")
    assert not result.ok
    assert result.detail == "port unreachable"


async def test_ipv6(serve_udp: StartUdp) -> None:
    try:
        _, port = await serve_udp(lambda data: data, host="::1")
    except OSError:
        pytest.skip("no ::1")
    result = await check_udp("::1", port, 1.0, payload=b"x", expect=b"x")
    assert result.ok, result.detail


async def test_run_probe_dispatches_a_udp_check(serve_udp: StartUdp) -> None:
    _, port = await serve_udp(lambda data: b"ok")
    timing = Timing(interval=1.0, timeout=1.0, rise=1, fall=1)
    check = UdpCheck(timing, payload=b"status", expect=b"ok", connect_port=port)
    result = await run_probe(check, Target(IPv4Address("127.0.0.1"), 9))
    assert result.ok, result.detail
