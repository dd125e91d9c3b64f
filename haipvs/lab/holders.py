"""Long-lived TCP connections through a VIP, each with heartbeats, broken ones counted by
cause (the scale-out bench's and demo's client).

Each connection asks a lab real server for ``/hold`` (one line with the server's name every
second, straight back to the client with DR/TUN) and sends one heartbeat byte every
``--heartbeat`` seconds the other way, through the routers and a director, so a director
that loses the flow answers it with a RST. A connection is broken by ``rst`` (a reset:
ECONNRESET or EPIPE on a read or a heartbeat), ``eof`` (a FIN, or another socket error:
``eof_kinds`` says which, ``FIN``, ``FIN in the header`` or the errno name),
``timeout`` (no line for 10 s; 20 s for the header and first line) or
``wrong_backend`` (a line from another real server than the first); ``connect_failed``
counts connections that never opened within 30 s (not broken: the lab could not take
them), ``beats`` the heartbeats sent, ``heartbeat_ms`` the mean interval they really
kept (a starved client sends them late; a heartbeat the full send buffer refused is not
counted), ``quiet`` the connections that went 3 s without a line and recovered,
``longest_gap_ms`` the longest such gap. A silence while this client's own loop was
stalled (a turn more than 1 s late) is not counted: on a starved CPU the client, not the
connection, stopped reading.

The connections are opened over ``--ramp`` seconds, from the ``--source`` addresses in
turn (the kernel picks each source port), so the routers' L4 ECMP hash sees many
distinct flows. Once every connection was attempted, ``--out``.ramped is written; the
connections are held until ``--duration`` passes, every connection ended, or SIGTERM
(``--out``.progress holds the summary so far, rewritten every second), then one JSON
summary goes to ``--out``: counts by cause, the first backend of each connection, the
monotonic time of every break (so a caller can tell which event broke what), and each
broken connection's flow and backend (``broken_flows``: a caller can ask every director's
IPVS where it sends that flow; a RST from a real server never reaches a director, so a
misrouting director still holds its entry).

The lab guest has one emulated CPU where every system call is a trap, so the client is
one ``selectors`` loop over non-blocking sockets: the heartbeats come due from a timer
wheel of 10 ms slots (no task, timer or future per heartbeat; ``--heartbeat`` is taken in
10 ms steps) and each turn's go to the kernel in one io_uring submission
(haipvs.lab.uring; one ``send`` each where io_uring is not allowed), a line is one
``recv``.
SIGTERM during the ramp ends it: the connections not attempted yet are in no cause.
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import resource
import selectors
import signal
import socket
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType

from haipvs.lab.uring import SendRing

__all__ = ["Connection", "HoldResult", "Holders", "Wheel", "main"]

# A connection silent this long is dead (a black hole the routers never healed): TCP
# itself backs off its retransmissions after a loss of a few hundred ms, so a live
# connection can go quiet for 2 or 3 s and recover. Shorter silences are counted apart.
SILENCE = 10.0
QUIET = 3.0
STALL = 1.0  # a loop turn this late means the client, not the network, stopped
CONNECT_TIMEOUT = 30.0
SLOT = 0.01  # the heartbeat wheel's granularity
IP_BIND_ADDRESS_NO_PORT = getattr(socket, "IP_BIND_ADDRESS_NO_PORT", 24)  # linux/in.h
EPSILON = 1e-6  # of a slot: a time on a slot's start is in that slot despite float rounding
REQUEST = b"GET /hold HTTP/1.1\r\nHost: vip\r\n\r\n"
HEARTBEAT = b"h"


@dataclass
class HoldResult:
    causes: Counter[str] = field(default_factory=Counter)
    backends: Counter[str] = field(default_factory=Counter)
    breaks: list[tuple[float, str]] = field(default_factory=list)
    # (monotonic time, cause, the client's address:port, the backend of its first line)
    broken_flows: list[tuple[float, str, str, str | None]] = field(default_factory=list)

    last_stall: float = float("-inf")  # monotonic time the loop last ran late

    def stalled_within(self, seconds: float) -> bool:
        return time.monotonic() - self.last_stall < seconds

    opened: int = 0
    eof_kinds: Counter[str] = field(default_factory=Counter)  # what each `eof` was
    quiet: int = 0  # connections that once went QUIET seconds without a line and recovered
    longest_gap: float = 0.0  # seconds, the longest silence a connection recovered from
    beats: int = 0  # heartbeats sent
    # Summed over every connection: from its opening (or previous heartbeat) to each
    # heartbeat it sent, so beat_seconds / beats is the interval really kept.
    beat_seconds: float = 0.0
    # How many heartbeats went after each interval, in 10 ms steps: the mean hides a
    # fixed-rate schedule's short and long intervals, the percentiles do not.
    beat_gaps: Counter[int] = field(default_factory=Counter)
    locals: list[str] = field(default_factory=list)  # each opened connection's address:port

    def broke(self, cause: str) -> None:
        self.causes[cause] += 1
        if cause not in ("ok", "connect_failed"):
            self.breaks.append((time.monotonic(), cause))

    def gap_percentile(self, fraction: float) -> int | None:
        """The heartbeat interval (ms, to the 10 ms step above) that ``fraction`` of the
        heartbeats went within."""
        if not self.beats:
            return None
        wanted = fraction * sum(self.beat_gaps.values())
        seen = 0
        for step in sorted(self.beat_gaps):
            seen += self.beat_gaps[step]
            if seen >= wanted:
                return (step + 1) * 10
        return None

    def summary(self, count: int, *, final: bool = False) -> dict[str, object]:
        """``broken`` counts connections that opened and then broke; one that never
        opened (``connect_failed``: the lab could not take it) is counted apart."""
        broken = sum(n for cause, n in self.causes.items()
                     if cause not in ("ok", "connect_failed"))
        interval = self.beat_seconds / self.beats * 1000 if self.beats else None
        return {"connections": count, "opened": self.opened, "broken": broken,
                "causes": dict(self.causes), "backends": dict(self.backends),
                "breaks": self.breaks, "broken_flows": self.broken_flows,
                "beats": self.beats, "heartbeat_ms": interval,
                "heartbeat_p5_ms": self.gap_percentile(0.05),
                "heartbeat_p95_ms": self.gap_percentile(0.95),
                "quiet": self.quiet,
                "longest_gap_ms": round(self.longest_gap * 1000),
                "eof_kinds": dict(self.eof_kinds),
                # every connection's address:port, in the last summary only (a caller
                # can tell whether a later population reused a flow)
                **({"locals": self.locals} if final else {})}


@dataclass(slots=True, eq=False)
class Connection:
    sock: socket.socket
    started: float  # when the connect was issued (CONNECT_TIMEOUT counts from here)
    open: bool = False  # the handshake completed
    header_done: bool = False
    ended: bool = False
    buffer: bytes = b""
    first: str | None = None  # the backend the first line named
    local: str = ""  # the client's address:port, once connected
    last_line: float = 0.0  # when the last line (or the opening) was read
    last_beat: float = 0.0  # when the last heartbeat (or the opening) was sent
    was_quiet: bool = False
    slot: int = 0  # the heartbeat wheel's slot this connection is due in


class Wheel:
    """Connections by the slot (``slot`` seconds wide) their next heartbeat is due in.

    ``add`` puts a new connection in the first slot that starts a period or more after
    ``now``: no first heartbeat goes early. ``due`` hands out every slot that started by
    ``now``, each once, however late the loop came (a connection that ended meanwhile is
    the caller's to skip). ``again`` puts a connection just handed out ``period`` slots
    after the one it was due in: the schedule is fixed-rate, so a loop that wakes late
    does not add its delay to every later interval (a fixed-delay schedule kept 200 ms
    heartbeats at 240-280 ms in the guest, whose wake-ups come tens of ms late while its
    CPU is not full). Two limits keep every interval near the period: the next heartbeat
    never goes less than half a period after the late one, and after a stall longer than
    a period the missed heartbeats are skipped, not sent in a burst: the cadence resumes
    in its own phase.
    """

    def __init__(self, now: float, period: float, slot: float = SLOT) -> None:
        self.slot = slot
        self.period = max(1, round(period / slot))  # in slots
        self.slots: dict[int, list[Connection]] = {}
        self.next = math.floor(now / slot + EPSILON)  # the first slot not handed out yet

    def _put(self, connection: Connection, key: int) -> None:
        connection.slot = key
        bucket = self.slots.get(key)
        if bucket is None:
            self.slots[key] = [connection]
        else:
            bucket.append(connection)

    def add(self, connection: Connection, now: float) -> None:
        self._put(connection, max(math.ceil(now / self.slot - EPSILON) + self.period,
                                  self.next))

    def again(self, connection: Connection) -> None:
        # self.next is the slot after this turn's: the heartbeat just sent went at the
        # latest when this turn's slot started, so the next one goes half a period (less
        # one slot) after it at the earliest; a stall of more than a period skips whole
        # periods, keeping the phase.
        key = connection.slot + self.period
        earliest = self.next + self.period // 2 - 1
        if key < earliest:
            key += -(-(earliest - key) // self.period) * self.period
        self._put(connection, key)

    def due(self, now: float) -> list[Connection]:
        last = math.floor(now / self.slot + EPSILON)
        found: list[Connection] = []
        if last < self.next:
            return found
        if last - self.next < len(self.slots):
            for key in range(self.next, last + 1):
                bucket = self.slots.pop(key, None)
                if bucket is not None:
                    found += bucket
        else:  # a long stall: fewer slots are filled than passed
            for key in sorted(k for k in self.slots if k <= last):
                found += self.slots.pop(key)
        self.next = last + 1
        return found

    def next_at(self) -> float | None:
        """When the earliest filled slot starts (None: nothing is scheduled)."""
        return min(self.slots) * self.slot if self.slots else None


def _errno_name(error: OSError) -> str:
    code = error.errno
    return errno.errorcode.get(code, str(code)) if code is not None else type(error).__name__


class Holders:
    """``count`` connections to ``address`` held with one selector loop."""

    def __init__(self, address: tuple[str, int], family: socket.AddressFamily,
                 sources: Sequence[str], *, count: int, heartbeat: float, ramp: float,
                 result: HoldResult, use_ring: bool = True) -> None:
        self.address = address
        self.family = family
        self.sources = sources
        self.count = count
        self.heartbeat = heartbeat
        self.ramp = ramp
        self.result = result
        self.selector = selectors.DefaultSelector()
        self.live: set[Connection] = set()
        self.attempted = 0
        self.stopping = False
        self.start = time.monotonic()
        self.wheel = Wheel(self.start, heartbeat)
        # io_uring: a turn's heartbeats in one system call (None: one send each)
        # each queued send carries its connection and when the turn sent it
        self.ring = SendRing[tuple[Connection, float]].open(HEARTBEAT) if use_ring else None

    # -- connections ---------------------------------------------------------------------

    def connect(self, now: float) -> None:
        source = self.sources[self.attempted % len(self.sources)] if self.sources else None
        self.attempted += 1
        try:
            sock = socket.socket(self.family, socket.SOCK_STREAM)
        except OSError:
            self.result.broke("connect_failed")
            return
        sock.setblocking(False)
        # as asyncio's transports do: a heartbeat goes out at once, not after Nagle's wait
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if source:
            # The port is chosen by connect(), as for any client that does not bind (a
            # bind() alone picks one for the address, blind to the destination). Cases
            # still reuse earlier cases' flows now and then (the walk names them in
            # `reused_flows`); a reused flow is harmless unless a real server still
            # holds its predecessor (scaleout_walk drops those after each case).
            sock.setsockopt(socket.IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, 1)
        try:
            if source:
                sock.bind((source, 0))
            code = sock.connect_ex(self.address)
        except OSError:
            code = -1
        if code not in (0, errno.EINPROGRESS):
            sock.close()
            self.result.broke("connect_failed")
            return
        connection = Connection(sock, started=now)
        self.live.add(connection)
        self.selector.register(sock, selectors.EVENT_WRITE, connection)

    def connected(self, connection: Connection, now: float) -> None:
        code = connection.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if code:
            self.end(connection, "connect_failed")
            return
        connection.open = True
        self.result.opened += 1
        try:
            host, port = connection.sock.getsockname()[:2]
            connection.local = f"{host}:{port}"
            self.result.locals.append(connection.local)
        except OSError:
            pass
        connection.last_line = connection.last_beat = now
        self.selector.modify(connection.sock, selectors.EVENT_READ, connection)
        try:
            sent = connection.sock.send(REQUEST)
        except OSError as error:
            self.failed(connection, error)
            return
        if sent != len(REQUEST):  # a fresh socket's send buffer holds it: never seen
            self.end(connection, "eof", "request not sent whole")
            return
        self.wheel.add(connection, now)

    def end(self, connection: Connection, cause: str, kind: str | None = None) -> None:
        connection.ended = True
        self.live.discard(connection)
        self.selector.unregister(connection.sock)
        connection.sock.close()
        if kind is not None:
            self.result.eof_kinds[kind] += 1
        self.result.broke(cause)
        if connection.open and cause not in ("ok", "connect_failed"):
            self.result.broken_flows.append(
                (time.monotonic(), cause, connection.local, connection.first))

    def failed(self, connection: Connection, error: OSError) -> None:
        if isinstance(error, (ConnectionResetError, BrokenPipeError)):
            self.end(connection, "rst")
        else:
            self.end(connection, "eof", _errno_name(error))

    # -- traffic -------------------------------------------------------------------------

    def beat(self, connection: Connection, now: float) -> None:
        try:
            sent = connection.sock.send(HEARTBEAT)
        except BlockingIOError:
            sent = 0  # the send buffer is full: this heartbeat is not sent, nor counted
        except OSError as error:
            self.failed(connection, error)
            return
        if sent:
            self.count_beat(connection, now)
        self.wheel.again(connection)

    def count_beat(self, connection: Connection, now: float) -> None:
        self.result.beats += 1
        self.result.beat_seconds += now - connection.last_beat
        self.result.beat_gaps[int((now - connection.last_beat) * 100)] += 1
        connection.last_beat = now

    def beat_all(self, due: Sequence[Connection], now: float) -> None:
        """The turn's heartbeats through the ring: queued, submitted in one call (a
        full ring is submitted and refilled), then every finished send counted as
        ``beat`` counts one; the schedule moves on at once, as after a plain send."""
        ring = self.ring
        assert ring is not None
        for connection in due:
            if connection.ended:
                continue
            while not ring.queue(connection.sock.fileno(), (connection, now)):
                ring.submit()
                self.finish_sends()
            self.wheel.again(connection)
        ring.submit()
        self.finish_sends()

    def finish_sends(self) -> None:
        assert self.ring is not None
        for (connection, at), sent in self.ring.reap():
            if connection.ended:
                continue
            if sent > 0:
                self.count_beat(connection, at)
            elif sent != -errno.EAGAIN:  # a full send buffer: not sent, nor counted
                self.failed(connection, OSError(-sent, os.strerror(-sent)))

    def read(self, connection: Connection, now: float) -> None:
        try:
            data = connection.sock.recv(4096)
        except BlockingIOError:
            return
        except OSError as error:
            self.failed(connection, error)
            return
        if not data:
            self.end(connection, "eof", "FIN" if connection.header_done else "FIN in the header")
            return
        buffer = connection.buffer + data
        if not connection.header_done:
            _, separator, rest = buffer.partition(b"\r\n\r\n")
            if not separator:
                connection.buffer = buffer
                return
            connection.header_done = True
            buffer = rest
        while not connection.ended:
            line, newline, rest = buffer.partition(b"\n")
            if not newline:
                break
            buffer = rest
            self.line(connection, line, now)
        connection.buffer = buffer

    def line(self, connection: Connection, line: bytes, now: float) -> None:
        result = self.result
        previous, connection.last_line = connection.last_line, now
        gap = now - previous
        # a gap the loop stalled in (or just before) is the client's own
        if connection.first is not None and result.last_stall < previous - 0.5:
            result.longest_gap = max(result.longest_gap, gap)
            if gap >= QUIET and not connection.was_quiet:
                connection.was_quiet = True
                result.quiet += 1
        name = line.decode(errors="replace").strip()
        if connection.first is None:
            connection.first = name
            result.backends[name] += 1
        elif name != connection.first:
            self.end(connection, "wrong_backend")

    def check_silence(self, now: float) -> None:
        """Once a second: connections that never opened, and silent ones. The silence
        that counts starts at the later of the last line and the loop's last stall; the
        header and the first line get twice as long."""
        for connection in list(self.live):
            if not connection.open:
                if now - connection.started > CONNECT_TIMEOUT:
                    self.end(connection, "connect_failed")
                continue
            limit = SILENCE if connection.first is not None else 2 * SILENCE
            if now - max(connection.last_line, self.result.last_stall) > limit:
                self.end(connection, "timeout")

    # -- the loop ------------------------------------------------------------------------

    def next_connect_at(self) -> float | None:
        if self.attempted >= self.count:
            return None
        return self.start + self.attempted * self.ramp / self.count

    def turn(self, timeout: float) -> float:
        """Wait up to ``timeout`` seconds, then read, complete connects, send what is due
        and open the connections the ramp has reached; returns when the wait ended. One
        clock read serves the whole turn (each is a system call in the lab guest)."""
        events = self.selector.select(timeout)
        now = time.monotonic()
        for key, _ in events:
            connection: Connection = key.data
            if connection.ended:
                continue
            if connection.open:
                self.read(connection, now)
            else:
                self.connected(connection, now)
        if self.ring is not None:
            self.beat_all(self.wheel.due(now), now)
        else:
            for connection in self.wheel.due(now):
                if not connection.ended:
                    self.beat(connection, now)
        while (at := self.next_connect_at()) is not None and at <= now:
            self.connect(now)
        return now

    def run(self, until: float, ramped: Path, progress: Path) -> dict[str, object]:
        now = time.monotonic()
        next_second = now + 1.0
        wrote_ramped = False
        while not self.stopping:
            if now >= until or (self.attempted >= self.count and not self.live):
                break
            wake = min(t for t in (self.wheel.next_at(), self.next_connect_at(),
                                   next_second, until) if t is not None)
            planned = max(wake, now)
            woke = self.turn(planned - now)
            finished = time.monotonic()
            # A turn that ended more than STALL after it was due (a late wake, or a long
            # turn) means this process was starved: its silences are its own.
            if finished - min(planned, woke) > STALL:
                self.result.last_stall = finished
            if not wrote_ramped and self.attempted >= self.count:
                # A marker for the caller: every connection was attempted.
                ramped.write_text(f"{self.count}\n")
                wrote_ramped = True
            if finished >= next_second:
                self.check_silence(finished)
                # What the connections saw so far, for a caller that reports as it goes.
                _write_atomically(progress, self.result.summary(self.count))
                next_second = finished + 1.0
            now = finished
        for connection in list(self.live):
            self.end(connection, "ok" if connection.open else "connect_failed")
        self.selector.close()
        if self.ring is not None:
            self.ring.close()
        return self.result.summary(self.count, final=True)


def _write_atomically(path: Path, summary: dict[str, object]) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(summary))
    os.replace(temporary, path)


def _raise_file_limit(count: int) -> None:
    """Each connection is a file descriptor: allow them up to the hard limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    wanted = count + 64
    if soft != resource.RLIM_INFINITY and soft < wanted:
        limit = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, limit), hard))


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--vip", required=True)
    parser.add_argument("--port", type=int, default=80)
    parser.add_argument("--source", action="append", default=[],
                        help="a local address to open connections from (repeat; in turn)")
    parser.add_argument("--count", type=int, default=300)
    parser.add_argument("--heartbeat", type=float, default=0.2)
    parser.add_argument("--duration", type=float, default=3600.0)
    parser.add_argument("--ramp", type=float, default=3.0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    _raise_file_limit(args.count)
    family, _, _, _, address = socket.getaddrinfo(args.vip, args.port,
                                                   type=socket.SOCK_STREAM)[0]
    holders = Holders((str(address[0]), int(address[1])), family, args.source,
                      count=args.count, heartbeat=args.heartbeat, ramp=args.ramp,
                      result=HoldResult())

    def stop(signum: int, frame: FrameType | None) -> None:
        holders.stopping = True

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, stop)
    result = holders.run(time.monotonic() + args.duration,
                         ramped=Path(args.out + ".ramped"),
                         progress=Path(args.out + ".progress"))
    _write_atomically(Path(args.out), result)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
