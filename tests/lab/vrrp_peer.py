"""Run one haipvs VRRP instance standalone in the current network namespace.

A lab driver (not the daemon): the interop tests and benches start it with
``ip netns exec NS python tests/lab/vrrp_peer.py ...`` next to a keepalived.
It runs :class:`vrrp.service.VrrpService` on the real Linux ports, prints one
line per transition and appends it as JSON to ``--events`` (if given):

    {"t": <monotonic>, "name": "VI_1", "from": "BACKUP", "to": "MASTER",
     "reason": "master_down_timer", "detail": "..."}

SIGTERM / SIGINT stop gracefully (priority-0 advert, VIPs removed: RFC 5798
§6.4.3); SIGKILL is a crash. ``{"ready": true}`` is written once the instance
runs.
"""

from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from collections.abc import Sequence
from ipaddress import ip_address, ip_interface
from pathlib import Path
from typing import Any

from vrrp.auth_hmac import AuthHmacSettings, AuthMode, decode_key
from vrrp.machine import Transition
from vrrp.service import VrrpService
from vrrp.settings import InstanceSettings, NotifySettings, VipSpec
from vrrp.status import InstanceStatus


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--name", default="VI_1")
    parser.add_argument("--interface", default="eth0")
    parser.add_argument("--vrid", type=int, default=51)
    parser.add_argument("--priority", type=int, required=True)
    parser.add_argument("--version", type=int, choices=(2, 3), default=3)
    parser.add_argument("--advert-interval", type=float, default=1.0)
    parser.add_argument("--vip", action="append", required=True, help="CIDR, repeatable")
    parser.add_argument("--unicast-peer", action="append", default=[])
    parser.add_argument("--unicast-source")
    parser.add_argument("--no-preempt", action="store_true")
    parser.add_argument("--preempt-delay", type=float, default=0.0)
    parser.add_argument("--garp-repeat", type=int, default=5)
    parser.add_argument("--notify", help="argv (space separated) run for every state")
    parser.add_argument("--events", type=Path, help="append one JSON line per transition")
    parser.add_argument(
        "--auth-key", action="append", default=[], help="auth_hmac key ID:VALUE, repeatable"
    )
    parser.add_argument("--auth-active", type=int, help="auth_hmac active_key (default: first)")
    parser.add_argument("--auth-mode", default="enforce")
    parser.add_argument(
        "--status", type=Path, help="rewrite with the instance's counters every 0.5 s (JSON)"
    )
    return parser.parse_args(argv)


def auth_from(args: argparse.Namespace) -> AuthHmacSettings | None:
    if not args.auth_key:
        return None
    keys = []
    for item in args.auth_key:
        key_id, value = item.split(":", 1)
        keys.append((int(key_id), decode_key(value)))
    active = args.auth_active if args.auth_active is not None else keys[0][0]
    return AuthHmacSettings(tuple(keys), active, mode=AuthMode(args.auth_mode))


def settings_from(args: argparse.Namespace) -> InstanceSettings:
    notify = None
    if args.notify:
        hook = tuple(args.notify.split())
        notify = NotifySettings(master=hook, backup=hook, fault=hook, stop=hook)
    return InstanceSettings(
        name=args.name,
        interface=args.interface,
        vrid=args.vrid,
        priority=args.priority,
        version=args.version,
        advert_interval=args.advert_interval,
        preempt=not args.no_preempt,
        preempt_delay=args.preempt_delay,
        vips=tuple(VipSpec(ip_interface(vip)) for vip in args.vip),
        unicast_peers=tuple(ip_address(peer) for peer in args.unicast_peer),
        unicast_source=ip_address(args.unicast_source) if args.unicast_source else None,
        garp_repeat=args.garp_repeat,
        notify=notify,
        auth_hmac=auth_from(args),
    )


def write_status(path: Path, statuses: Sequence[InstanceStatus]) -> None:
    entries = [
        {
            "name": status.name,
            "state": status.state.value,
            "adverts_received": status.adverts_received,
            "adverts_dropped": status.adverts_dropped,
            "auth_verdicts": status.auth_verdicts,
        }
        for status in statuses
    ]
    scratch = path.with_suffix(".tmp")
    scratch.write_text(json.dumps(entries))
    scratch.replace(path)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse(argv)
    events: Path | None = args.events
    lock = threading.Lock()

    def record(entry: dict[str, Any]) -> None:
        line = json.dumps(entry)
        with lock:
            print(line, flush=True)
            if events is not None:
                with events.open("a") as handle:
                    handle.write(line + "\n")

    def on_transition(name: str, transition: Transition, status: InstanceStatus) -> None:
        record(
            {
                "t": time.monotonic(),
                "name": name,
                "from": transition.old.value,
                "to": transition.new.value,
                "reason": transition.reason.value,
                "detail": transition.detail,
                "priority": status.effective_priority,
            }
        )

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    service = VrrpService([settings_from(args)], on_transition=on_transition)
    service.start()
    record({"t": time.monotonic(), "ready": True})
    while not stop.wait(0.5):
        if args.status is not None:
            write_status(args.status, service.status())
    service.stop()
    lag = service.loop_lag
    record({"t": time.monotonic(), "stopped": True, "worst_lag": lag.worst})
    return 0


if __name__ == "__main__":
    sys.exit(main())
