"""SMTP_CHECK: the reply grammar with literal bytes, and the dialogue against real
servers on loopback that greet, refuse, stall or hang up."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from ipaddress import IPv4Address

import pytest
from support import until

from checkers.probe import run_probe
from checkers.smtp import SmtpReplyReader, check_smtp
from checkers.spec import SmtpCheck, SpecError, Target, Timing

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]
Serve = Callable[[Handler], Awaitable[int]]


def test_reader_collects_a_multiline_reply() -> None:
    reader = SmtpReplyReader()
    assert reader.feed(b"250-mail.example.org hello\r\n250-SIZE 10240") is None
    assert reader.feed(b"000\r\n250 HELP\r\n") == (250, "mail.example.org hello SIZE 10240000 HELP")


def test_reader_accepts_a_bare_code_and_refuses_garbage() -> None:
    assert SmtpReplyReader().feed(b"220\r\n") == (220, "")
    with pytest.raises(ValueError, match=r"not an SMTP reply: 'HTTP/1\.0 400'"):
        SmtpReplyReader().feed(b"HTTP/1.0 400\r\n")
    with pytest.raises(ValueError, match="reply longer than 16 KiB"):
        SmtpReplyReader().feed(b"220-" + b"x" * 20_000)


def test_helo_name_must_be_one_word() -> None:
    with pytest.raises(SpecError, match="helo_name must be one word"):
        SmtpCheck(Timing(interval=1.0, timeout=1.0, rise=1, fall=1), helo_name="two words")


@pytest.fixture
async def serve() -> AsyncIterator[Serve]:
    servers: list[asyncio.Server] = []

    async def start(handler: Handler) -> int:
        server = await asyncio.start_server(handler, "127.0.0.1", 0)
        servers.append(server)
        return int(server.sockets[0].getsockname()[1])

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()


async def test_a_mail_server_is_up_and_hears_helo_then_quit(serve: Serve) -> None:
    heard: list[bytes] = []

    async def mail(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"220-mx.example.org ESMTP\r\n220 ready\r\n")
        heard.append(await reader.readline())
        writer.write(b"250 mx.example.org\r\n")
        heard.append(await reader.readline())
        writer.close()

    port = await serve(mail)
    spec = SmtpCheck(Timing(interval=1.0, timeout=2.0, rise=1, fall=1), helo_name="director1")
    result = await run_probe(spec, Target(IPv4Address("127.0.0.1"), port))
    assert (result.ok, result.detail) == (True, "smtp 250")
    await until(lambda: len(heard) == 2)  # the server read the QUIT
    assert heard == [b"HELO director1\r\n", b"QUIT\r\n"]


@pytest.mark.parametrize(
    ("script", "detail"),
    [
        (b"554 no service here\r\n", "greeting 554 no service here"),
        (b"220 ready\r\n|501 bad HELO\r\n", "HELO answered 501 bad HELO"),
        (b"", "greeting: connection closed"),
        (b"220 ready\r\n|", "HELO: connection closed"),
    ],
)
async def test_a_refusing_server_is_down_with_its_words(
    serve: Serve, script: bytes, detail: str
) -> None:
    greeting, _, answer = script.partition(b"|")

    async def refuse(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(greeting)
        if b"|" in script:
            await reader.readline()
            writer.write(answer)
        await writer.drain()
        writer.close()

    port = await serve(refuse)
    result = await check_smtp("127.0.0.1", port, 2.0, helo_name="director1")
    assert (result.ok, result.detail) == (False, detail)


async def test_a_silent_server_times_out(serve: Serve) -> None:
    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await reader.read()  # never greets

    port = await serve(silent)
    result = await check_smtp("127.0.0.1", port, 0.2, helo_name="director1")
    assert (result.ok, result.detail) == (False, "greeting: timeout after 0.2s")
