"""The nemesis's eyes inside one director's namespace.

    python -m haipvs.lab.nemesis.probe --out dir1.probe.jsonl [--api 127.0.0.1:9797]

One JSON object per line, stamped with CLOCK_MONOTONIC (one clock for the whole guest,
unlike the realtime clock the nemesis steps):

- ``{"t": ..., "k": "addr", "holds": bool}`` every 0.1 s: the front VIP is on eth0;
- ``{"t": ..., "k": "ipvs", "w": {address: weight}}`` every 0.2 s, from /proc/net/ip_vs;
- ``{"t": ..., "k": "status", "state": str | null}`` every 0.3 s: the first VRRP
  instance's state from the status API, ``NO_INSTANCE`` when it answers with none (its
  VRRP process is dead and not yet respawned: it claims nothing), null when it does not
  answer within 0.5 s.

The status poll has its own thread: a stopped daemon must not stall the other samples.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import signal
import socket
import sys
import threading
import time
import urllib.request
from collections.abc import Sequence
from typing import TextIO

from pyroute2 import IPRoute

from haipvs.lab.pair import VIP

__all__ = ["main", "parse_ip_vs"]


def parse_ip_vs(text: str) -> dict[str, int]:
    """Real server address -> weight from /proc/net/ip_vs (addresses in hex)."""
    weights: dict[str, int] = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 4 and parts[0] == "->" and parts[1] != "RemoteAddress:Port":
            address = parts[1].rsplit(":", 1)[0]
            with contextlib.suppress(ValueError):
                weights[socket.inet_ntoa(bytes.fromhex(address))] = int(parts[3])
    return weights


class _Writer:
    def __init__(self, out: TextIO) -> None:
        self._out = out
        self._lock = threading.Lock()

    def write(self, record: dict[str, object]) -> None:
        line = json.dumps({"t": round(time.monotonic(), 3), **record})
        with self._lock:
            self._out.write(line + "\n")
            self._out.flush()


#: The status API answered with no VRRP instance (see the module docstring).
NO_INSTANCE = "NO_INSTANCE"


def _status_loop(writer: _Writer, url: str, stop: threading.Event) -> None:
    while not stop.is_set():
        state: str | None = None
        try:
            with urllib.request.urlopen(url, timeout=0.5) as answer:
                status = json.loads(answer.read())
            instances = status.get("instances") or []
            state = str(instances[0]["state"]) if instances else NO_INSTANCE
        except (OSError, ValueError, KeyError, TypeError):
            state = None
        writer.write({"k": "status", "state": state})
        stop.wait(0.3)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", required=True)
    parser.add_argument("--api", default="127.0.0.1:9797")
    args = parser.parse_args(argv)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    with open(args.out, "a") as out, IPRoute() as ipr:
        writer = _Writer(out)
        poller = threading.Thread(target=_status_loop, daemon=True,
                                  args=(writer, f"http://{args.api}/status", stop))
        poller.start()
        tick = 0
        while not stop.is_set():
            with contextlib.suppress(OSError):
                addresses = {a.get_attr("IFA_ADDRESS") for a in ipr.get_addr(family=socket.AF_INET)}
                writer.write({"k": "addr", "holds": VIP in addresses})
            if tick % 2 == 0:
                with contextlib.suppress(OSError), open("/proc/net/ip_vs") as table:
                    writer.write({"k": "ipvs", "w": parse_ip_vs(table.read())})
            tick += 1
            stop.wait(0.1)
        poller.join(2.0)
    return 0


if __name__ == "__main__":
    sys.exit(main())
