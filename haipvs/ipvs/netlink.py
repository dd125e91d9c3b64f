"""NetlinkIpvsKernel: the real ``IpvsKernel`` on one generic-netlink socket.

IO adapter, kept thin: every byte is built and parsed by ``haipvs.ipvs.genl`` (pure); this
module owns the socket, sequence numbers, acks, batching and error mapping.

* One AF_NETLINK / NETLINK_GENERIC socket, non-blocking, driven by the running asyncio loop.
  The "IPVS" family id is resolved with CTRL_CMD_GETFAMILY (which also autoloads ip_vs).
* One request at a time per socket (an ``asyncio.Lock``): the kernel allows one dump in
  progress per netlink socket and answers a second with EBUSY, and
  serialising writes keeps every ack attributable.
* ``apply_many(ops)`` sends the ops in batches (``batch_size`` messages per ``send``), with
  NLM_F_ACK only on the last message of each batch: the kernel acks every failed message
  anyway (netlink_rcv_skb), so a batch of 256 successes costs one ack instead of 256 and
  failures are still attributed by sequence number. This is what makes a cold build of
  10,000 dests as fast as ``ipvsadm -R`` (notes, addendum).
* pyroute2's ``NetlinkError`` never appears here; ``OSError`` and negative acks become
  ``KernelError(op, key, errno)`` (httpcore's map_exceptions).
* ``netns="name"`` opens the socket inside ``/run/netns/name`` (setns(2) in a short-lived
  helper thread, so the event loop's thread never changes namespace); the socket keeps
  talking to that namespace's IPVS table for its whole life.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import ctypes.util
import errno as errno_mod
import os
import socket
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import TypeVar

import structlog

from haipvs.ipvs import genl
from haipvs.ipvs.errors import KernelError
from haipvs.ipvs.model import (
    ActualTable,
    AddDest,
    Dest,
    DestKey,
    DestStats,
    IpvsTable,
    IpvsTimeouts,
    Op,
    Service,
    ServiceEntry,
    ServiceKey,
    UpdateDest,
    op_name,
    op_target,
)

__all__ = ["NetlinkIpvsKernel", "ServiceCounters", "SyncState"]

SyncState = genl.SyncState

log = structlog.get_logger()

RowT = TypeVar("RowT")


@dataclass(frozen=True, slots=True)
class ServiceCounters:
    """Counters of one service and of each of its dests (``NetlinkIpvsKernel.counters``)."""

    service: genl.IpvsStats
    dests: Mapping[DestKey, genl.IpvsStats]


NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_CAP_ACK = 10  # error acks echo only the header, not our whole request
CLONE_NEWNET = 0x40000000
# Kernel dump skbs are at most 32 KiB (netlink_dump caps max_recvmsg_len); 64 KiB never
# truncates a datagram.
RECV_SIZE = 65536
# Socket buffers large enough for a whole batch of error acks (each skb costs ~1 KiB of
# rmem): a batch in which every op fails must not overflow into ENOBUFS.
SOCKET_BUFFER = 8 * 1024 * 1024
DEFAULT_BATCH = 256
# The kernel answers within the syscalls; an answer this late is lost.
REPLY_TIMEOUT = 30.0
# The kernel answers inside the syscalls, so a dump or a long apply_many would never wait on
# the loop: give the other tasks (checkers, status API) a turn every so many round trips.
YIELD_EVERY = 32
# The dump memos are cleared when they outgrow 4x the table (old weights pile up).
MEMO_MIN = 65536


class NetlinkIpvsKernel:
    """The IPVS table of one network namespace, through generic netlink.

    Use as ``async with NetlinkIpvsKernel(netns=None) as kernel: ...`` or call ``open()`` /
    ``close()``. Methods are coroutines and may be called from several tasks; requests are
    serialised on the socket.
    """

    def __init__(self, *, netns: str | None = None, batch_size: int = DEFAULT_BATCH) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be >= 1")
        self.netns = netns
        self.batch_size = batch_size
        self.family_id = 0
        self.malformed_replies = 0  # the peer's garbage, counted and dropped
        self._sock: socket.socket | None = None
        self._lock = asyncio.Lock()
        self._seq = 0
        # Decoded rows by their kernel bytes (genl.decode_*_dump): an unchanged table
        # dumps without decoding a single attribute. Seeded with what we program.
        self._dest_memo: genl.DestMemo = {}
        self._service_memo: genl.ServiceMemo = {}
        self._memo_limit = MEMO_MIN

    # ------------------------------------------------------------------ lifecycle

    async def __aenter__(self) -> NetlinkIpvsKernel:
        await self.open()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()

    async def open(self) -> None:
        """Create the socket (in ``netns`` if given) and resolve the IPVS family id."""
        if self._sock is not None:
            return
        try:
            if self.netns is None:
                sock = _make_socket()
            else:
                sock = await asyncio.to_thread(_socket_in_netns, _netns_path(self.netns))
        except OSError as exc:
            raise KernelError("open", self.netns or "", exc.errno or errno_mod.EIO) from exc
        self._sock = sock
        try:
            await self._resolve_family()
        except OSError as exc:
            self._drop_socket()
            raise KernelError("open", genl.IPVS_GENL_NAME, exc.errno or errno_mod.EIO) from exc
        except genl.MalformedReplyError as exc:
            self._drop_socket()
            raise KernelError("open", genl.IPVS_GENL_NAME, errno_mod.EPROTO, str(exc)) from exc
        except BaseException:
            self._drop_socket()
            raise
        log.info("ipvs.netlink.opened", netns=self.netns or "", family_id=self.family_id)

    async def close(self) -> None:
        self._drop_socket()

    def _drop_socket(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    async def _ensure_open(self) -> socket.socket:
        if self._sock is None:
            await self.open()
        assert self._sock is not None
        return self._sock

    # ------------------------------------------------------------------ the port

    async def apply(self, op: Op) -> None:
        """One op, one kernel request; ``KernelError`` when the kernel refuses it."""
        (error,) = await self.apply_many([op])
        if error is not None:
            raise error

    async def apply_many(self, ops: Sequence[Op]) -> list[KernelError | None]:
        """Apply ``ops`` in order, in batches; the result per op is None or its error.

        A failed op does not stop the following ones (the kernel processes every message of a
        batch); an op that depends on a failed one fails on its own (e.g. ESRCH).
        """
        results: list[KernelError | None] = [None] * len(ops)
        for start in range(0, len(ops), self.batch_size):
            if start:
                await asyncio.sleep(0)
            chunk = ops[start : start + self.batch_size]
            await self._apply_batch(chunk, results, start)
        return results

    async def dump(self) -> ActualTable:
        """Every service with its dests and their connection counters."""
        async with self._lock:
            sock = await self._ensure_open()
            try:
                services = await self._dump_services(sock)
                table: dict[ServiceKey, ServiceEntry] = {}
                stats: dict[ServiceKey, dict[DestKey, DestStats]] = {}
                dest_count = 0
                for index, service in enumerate(services):
                    if index % YIELD_EVERY == YIELD_EVERY - 1:
                        await asyncio.sleep(0)
                    dests, dest_stats = await self._dump_dests(sock, service)
                    table[service.key] = ServiceEntry(service, dests)
                    dest_count += len(dests)
                    if dest_stats:
                        stats[service.key] = dest_stats
            except OSError as exc:
                self._drop_socket()
                raise KernelError("dump", "", exc.errno or errno_mod.EIO) from exc
            except BaseException:
                # Cancelled or failed mid-dump: the kernel may still hold a running dump
                # on this socket, so start over with a fresh one.
                self._drop_socket()
                raise
            self._memo_limit = max(MEMO_MIN, 4 * dest_count, 4 * len(services))
            self._trim_memos()
        return ActualTable(IpvsTable(table), stats)

    def _trim_memos(self) -> None:
        if len(self._dest_memo) > self._memo_limit:
            self._dest_memo.clear()
        if len(self._service_memo) > self._memo_limit:
            self._service_memo.clear()

    async def set_timeouts(self, tcp: int, tcpfin: int, udp: int) -> None:
        """ipvsadm --set tcp tcpfin udp (seconds; 0 leaves that one unchanged)."""
        for value in (tcp, tcpfin, udp):
            if not 0 <= value <= 0x7FFFFFFF:
                raise ValueError(f"timeout {value} out of range")
        await self._request(
            "set_timeouts",
            "",
            genl.IpvsCmd.SET_CONFIG,
            genl.encode_timeouts(tcp, tcpfin, udp),
        )

    async def get_timeouts(self) -> IpvsTimeouts:
        """ipvsadm -L --timeout."""
        replies = await self._request("get_timeouts", "", genl.IpvsCmd.GET_CONFIG, b"")
        for cfg in self._decode_each(replies, genl.decode_config):
            return IpvsTimeouts(tcp=cfg.tcp, tcp_fin=cfg.tcp_fin, udp=cfg.udp)
        raise KernelError("get_timeouts", "", errno_mod.EPROTO, "no GET_CONFIG reply")

    # ------------------------------------------------------------------ extras

    async def flush(self) -> None:
        """ipvsadm -C: delete every service of the namespace (not used by the programmer,
        which never touches services it does not own; tests and the bench use it)."""
        await self._request("flush", "", genl.IpvsCmd.FLUSH, b"")

    async def zero(self) -> None:
        """ipvsadm -Z: zero all counters."""
        await self._request("zero", "", genl.IpvsCmd.ZERO, b"")

    async def info(self) -> genl.IpvsInfo:
        """IPVS version and connection table size (ipvsadm's header line)."""
        replies = await self._request("info", "", genl.IpvsCmd.GET_INFO, b"")
        for info in self._decode_each(replies, genl.decode_info):
            return info
        raise KernelError("info", "", errno_mod.EPROTO, "no GET_INFO reply")

    async def set_sync_daemon(
        self,
        state: genl.SyncState,
        interface: str,
        syncid: int,
        *,
        mcast_group: str | None = None,
        mcast_port: int | None = None,
        mcast_ttl: int | None = None,
        sync_maxlen: int | None = None,
    ) -> None:
        """Start the kernel's connection-sync daemon (ipvsadm --start-daemon; keepalived
        ``lvs_sync_daemon``), so a backup director knows the master's connections when it
        takes over. The kernel refuses it (EINVAL) while a mixed-family dest exists."""
        group = None
        if mcast_group is not None:
            family = socket.AF_INET6 if ":" in mcast_group else socket.AF_INET
            group = socket.inet_pton(family, mcast_group)
        attrs = genl.encode_daemon_attrs(
            state.value,
            interface=interface,
            syncid=syncid,
            sync_maxlen=sync_maxlen,
            mcast_group=group,
            mcast_port=mcast_port,
            mcast_ttl=mcast_ttl,
        )
        await self._request(
            "set_sync_daemon", f"{state.name.lower()}/{interface}", genl.IpvsCmd.NEW_DAEMON, attrs
        )

    async def stop_sync_daemon(self, state: genl.SyncState) -> None:
        """ipvsadm --stop-daemon master|backup (ESRCH when it is not running).

        The DEL_DAEMON travels with a GET_DAEMON dump behind it in the same send, as a
        fence. A daemon stopped before its kernel thread first ran makes kthread_stop()
        return -EINTR, stop_sync_thread() passes that up, and netlink_rcv_skb() sends no
        ack at all for -EINTR: waiting for the ack would hang until the reply timeout
        (measured on the lab kernel: a stop within milliseconds of the start waited 30 s,
        though the daemon was gone at once). The kernel handles the two messages in
        order, so the dump's end arriving without an ack for the stop means exactly that
        case, and the dump says whether the role is gone.
        """
        role = state.name.lower()
        async with self._lock:
            sock = await self._ensure_open()
            stop_seq = self._next_seq()
            stop = genl.encode_request(
                self.family_id,
                genl.IpvsCmd.DEL_DAEMON,
                genl.NLM_F_REQUEST | genl.NLM_F_ACK,
                stop_seq,
                genl.encode_daemon_attrs(state.value),
            )
            fence_seq = self._next_seq()
            fence = genl.encode_request(
                self.family_id, genl.IpvsCmd.GET_DAEMON, genl.NLM_F_REQUEST | genl.NLM_F_DUMP,
                fence_seq,
            )
            try:
                await self._send(sock, stop + fence)
                stop_errno: int | None = None
                running: list[genl.GenlMessage] = []
                fenced = False
                while not fenced:
                    for reply in self._parse(await self._recv(sock)):
                        if reply.seq == stop_seq and isinstance(reply, genl.Ack):
                            stop_errno = reply.errno
                        elif reply.seq == fence_seq:
                            if isinstance(reply, genl.GenlMessage):
                                running.append(reply)
                            elif isinstance(reply, genl.Done):
                                fenced = True
                            elif reply.errno:
                                raise KernelError("stop_sync_daemon", role, reply.errno)
            except OSError as exc:
                self._drop_socket()
                raise KernelError("stop_sync_daemon", role, exc.errno or errno_mod.EIO) from exc
            except asyncio.CancelledError:
                self._drop_socket()
                raise
        if stop_errno:
            raise KernelError("stop_sync_daemon", role, stop_errno)
        if stop_errno is None:
            still = [d for d in self._decode_each(running, genl.decode_daemon)
                     if d.state == state.value]
            if still:
                raise KernelError("stop_sync_daemon", role, errno_mod.EINTR)
            log.debug("ipvs.netlink.sync_daemon.stopped_unacked", role=role)

    async def sync_daemons(self) -> list[genl.DaemonInfo]:
        """The running sync daemons (GET_DAEMON is a dump: one message per state)."""
        async with self._lock:
            sock = await self._ensure_open()
            seq = self._next_seq()
            msg = genl.encode_request(
                self.family_id,
                genl.IpvsCmd.GET_DAEMON,
                genl.NLM_F_REQUEST | genl.NLM_F_DUMP,
                seq,
            )
            replies = await self._exchange(sock, msg, seq, "sync_daemons", "")
        return self._decode_each(replies, genl.decode_daemon)

    async def counters(self) -> dict[ServiceKey, ServiceCounters]:
        """Connection, packet and byte counters and rates of every service and dest
        (``ipvsadm -Ln --stats`` / ``--rate``; STATS64, so nothing wraps), for metrics.

        Slower than ``dump()`` (every counter is decoded): call it at scrape intervals,
        not from the programmer's sync.
        """
        async with self._lock:
            sock = await self._ensure_open()
            try:
                seq = self._next_seq()
                replies = await self._exchange(
                    sock, genl.encode_dump_services(self.family_id, seq), seq, "counters", ""
                )
                out: dict[ServiceKey, ServiceCounters] = {}
                for msg in replies:
                    try:
                        record = genl.decode_service(msg, with_stats=True)
                        service = genl.decode_service_value(msg)
                    except genl.MalformedReplyError as exc:
                        self._count_malformed(exc, "")
                        continue
                    key = service.key
                    seq = self._next_seq()
                    dest_replies = await self._exchange(
                        sock,
                        genl.encode_dump_dests(self.family_id, seq, key),
                        seq,
                        "counters",
                        str(key),
                    )
                    dests: dict[DestKey, genl.IpvsStats] = {}
                    for dest_msg in dest_replies:
                        try:
                            dest, _ = genl.decode_dest_value(dest_msg, key.family)
                            dest_record = genl.decode_dest(dest_msg, key.family.value, True)
                        except genl.MalformedReplyError as exc:
                            self._count_malformed(exc, str(key))
                            continue
                        dests[dest.key] = dest_record.stats or genl.IpvsStats()
                    out[key] = ServiceCounters(record.stats or genl.IpvsStats(), dests)
            except BaseException:
                self._drop_socket()
                raise
        return out

    # ------------------------------------------------------------------ internals

    def _count_malformed(self, exc: genl.MalformedReplyError, vs: str) -> None:
        self.malformed_replies += 1
        log.warning("ipvs.netlink.reply.dropped", reason="malformed", vs=vs, detail=str(exc))

    def _decode_each(
        self, replies: list[genl.GenlMessage], decode: Callable[[genl.GenlMessage], RowT]
    ) -> list[RowT]:
        out: list[RowT] = []
        for msg in replies:
            try:
                out.append(decode(msg))
            except genl.MalformedReplyError as exc:
                self._count_malformed(exc, "")
        return out

    def _next_seq(self) -> int:
        self._seq = (self._seq % 0xFFFFFFFF) + 1
        return self._seq

    async def _recv(self, sock: socket.socket) -> bytes:
        # The kernel answers inside sendmsg/recvmsg, so the data is almost always queued
        # already: try the syscall first and only wait on the loop when it would block.
        try:
            return sock.recv(RECV_SIZE)
        except BlockingIOError:
            pass
        try:
            return await asyncio.wait_for(
                asyncio.get_running_loop().sock_recv(sock, RECV_SIZE), REPLY_TIMEOUT
            )
        except TimeoutError:
            # A lost answer (a datagram dropped as malformed, an overrun) must not hang the
            # caller: the request fails, and the socket is replaced by the caller's handler.
            raise OSError(errno_mod.ETIMEDOUT, "no answer from the kernel") from None

    async def _send(self, sock: socket.socket, data: bytes) -> None:
        try:
            sock.send(data)
        except BlockingIOError:
            await asyncio.get_running_loop().sock_sendall(sock, data)

    def _parse(self, data: bytes) -> list[genl.Reply]:
        try:
            return genl.parse_messages(data)
        except genl.MalformedReplyError as exc:
            self.malformed_replies += 1
            log.warning("ipvs.netlink.reply.dropped", reason="malformed", detail=str(exc))
            return []

    async def _resolve_family(self) -> None:
        sock = self._sock
        assert sock is not None
        seq = self._next_seq()
        await self._send(sock, genl.encode_get_family(seq))
        family_id = 0
        while True:
            for reply in self._parse(await self._recv(sock)):
                if reply.seq != seq:
                    continue
                if isinstance(reply, genl.GenlMessage) and reply.msg_type == genl.GENL_ID_CTRL:
                    family_id = genl.decode_family_id(reply)
                elif isinstance(reply, genl.Ack):
                    if reply.errno:
                        # ENOENT: no IPVS in this kernel (or module not loadable).
                        raise KernelError("open", genl.IPVS_GENL_NAME, reply.errno)
                    if not family_id:
                        raise KernelError("open", genl.IPVS_GENL_NAME, errno_mod.EPROTO)
                    self.family_id = family_id
                    return

    async def _exchange(
        self, sock: socket.socket, data: bytes, seq: int, op: str, key: str
    ) -> list[genl.GenlMessage]:
        """Send one request and collect its replies up to its ack (doit) or DONE (dump)."""
        try:
            await self._send(sock, data)
            out: list[genl.GenlMessage] = []
            while True:
                for reply in self._parse(await self._recv(sock)):
                    if reply.seq != seq:
                        continue  # a stale answer to an abandoned request
                    if isinstance(reply, genl.GenlMessage):
                        if reply.msg_type == self.family_id:
                            out.append(reply)
                    elif isinstance(reply, genl.Done):
                        return out
                    elif reply.errno:
                        raise KernelError(op, key, reply.errno)
                    else:
                        return out
        except OSError as exc:
            self._drop_socket()
            raise KernelError(op, key, exc.errno or errno_mod.EIO) from exc
        except asyncio.CancelledError:
            self._drop_socket()
            raise

    async def _request(
        self, op: str, key: str, cmd: genl.IpvsCmd, attrs: bytes
    ) -> list[genl.GenlMessage]:
        async with self._lock:
            sock = await self._ensure_open()
            seq = self._next_seq()
            msg = genl.encode_request(
                self.family_id, cmd, genl.NLM_F_REQUEST | genl.NLM_F_ACK, seq, attrs
            )
            return await self._exchange(sock, msg, seq, op, key)

    async def _apply_batch(
        self, ops: Sequence[Op], results: list[KernelError | None], offset: int
    ) -> None:
        async with self._lock:
            sock = await self._ensure_open()
            family = self.family_id
            first = self._next_seq()
            seqs: dict[int, int] = {first: offset}
            parts = [genl.encode_op(family, first, ops[0], ack=len(ops) == 1)]
            last = first
            for index in range(1, len(ops)):
                last = self._next_seq()
                seqs[last] = offset + index
                parts.append(genl.encode_op(family, last, ops[index], ack=index == len(ops) - 1))
            try:
                await self._send(sock, b"".join(parts))
                done = False
                while not done:
                    for reply in self._parse(await self._recv(sock)):
                        if not isinstance(reply, genl.Ack):
                            continue
                        position = seqs.get(reply.seq)
                        if position is None:
                            continue  # stale: from an abandoned request
                        if reply.errno:
                            op = ops[position - offset]
                            results[position] = KernelError(op_name(op), op_target(op), reply.errno)
                        if reply.seq == last:
                            done = True
            except OSError as exc:
                # ENOBUFS (acks lost) or a dead socket: the outcome of the batch is
                # unknown; report it on every op not already known to have failed, and
                # let the next sync's dump tell the truth.
                self._drop_socket()
                code = exc.errno or errno_mod.EIO
                for index, op in enumerate(ops):
                    if results[offset + index] is None:
                        results[offset + index] = KernelError(op_name(op), op_target(op), code)
            except asyncio.CancelledError:
                self._drop_socket()
                raise
            self._seed_memo(ops, results, offset)

    def _seed_memo(self, ops: Sequence[Op], results: list[KernelError | None], offset: int) -> None:
        memo = self._dest_memo
        for index, op in enumerate(ops):
            if results[offset + index] is None and isinstance(op, AddDest | UpdateDest):
                dest = op.dest
                memo[genl.dest_memo_key(dest)] = (dest.key.family.value, dest)
        self._trim_memos()

    async def _dump_services(self, sock: socket.socket) -> list[Service]:
        seq = self._next_seq()
        await self._send(sock, genl.encode_dump_services(self.family_id, seq))
        services: list[Service] = []
        while True:
            part = self._decode_part(
                lambda data: genl.decode_service_dump(
                    data, family_id=self.family_id, seq=seq, memo=self._service_memo
                ),
                await self._recv(sock),
                "",
            )
            services.extend(part.rows)
            if part.errno:
                raise KernelError("dump", "", part.errno)
            if part.done:
                return services

    async def _dump_dests(
        self, sock: socket.socket, service: Service
    ) -> tuple[dict[DestKey, Dest], dict[DestKey, DestStats]]:
        key = service.key
        family = key.family
        seq = self._next_seq()
        await self._send(sock, genl.encode_dump_dests(self.family_id, seq, key))
        dests: dict[DestKey, Dest] = {}
        stats: dict[DestKey, DestStats] = {}
        while True:
            part = self._decode_part(
                lambda data: genl.decode_dest_dump(
                    data,
                    family_id=self.family_id,
                    seq=seq,
                    service_family=family,
                    memo=self._dest_memo,
                ),
                await self._recv(sock),
                str(key),
            )
            for dest, dest_stats in part.rows:
                dests[dest.key] = dest
                if dest_stats is not None:
                    stats[dest.key] = dest_stats
            if part.errno:
                raise KernelError("dump", str(key), part.errno)
            if part.done:
                return dests, stats

    def _decode_part(
        self, decode: Callable[[bytes], genl.DumpPart[RowT]], data: bytes, vs: str
    ) -> genl.DumpPart[RowT]:
        try:
            part = decode(data)
        except genl.MalformedReplyError as exc:
            # The datagram's framing is garbage: nothing in it can be trusted.
            self.malformed_replies += 1
            log.warning("ipvs.netlink.reply.dropped", reason="malformed", vs=vs, detail=str(exc))
            return genl.DumpPart[RowT]([], False, 0, 1)
        if part.malformed:
            self.malformed_replies += part.malformed
            log.warning(
                "ipvs.netlink.reply.dropped", reason="malformed", vs=vs, count=part.malformed
            )
        return part


def _make_socket() -> socket.socket:
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW | socket.SOCK_CLOEXEC, NETLINK_GENERIC)
    try:
        for force, plain in (
            (33, socket.SO_RCVBUF),  # SO_RCVBUFFORCE: root may exceed rmem_max
            (32, socket.SO_SNDBUF),  # SO_SNDBUFFORCE
        ):
            try:
                sock.setsockopt(socket.SOL_SOCKET, force, SOCKET_BUFFER)
            except OSError:
                sock.setsockopt(socket.SOL_SOCKET, plain, SOCKET_BUFFER)
        # Kernels before 4.2 lack CAP_ACK: error acks then just carry our request back.
        with contextlib.suppress(OSError):
            sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        sock.bind((0, 0))
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def _netns_path(netns: str) -> str:
    return netns if "/" in netns else f"/run/netns/{netns}"


def _socket_in_netns(path: str) -> socket.socket:
    """Create the socket inside the namespace at ``path``.

    setns(2) moves only the calling thread, so it runs in a dedicated thread that switches,
    creates the socket and switches back; a socket stays bound to the namespace it was
    created in (what ``ip netns exec`` and pyroute2's forked helper rely on too).
    """
    box: dict[str, object] = {}

    def work() -> None:
        try:
            libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
            own = os.open("/proc/thread-self/ns/net", os.O_RDONLY | os.O_CLOEXEC)
            try:
                target = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
                try:
                    if libc.setns(target, CLONE_NEWNET) != 0:
                        code = ctypes.get_errno()
                        raise OSError(code, f"setns {path}: {os.strerror(code)}")
                finally:
                    os.close(target)
                try:
                    box["sock"] = _make_socket()
                finally:
                    # Not strictly needed (the thread ends here), but a thread should
                    # not die in a namespace it did not start in.
                    libc.setns(own, CLONE_NEWNET)
            finally:
                os.close(own)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=work, name="haipvs-netns", daemon=True)
    thread.start()
    thread.join()
    error = box.get("error")
    if isinstance(error, BaseException):
        raise error
    sock = box["sock"]
    assert isinstance(sock, socket.socket)
    return sock
