"""SystemdNotifier: a notification must never raise, not even with no descriptor left."""

from __future__ import annotations

import socket
import subprocess
import sys
import textwrap
from pathlib import Path

from haipvs.sdnotify import SystemdNotifier


def test_the_watchdog_ping_reaches_the_notify_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "notify")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd:
        systemd.bind(path)
        SystemdNotifier({"NOTIFY_SOCKET": path}).watchdog()
        assert systemd.recv(100) == b"WATCHDOG=1"


def test_no_descriptor_left_is_no_exception(tmp_path: Path) -> None:
    # A process out of descriptors (EMFILE) cannot create the datagram socket; the
    # watchdog ping (and SIGHUP's RELOADING=1) must shrug it off, or systemd or the
    # reload kills the daemon.
    script = textwrap.dedent(f"""
        import os, resource
        from haipvs.sdnotify import SystemdNotifier
        notifier = SystemdNotifier({{"NOTIFY_SOCKET": {str(tmp_path / "notify")!r}}})
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
        held = []
        try:
            while True:
                held.append(os.open("/dev/null", os.O_RDONLY))
        except OSError as error:
            assert error.errno == 24, error  # EMFILE
        notifier.watchdog()
        notifier.reloading()
        print("survived")
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=60, check=False)
    assert done.stdout == "survived\n", done.stderr
