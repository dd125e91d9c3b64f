"""DNS probe against a tiny DNS server on loopback (dnspython builds its answers)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from ipaddress import IPv4Address
from typing import cast

import dns.message
import dns.rcode
import dns.rrset
import pytest

from checkers.dns import check_dns
from checkers.probe import run_probe
from checkers.spec import DnsCheck, Target, Timing

# Given the query, return the datagrams to send back, in order.
Behaviour = Callable[[dns.message.Message], list[bytes]]


class TinyDns(asyncio.DatagramProtocol):
    def __init__(self, behaviour: Behaviour) -> None:
        self.behaviour = behaviour
        self.queries: list[dns.message.Message] = []
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        query = dns.message.from_wire(data)
        self.queries.append(query)
        assert self.transport is not None
        for datagram in self.behaviour(query):
            self.transport.sendto(datagram, addr)


def answer(*addresses: str, rcode: dns.rcode.Rcode = dns.rcode.NOERROR) -> Behaviour:
    def behaviour(query: dns.message.Message) -> list[bytes]:
        response = dns.message.make_response(query)
        response.set_rcode(rcode)
        if addresses:
            name = query.question[0].name
            response.answer.append(dns.rrset.from_text(name, 60, "IN", "A", *addresses))
        return [response.to_wire()]

    return behaviour


StartDns = Callable[[Behaviour], Awaitable[tuple[TinyDns, int]]]


@pytest.fixture
async def serve_dns() -> AsyncIterator[StartDns]:
    transports: list[asyncio.DatagramTransport] = []

    async def start(behaviour: Behaviour) -> tuple[TinyDns, int]:
        loop = asyncio.get_running_loop()
        transport, protocol = await loop.create_datagram_endpoint(
            lambda: TinyDns(behaviour), local_addr=("127.0.0.1", 0)
        )
        transports.append(transport)
        return protocol, transport.get_extra_info("sockname")[1]

    yield start
    for transport in transports:
        transport.close()


async def test_noerror_is_up_and_query_is_what_was_asked(serve_dns: StartDns) -> None:
    server, port = await serve_dns(answer("192.0.2.1"))
    result = await check_dns("127.0.0.1", port, 1.0, query_name="www.example", query_type="A")
    assert result.ok, result.detail
    assert result.detail == "rcode NOERROR"
    question = server.queries[0].question[0]
    assert (question.name.to_text(), question.rdtype) == ("www.example.", 1)


async def test_servfail_is_down(serve_dns: StartDns) -> None:
    _, port = await serve_dns(answer(rcode=dns.rcode.SERVFAIL))
    result = await check_dns("127.0.0.1", port, 1.0, query_name="www.example")
    assert not result.ok
    assert result.detail == "rcode SERVFAIL"


async def test_expected_nxdomain(serve_dns: StartDns) -> None:
    _, port = await serve_dns(answer(rcode=dns.rcode.NXDOMAIN))
    nx = await check_dns("127.0.0.1", port, 1.0, query_name="gone.example", expect_rcode="NXDOMAIN")
    assert nx.ok
    _, port_ok = await serve_dns(answer("192.0.2.1"))
    found = await check_dns(
        "127.0.0.1", port_ok, 1.0, query_name="gone.example", expect_rcode="NXDOMAIN"
    )
    assert found.detail == "rcode NOERROR, expected NXDOMAIN"


async def test_expected_answer(serve_dns: StartDns) -> None:
    _, port = await serve_dns(answer("192.0.2.1", "192.0.2.2"))
    good = await check_dns(
        "127.0.0.1", port, 1.0, query_name="www.example", expect_answer="192.0.2.2"
    )
    bad = await check_dns(
        "127.0.0.1", port, 1.0, query_name="www.example", expect_answer="192.0.2.9"
    )
    assert good.ok, good.detail
    assert not bad.ok
    assert bad.detail == "answer 192.0.2.1,192.0.2.2 does not include 192.0.2.9"


async def test_empty_answer_when_one_is_expected(serve_dns: StartDns) -> None:
    _, port = await serve_dns(answer())
    result = await check_dns(
        "127.0.0.1", port, 1.0, query_name="www.example", expect_answer="192.0.2.1"
    )
    assert result.detail == "no A answer for www.example"


async def test_replies_to_other_queries_and_garbage_are_dropped(serve_dns: StartDns) -> None:
    def noisy(query: dns.message.Message) -> list[bytes]:
        stale = dns.message.make_response(query)
        stale.id = (query.id + 1) % 65536
        stale.set_rcode(dns.rcode.SERVFAIL)
        return [b"\x00garbage", stale.to_wire(), *answer("192.0.2.1")(query)]

    _, port = await serve_dns(noisy)
    result = await check_dns("127.0.0.1", port, 1.0, query_name="www.example")
    assert result.ok, result.detail


async def test_only_garbage_then_silence_names_the_garbage(serve_dns: StartDns) -> None:
    _, port = await serve_dns(lambda query: [b"\x01\x02\x03"])
    result = await check_dns("127.0.0.1", port, 0.2, query_name="www.example")
    assert not result.ok
    assert result.detail.startswith("malformed reply")


async def test_silent_server(serve_dns: StartDns) -> None:
    _, port = await serve_dns(lambda query: [])
    result = await check_dns("127.0.0.1", port, 0.2, query_name="www.example")
    assert result.detail == "no reply after 0.2s"


async def test_closed_port() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    result = await check_dns("127.0.0.1", port, 1.0, query_name="www.example")
    assert result.detail == "port unreachable"


async def test_run_probe_dispatches_a_dns_check(serve_dns: StartDns) -> None:
    _, port = await serve_dns(answer("192.0.2.1"))
    timing = Timing(interval=1.0, timeout=1.0, rise=1, fall=1)
    check = DnsCheck(timing, "www.example", expect_answer="192.0.2.1", connect_port=port)
    result = await run_probe(check, Target(IPv4Address("127.0.0.1"), 53))
    assert result.ok, result.detail
