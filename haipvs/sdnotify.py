"""systemd's notify protocol (sd_notify(3)): READY, RELOADING, STOPPING, WATCHDOG.

Only active when systemd set NOTIFY_SOCKET (Type=notify units); a no-op otherwise,
so the daemon runs the same in a terminal, in the lab and under systemd.
"""

from __future__ import annotations

import os
import socket
import time
from contextlib import suppress

__all__ = ["SystemdNotifier"]


class SystemdNotifier:
    def __init__(self, environ: dict[str, str] | None = None) -> None:
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):  # abstract namespace socket
            address = "\0" + address[1:]
        self._address = address or None
        watchdog_usec = env.get("WATCHDOG_USEC")
        watchdog_pid = env.get("WATCHDOG_PID")
        self.watchdog_interval: float | None = None
        if watchdog_usec and (watchdog_pid is None or watchdog_pid == str(os.getpid())):
            # Ping at half the timeout, as sd_watchdog_enabled(3) recommends.
            self.watchdog_interval = int(watchdog_usec) / 1_000_000 / 2

    @property
    def enabled(self) -> bool:
        return self._address is not None

    def notify(self, *fields: str) -> None:
        if self._address is None:
            return
        message = "\n".join(fields).encode()
        # systemd gone, its socket unreachable, or no descriptor left to make ours
        # (EMFILE): never fatal to the director, whose watchdog ping or SIGHUP this is.
        with suppress(OSError), socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.sendto(message, self._address)

    def ready(self, status: str) -> None:
        self.notify("READY=1", f"STATUS={status}")

    def reloading(self) -> None:
        # RELOADING=1 must carry MONOTONIC_USEC (systemd >= 253, Type=notify-reload).
        self.notify("RELOADING=1", f"MONOTONIC_USEC={int(time.monotonic() * 1_000_000)}")

    def stopping(self) -> None:
        self.notify("STOPPING=1")

    def watchdog(self) -> None:
        self.notify("WATCHDOG=1")

    def status(self, text: str) -> None:
        self.notify(f"STATUS={text}")
