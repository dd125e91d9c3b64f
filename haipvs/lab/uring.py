"""Many one-byte sends in one system call: a minimal io_uring submission ring for the lab's
long-lived-connection client (haipvs.lab.holders).

Why: the lab guest is a user-mode kernel where every system call is a trap into another
host process (tens of microseconds), and the scale-out bench's client sends one heartbeat
per connection every 200 ms: 2,000 connections are 10,000 ``send`` calls a second, the
largest single consumer of the guest's one CPU (45-57 % of it, measured by the walk's
``guest_cpu``). The kernel's TCP work per heartbeat is the same either way; what io_uring
removes is the trap per send: a turn's heartbeats (about a hundred) go in one
``io_uring_enter``. No library is used: the standard library has no io_uring binding, and
this needs three syscalls' worth of it (setup, enter, the two rings via ``mmap``).

Layouts are the kernel's UAPI (``include/uapi/linux/io_uring.h``): ``io_uring_params``
with the rings' offsets, 64-byte submission entries, 16-byte completion entries. x86-64
only (the syscall numbers); ``SendRing.open`` returns None where io_uring is missing or
refused (another architecture, a seccomp filter, ``kernel.io_uring_disabled``), and the
client then sends with one ``send`` each, as before.
"""

from __future__ import annotations

import ctypes
import mmap
import os
import platform
import struct
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

__all__ = ["SendRing"]

Item = TypeVar("Item")

_SETUP, _ENTER = 425, 426  # x86-64 syscall numbers (arch/x86/entry/syscalls/syscall_64.tbl)
_OFF_SQ_RING, _OFF_CQ_RING, _OFF_SQES = 0, 0x8000000, 0x10000000
_FEAT_SINGLE_MMAP = 1
_OP_SEND = 26  # IORING_OP_SEND
_MSG_DONTWAIT, _MSG_NOSIGNAL = 0x40, 0x4000
_SQE = struct.Struct("<BBHiQQIIQ24x")  # opcode flags ioprio fd off addr len msg_flags user_data
_CQE = struct.Struct("<QiI")  # user_data res flags
_U32 = struct.Struct("<I")


class SendRing(Generic[Item]):
    """Queue sends of one shared byte string, submit them in one call, reap the results.

    ``queue(fd, item)`` adds a send of ``payload`` on ``fd`` (False: the ring is full,
    submit first); ``submit()`` hands every queued send to the kernel; ``reap()`` yields
    ``(item, result)`` for each send finished (the ring keeps each queued send's item, so
    its caller keeps no bookkeeping of its own): the bytes sent, or ``-errno``
    (``-EAGAIN``: the socket's send buffer was full; ``-ECONNRESET``, ``-EPIPE``...).
    A send on a non-blocking socket finishes inside ``submit`` in practice; one that does
    not is reaped at a later call. The kernel holds each file from submission, so a socket
    closed meanwhile does not redirect a queued send to a new one with the same number.
    """

    def __init__(self, fd: int, *, entries: int, sq: mmap.mmap, cq: mmap.mmap, sqes: mmap.mmap,
                 params: bytes, payload: bytes, syscall: Callable[..., int]) -> None:
        self._fd = fd
        self._syscall = syscall
        self.entries = entries
        self._sq, self._cq, self._sqes = sq, cq, sqes
        (self._sq_head, self._sq_tail, sq_mask_at, _, _, _, self._sq_array) = struct.unpack_from(
            "<7I", params, 40)
        (self._cq_head, self._cq_tail, cq_mask_at, _, _, self._cqes) = struct.unpack_from(
            "<6I", params, 80)
        self._sq_mask = _U32.unpack_from(sq, sq_mask_at)[0]
        self._cq_mask = _U32.unpack_from(cq, cq_mask_at)[0]
        self._payload = ctypes.create_string_buffer(payload, len(payload))
        self._address = ctypes.addressof(self._payload)
        self._length = len(payload)
        self._tail = _U32.unpack_from(sq, self._sq_tail)[0]
        self._queued = 0
        self._tokens = 0
        self._in_flight: dict[int, Item] = {}  # the kernel's user_data -> the caller's item
        for index in range(entries):  # the array maps ring slot i to entry i, once
            _U32.pack_into(sq, self._sq_array + 4 * index, index)

    @classmethod
    def open(cls, payload: bytes, entries: int = 4096) -> SendRing[Item] | None:
        if platform.machine() != "x86_64":
            return None
        libc = ctypes.CDLL(None, use_errno=True)
        params = ctypes.create_string_buffer(120)
        fd = libc.syscall(_SETUP, entries, params)
        if fd < 0:
            return None
        raw = params.raw
        sq_entries, cq_entries = struct.unpack_from("<2I", raw, 0)
        features = _U32.unpack_from(raw, 20)[0]
        sq_array, cqes = _U32.unpack_from(raw, 40 + 24)[0], _U32.unpack_from(raw, 80 + 20)[0]
        sq_size = sq_array + 4 * sq_entries
        cq_size = cqes + _CQE.size * cq_entries
        try:
            if features & _FEAT_SINGLE_MMAP:
                sq = cq = mmap.mmap(fd, max(sq_size, cq_size), offset=_OFF_SQ_RING)
            else:
                sq = mmap.mmap(fd, sq_size, offset=_OFF_SQ_RING)
                cq = mmap.mmap(fd, cq_size, offset=_OFF_CQ_RING)
            sqes = mmap.mmap(fd, _SQE.size * sq_entries, offset=_OFF_SQES)
        except OSError:
            os.close(fd)
            return None
        return cls(fd, entries=sq_entries, sq=sq, cq=cq, sqes=sqes, params=raw, payload=payload,
                   syscall=libc.syscall)

    def queue(self, fd: int, item: Item) -> bool:
        head = _U32.unpack_from(self._sq, self._sq_head)[0]
        if (self._tail - head) & 0xFFFFFFFF >= self.entries:
            return False
        index = self._tail & self._sq_mask
        self._tokens += 1
        self._in_flight[self._tokens] = item
        _SQE.pack_into(self._sqes, _SQE.size * index, _OP_SEND, 0, 0, fd, 0, self._address,
                       self._length, _MSG_DONTWAIT | _MSG_NOSIGNAL, self._tokens)
        self._tail = (self._tail + 1) & 0xFFFFFFFF
        self._queued += 1
        return True

    def submit(self) -> int:
        """Hand the queued sends to the kernel (one system call); how many it took."""
        if not self._queued:
            return 0
        # x86 keeps stores in order: the entries are written before the tail that
        # publishes them (the kernel reads the tail with acquire semantics).
        _U32.pack_into(self._sq, self._sq_tail, self._tail)
        taken = int(self._syscall(_ENTER, self._fd, self._queued, 0, 0, None, 0))
        if taken < 0:
            raise OSError(ctypes.get_errno(), os.strerror(ctypes.get_errno()))
        self._queued -= taken
        return taken

    def reap(self) -> Iterator[tuple[Item, int]]:
        head = _U32.unpack_from(self._cq, self._cq_head)[0]
        tail = _U32.unpack_from(self._cq, self._cq_tail)[0]
        while head != tail:
            token, result, _flags = _CQE.unpack_from(
                self._cq, self._cqes + _CQE.size * (head & self._cq_mask))
            head = (head + 1) & 0xFFFFFFFF
            _U32.pack_into(self._cq, self._cq_head, head)
            yield self._in_flight.pop(token), result

    def close(self) -> None:
        for region in {id(m): m for m in (self._sq, self._cq, self._sqes)}.values():
            region.close()
        os.close(self._fd)
