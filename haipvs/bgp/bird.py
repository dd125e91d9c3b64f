"""BIRD 2's control socket (the protocol `birdc` speaks), and the speaker port over it.

haipvs owns no BGP code: in scale-out mode each VIP is one ``protocol static`` in BIRD's
config (see ``snippet.py``), created disabled, and announcing a VIP is ``enable`` of that
protocol, withdrawing it ``disable`` (anycast-healthchecker and vc5 do the same). BIRD's
BGP sessions then export or withdraw the route, and BFD (RFC 5880) makes the routers
notice a dead director in a few hundred milliseconds.

The control protocol (BIRD's doc/reply_codes): a command is one line; the reply is one or
more lines, each ``CODE-text`` (more follows), `` text`` (continues the previous code) or
``CODE text`` (the last line). Codes 0xxx report actions, 1xxx/2xxx carry tables, 8xxx are
runtime errors, 9xxx parse errors. The parser below is pure and fed with bytes, so the
reply grammar is tested with literal replies; the client is a thin asyncio adapter.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

__all__ = [
    "BirdControl",
    "BirdError",
    "BirdReply",
    "ReplyParser",
    "RouteSpeaker",
    "SpeakerError",
]

# The codes haipvs acts on (BIRD doc/reply_codes).
WELCOME = 1
DISABLED = 9
ALREADY_DISABLED = 8
ENABLED = 11
ALREADY_ENABLED = 10
PROTOCOL_LIST = 1002
PROTOCOL_LIST_HEADER = 2002
MAX_REPLY_BYTES = 1 << 20


class SpeakerError(Exception):
    """The route speaker could not do what was asked: ``op`` names it, ``code`` is
    BIRD's reply code (or an errno for a socket failure), ``text`` its words."""

    def __init__(self, op: str, code: int, text: str) -> None:
        self.op = op
        self.code = code
        self.text = text
        super().__init__(f"{op}: {code} {text}".rstrip())


class BirdError(SpeakerError):
    """BIRD answered with a runtime (8xxx) or parse (9xxx) error."""


@dataclass(frozen=True, slots=True)
class BirdReply:
    """One whole reply: ``code`` of its last line, and every line as (code, text)."""

    code: int
    lines: tuple[tuple[int, str], ...] = field(default=())

    @property
    def failed(self) -> bool:
        return self.code >= 8000

    @property
    def text(self) -> str:
        return "; ".join(text for _, text in self.lines if text)


class ReplyParser:
    """Incremental: ``feed(bytes)`` returns the finished replies, keeps the rest."""

    def __init__(self) -> None:
        self._buffer = b""
        self._lines: list[tuple[int, str]] = []

    def feed(self, data: bytes) -> list[BirdReply]:
        self._buffer += data
        if len(self._buffer) > MAX_REPLY_BYTES:
            raise SpeakerError("read reply", errno.EMSGSIZE, "reply longer than 1 MiB")
        replies: list[BirdReply] = []
        while b"\n" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\n", 1)
            line = raw.decode("utf-8", "replace")
            if line.startswith(" "):
                # Continues the previous line's code.
                code = self._lines[-1][0] if self._lines else 0
                self._lines.append((code, line[1:]))
                continue
            if len(line) < 5 or not line[:4].isdigit() or line[4] not in "- ":
                raise SpeakerError("read reply", errno.EPROTO, f"unexpected line {line!r}")
            code = int(line[:4])
            self._lines.append((code, line[5:]))
            if line[4] == " ":
                replies.append(BirdReply(code, tuple(self._lines)))
                self._lines = []
        return replies


class RouteSpeaker(Protocol):
    """What the scale-out mode needs from the BGP speaker: per VIP, announce or withdraw
    (idempotent; the return value says whether anything changed), and the state of the
    speaker's protocols (BGP sessions, BFD) for ``/status``."""

    async def announce(self, protocol: str) -> bool: ...

    async def withdraw(self, protocol: str) -> bool: ...

    async def protocol_states(self) -> Mapping[str, str]: ...

    async def configure(self) -> None:
        """Re-read the config file. Measured on BIRD 2.0.12: a protocol the file says
        ``disabled`` is disabled again, even if enabled since, so the caller re-announces."""
        ...

    async def close(self) -> None: ...


