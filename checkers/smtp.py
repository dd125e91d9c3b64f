"""SMTP probe: keepalived's SMTP_CHECK (banner, HELO, QUIT).

keepalived's SMTP checker connects, waits for the server's greeting, says ``HELO
<helo_name>`` and calls the server up when both replies are positive; it then says
``QUIT`` and closes. This probe does exactly that dialogue (RFC 5321 §4.1.1.1, §4.2):

- the greeting must be a 220 reply and the HELO answer a 250 reply, each whole (a
  multi-line reply ends with the line whose code is followed by a space, RFC 5321
  §4.2.1) and within the check's timeout; anything else is down, with the server's
  own words in the detail ("greeting 554 no service", "HELO answered 501 ...");
- QUIT is sent and the connection closed without waiting for the 221: the verdict is
  already known, and a server slow to say goodbye must not turn it into a timeout.

The reply grammar is a pure reader fed with bytes; the socket work reuses the TCP
probe's connection (one epoll set per loop, deadline, SO_LINGER reset on close).
"""

from __future__ import annotations

from checkers.result import ProbeResult
from checkers.spec import SmtpCheck, Target, probe_port
from checkers.tcp import (
    TIMED_OUT,
    ConnectError,
    ProbeConnection,
    describe_timeout,
    running_loop,
)

__all__ = ["SmtpReplyReader", "check_smtp", "probe"]

_RECV_SIZE = 4096
# RFC 5321 §4.5.3.1.5: a reply line is at most 512 octets; a server sending far more
# before ending its reply is not a mail server worth waiting for.
_MAX_REPLY = 16 * 1024


class SmtpReplyReader:
    """Collects one reply at a time: ``feed`` returns (code, text) once the reply's last
    line arrived, None while it is incomplete; raises ValueError on a malformed line."""

    def __init__(self) -> None:
        self._buffer = b""
        self._texts: list[str] = []

    def feed(self, data: bytes) -> tuple[int, str] | None:
        self._buffer += data
        if len(self._buffer) > _MAX_REPLY:
            raise ValueError("reply longer than 16 KiB")
        while b"\n" in self._buffer:
            raw, self._buffer = self._buffer.split(b"\n", 1)
            line = raw.rstrip(b"\r").decode("ascii", "replace")
            if len(line) < 3 or not line[:3].isdigit() or (len(line) > 3 and line[3] not in " -"):
                raise ValueError(f"not an SMTP reply: {line[:40]!r}")
            self._texts.append(line[4:])
            if len(line) == 3 or line[3] == " ":
                text = " ".join(t for t in self._texts if t)
                self._texts = []
                return int(line[:3]), text
        return None


async def _send(connection: ProbeConnection, data: bytes) -> str | None:
    view = memoryview(data)
    while view:
        try:
            view = view[connection.sock.send(view) :]
        except BlockingIOError:
            if await connection.wait() == TIMED_OUT:
                return "timeout"
        except OSError as exc:
            return f"send failed: {exc.strerror or exc}".lower()
    return None


async def _reply(connection: ProbeConnection, reader: SmtpReplyReader) -> tuple[int, str] | str:
    """The next whole reply, or a failure detail."""
    while True:
        if not await connection.wait_readable():
            return "timeout"
        while True:
            try:
                data = connection.sock.recv(_RECV_SIZE)
            except (BlockingIOError, InterruptedError):
                break
            except ConnectionResetError:
                return "connection reset"
            except OSError as exc:
                return f"receive failed: {exc.strerror or exc}".lower()
            if not data:
                return "connection closed"
            try:
                reply = reader.feed(data)
            except ValueError as exc:
                return str(exc)
            if reply is not None:
                return reply


async def check_smtp(
    address: str,
    port: int,
    timeout: float,  # noqa: ASYNC109 - the probe enforces its own deadline (see header)
    *,
    helo_name: str,
) -> ProbeResult:
    """Up when the server greets with 220 and answers ``HELO helo_name`` with 250."""
    loop = running_loop()
    started = loop.time()
    try:
        connection = await ProbeConnection.open(
            address, port, loop=loop, started=started, timeout=timeout
        )
    except ConnectError as exc:
        return ProbeResult(ok=False, detail=exc.detail, latency=loop.time() - started)
    try:
        reader = SmtpReplyReader()
        ok, detail = await _dialogue(connection, reader, helo_name)
        if detail.endswith(": timeout"):
            detail += f" after {describe_timeout(timeout)}"
        return ProbeResult(ok=ok, detail=detail, latency=loop.time() - started)
    finally:
        connection.close()


async def _dialogue(
    connection: ProbeConnection, reader: SmtpReplyReader, helo_name: str
) -> tuple[bool, str]:
    greeting = await _reply(connection, reader)
    if isinstance(greeting, str):
        return False, f"greeting: {greeting}"
    if greeting[0] != 220:
        return False, f"greeting {greeting[0]} {greeting[1]}".rstrip()
    failed = await _send(connection, f"HELO {helo_name}\r\n".encode())
    if failed is not None:
        return False, f"HELO: {failed}"
    answer = await _reply(connection, reader)
    if isinstance(answer, str):
        return False, f"HELO: {answer}"
    if answer[0] != 250:
        return False, f"HELO answered {answer[0]} {answer[1]}".rstrip()
    await _send(connection, b"QUIT\r\n")
    return True, "smtp 250"


async def probe(spec: SmtpCheck, target: Target) -> ProbeResult:
    """The SMTP_CHECK of ``spec`` against ``target`` (run_probe's entry point)."""
    return await check_smtp(
        str(target.address),
        probe_port(spec, target),
        spec.timing.timeout,
        helo_name=spec.helo_name,
    )
