"""The lab client's io_uring send ring (haipvs.lab.uring) on the host's kernel, and the
client's heartbeats through it: bytes delivered, each send's result reaped with the
item it was queued with, a reset peer reported as the send's -errno, a full ring
refusing more."""

from __future__ import annotations

import errno
import selectors
import socket
from collections.abc import Iterator

import pytest

from haipvs.lab.holders import Connection, Holders, HoldResult, Wheel
from haipvs.lab.uring import SendRing


@pytest.fixture
def ring() -> Iterator[SendRing[int]]:
    opened = SendRing[int].open(b"h", entries=8)
    if opened is None:
        pytest.skip("io_uring is not allowed here (the client falls back to send)")
    yield opened
    opened.close()


def test_queued_sends_go_in_one_submission_and_each_result_comes_back_with_its_item(
    ring: SendRing[int],
) -> None:
    ours, theirs = socket.socketpair()
    gone, closed = socket.socketpair()
    closed.close()
    with ours, theirs, gone:
        ours.setblocking(False)
        for token in (1, 2, 3):
            assert ring.queue(ours.fileno(), token)
        assert ring.queue(gone.fileno(), 99)
        assert ring.submit() == 4
        assert sorted(ring.reap()) == [(1, 1), (2, 1), (3, 1), (99, -errno.EPIPE)]
        assert theirs.recv(16) == b"hhh"
        assert list(ring.reap()) == []  # each result once


def test_a_full_ring_refuses_until_submitted(ring: SendRing[int]) -> None:
    ours, theirs = socket.socketpair()
    with ours, theirs:
        queued = [ring.queue(ours.fileno(), token) for token in range(ring.entries + 2)]
        assert queued == [True] * ring.entries + [False, False]
        assert ring.submit() == ring.entries
        assert len(list(ring.reap())) == ring.entries
        assert ring.queue(ours.fileno(), 100)
        ring.submit()


@pytest.mark.parametrize("use_ring", [True, False])
def test_the_client_counts_a_sent_heartbeat_and_ends_a_reset_connection_either_way(
    use_ring: bool,
) -> None:
    holders = Holders(("127.0.0.1", 1), socket.AF_INET, [], count=0, heartbeat=0.2,
                      ramp=0.0, result=HoldResult(), use_ring=use_ring)
    if use_ring and holders.ring is None:
        pytest.skip("io_uring is not allowed here")
    live, peer = socket.socketpair()
    reset, closed = socket.socketpair()
    closed.close()
    connections = []
    for sock in (live, reset):
        sock.setblocking(False)
        connection = Connection(sock, started=0.0, open=True)
        holders.live.add(connection)
        holders.selector.register(sock, selectors.EVENT_READ, connection)
        connections.append(connection)
    holders.wheel = Wheel(now=0.0, period=0.2)  # the test's clock, not the monotonic one
    for connection in connections:
        holders.wheel.add(connection, 0.0)
    try:
        if holders.ring is not None:
            holders.beat_all(holders.wheel.due(0.2), 0.2)
        else:
            for connection in holders.wheel.due(0.2):
                holders.beat(connection, 0.2)
        assert holders.result.beats == 1 and peer.recv(4) == b"h"
        assert holders.result.causes == {"rst": 1}  # EPIPE on the closed pair
        assert connections[1].ended and not connections[0].ended
    finally:
        peer.close()
        holders.selector.close()
        if holders.ring is not None:
            holders.ring.close()
