"""The notify FIFO: keepalived's line format, and a real FIFO with no reader, a reader,
a full pipe and a reader that goes away: lines are whole, in order, or dropped and
counted; the writer never blocks and never raises for them."""

from __future__ import annotations

import errno
import os
from ipaddress import IPv4Address, IPv6Address
from pathlib import Path

import pytest

from haipvs.notify_fifo import (
    NotifyFifo,
    endpoint,
    group_line,
    instance_line,
    rs_line,
    vs_line,
)

VS = endpoint(IPv4Address("198.51.100.10"), "tcp", 80)
RS = endpoint(IPv4Address("10.0.0.11"), "tcp", 80)


def test_lines_are_keepalived_s() -> None:
    assert instance_line("VI_1", "master", 150) == 'INSTANCE "VI_1" MASTER 150\n'
    assert group_line("G1", "backup") == 'GROUP "G1" BACKUP\n'
    assert vs_line(VS, up=False) == "VS [198.51.100.10]:tcp:80 DOWN\n"
    assert rs_line(RS, VS, up=True) == "RS [10.0.0.11]:tcp:80 [198.51.100.10]:tcp:80 UP\n"
    assert endpoint(IPv6Address("2001:db8::10"), "udp", 53) == "[2001:db8::10]:udp:53"
    assert endpoint(None, "tcp", 0, fwmark=7) == "FWM:7"


def test_no_reader_drops_and_counts_then_a_reader_gets_lines_in_order(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    drops: list[int] = []
    fifo = NotifyFifo(str(path), on_drop=lambda line, code: drops.append(code))
    fifo.ensure()
    assert path.is_fifo()
    assert fifo.write(instance_line("VI_1", "backup", 100)) is False
    assert (fifo.dropped, drops) == (1, [errno.ENXIO])
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        lines = [instance_line("VI_1", "master", 150), rs_line(RS, VS, up=False)]
        assert all(fifo.write(line) for line in lines)
        assert os.read(reader, 4096).decode() == "".join(lines)
    finally:
        os.close(reader)
        fifo.close()


def test_a_full_pipe_drops_whole_lines_and_a_gone_reader_is_reopened(tmp_path: Path) -> None:
    path = tmp_path / "notify"
    fifo = NotifyFifo(str(path))
    fifo.ensure()
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    line = instance_line("VI_" + "x" * 80, "master", 150)
    written = 0
    while fifo.write(line):
        written += 1
    assert fifo.dropped == 1  # the pipe is full: dropped, not blocked
    data = b""
    while chunk := os.read(reader, 65536):
        data += chunk
        if len(data) >= written * len(line):
            break
    assert data == line.encode() * written  # only whole lines
    os.close(reader)
    assert fifo.write(line) is False  # EPIPE: the reader is gone
    reader = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    try:
        assert fifo.write(group_line("G1", "fault")) is True  # reopened
        assert os.read(reader, 4096) == b'GROUP "G1" FAULT\n'
    finally:
        os.close(reader)
        fifo.close()


def test_a_path_that_is_not_a_fifo_is_refused(tmp_path: Path) -> None:
    regular = tmp_path / "notify"
    regular.write_text("")
    with pytest.raises(OSError, match="is not a FIFO"):
        NotifyFifo(str(regular)).ensure()