class BirdControl:
    """A connection to BIRD's control socket (``bird -s PATH``); one command at a time.

    A lost connection is reopened on the next command; every failure surfaces as a
    ``SpeakerError`` (``BirdError`` when BIRD itself refused), never as a bare OSError.
    """

    def __init__(self, path: str, *, timeout: float = 2.0) -> None:
        self._path = path
        self._timeout = timeout
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._parser = ReplyParser()
        self._lock = asyncio.Lock()

    async def _connect(self) -> None:
        try:
            self._reader, self._writer = await asyncio.open_unix_connection(self._path)
        except OSError as exc:
            raise SpeakerError(
                f"connect {self._path}", exc.errno or errno.EIO, exc.strerror or str(exc)
            ) from exc
        self._parser = ReplyParser()
        welcome = await self._read_reply("connect")
        if welcome.code != WELCOME:
            await self._drop()
            raise SpeakerError("connect", welcome.code, f"not a BIRD welcome: {welcome.text}")

    async def _read_reply(self, op: str) -> BirdReply:
        assert self._reader is not None
        while True:
            data = await self._reader.read(65536)
            if not data:
                await self._drop()
                raise SpeakerError(op, errno.ECONNRESET, "BIRD closed the control socket")
            replies = self._parser.feed(data)
            if replies:
                return replies[0]

    async def _drop(self) -> None:
        writer, self._writer, self._reader = self._writer, None, None
        if writer is not None:
            writer.close()
            with contextlib.suppress(OSError):
                await writer.wait_closed()

    async def command(self, text: str) -> BirdReply:
        """Send one command line and return BIRD's whole reply; raise on 8xxx/9xxx."""
        if "\n" in text:
            raise ValueError(f"a BIRD command is one line: {text!r}")
        async with self._lock:
            try:
                async with asyncio.timeout(self._timeout):
                    if self._writer is None:
                        await self._connect()
                    assert self._writer is not None
                    self._writer.write(text.encode() + b"\n")
                    await self._writer.drain()
                    reply = await self._read_reply(text)
            except TimeoutError as exc:
                await self._drop()
                raise SpeakerError(text, errno.ETIMEDOUT, "BIRD did not answer") from exc
            except OSError as exc:
                await self._drop()
                # asyncio reports a peer gone mid-write as ConnectionResetError("Connection
                # lost") without an errno.
                fallback = errno.ECONNRESET if isinstance(exc, ConnectionError) else errno.EIO
                raise SpeakerError(text, exc.errno or fallback, str(exc)) from exc
        if reply.failed:
            raise BirdError(text, reply.code, reply.text)
        return reply

    async def announce(self, protocol: str) -> bool:
        reply = await self.command(f"enable {protocol}")
        return _changed(reply, ENABLED, ALREADY_ENABLED, f"enable {protocol}")

    async def withdraw(self, protocol: str) -> bool:
        reply = await self.command(f"disable {protocol}")
        return _changed(reply, DISABLED, ALREADY_DISABLED, f"disable {protocol}")

    async def protocol_states(self) -> Mapping[str, str]:
        reply = await self.command("show protocols")
        return parse_protocol_states(reply)

    async def configure(self) -> None:
        # 0003 Reconfigured, 0004 in progress, 0019 nothing to do; a file BIRD cannot
        # parse is 8002 with BIRD's FILE:LINE:COL words (raised by command()).
        await self.command("configure")

    async def close(self) -> None:
        async with self._lock:
            await self._drop()


def _changed(reply: BirdReply, changed: int, unchanged: int, op: str) -> bool:
    codes = {code for code, _ in reply.lines}
    if changed in codes:
        return True
    if unchanged in codes:
        return False
    raise BirdError(op, reply.code, f"unexpected reply: {reply.text}")


def parse_protocol_states(reply: BirdReply) -> dict[str, str]:
    """``show protocols``: name -> state (``up``, ``down``, ``start``...) and BGP's info
    column (``Established``, ``Active``...) when there is one, as ``up Established``."""
    states: dict[str, str] = {}
    for code, text in reply.lines:
        if code != PROTOCOL_LIST:
            continue
        columns = text.split()
        # Name Proto Table State Since(1 or 2 columns) Info...
        if len(columns) < 4:
            continue
        name, state = columns[0], columns[3]
        info = columns[6:] if len(columns) > 6 and ":" in columns[5] else columns[5:]
        states[name] = " ".join([state, *info[:1]]) if info else state
    return states
