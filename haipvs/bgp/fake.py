"""FakeSpeaker: a strict in-memory BIRD for the scale-out tests.

It fails as BIRD does (tests/contract/test_route_speaker.py runs one suite against it and
a real BIRD): an unknown protocol name is BIRD's parse error 9001, a speaker that is down
refuses the connection (ECONNREFUSED), enabling an enabled protocol changes nothing.
"""

from __future__ import annotations

import errno
import re
from collections.abc import Iterable, Mapping
from pathlib import Path

from haipvs.bgp.bird import BirdError, SpeakerError

__all__ = ["FakeSpeaker"]

_UNKNOWN = "syntax error, unexpected CF_SYM_UNDEFINED"


class FakeSpeaker:
    """``RouteSpeaker`` over a set of static protocols, all disabled at start."""

    def __init__(self, protocols: Iterable[str] = (), config_file: Path | None = None) -> None:
        self._enabled: dict[str, bool] = dict.fromkeys(protocols, False)
        self._config_file = config_file
        self.running = True
        self.ops: list[tuple[str, str]] = []
        self.configures = 0

    def _check(self, op: str, protocol: str | None = None) -> None:
        if not self.running:
            raise SpeakerError(f"connect {op}", errno.ECONNREFUSED, "Connection refused")
        if protocol is not None and protocol not in self._enabled:
            raise BirdError(op, 9001, _UNKNOWN)

    def announced(self) -> frozenset[str]:
        return frozenset(name for name, on in self._enabled.items() if on)

    async def announce(self, protocol: str) -> bool:
        self._check(f"enable {protocol}", protocol)
        changed = not self._enabled[protocol]
        self._enabled[protocol] = True
        if changed:
            self.ops.append(("announce", protocol))
        return changed

    async def withdraw(self, protocol: str) -> bool:
        self._check(f"disable {protocol}", protocol)
        changed = self._enabled[protocol]
        self._enabled[protocol] = False
        if changed:
            self.ops.append(("withdraw", protocol))
        return changed

    async def protocol_states(self) -> Mapping[str, str]:
        self._check("show protocols")
        return {name: "up" if on else "down" for name, on in self._enabled.items()}

    def restart(self) -> None:
        """A new BIRD process on the same file: every static disabled, sessions reset."""
        self.running = True
        self._enabled = dict.fromkeys(self._enabled, False)

    async def configure(self) -> None:
        """BIRD re-reads its file: its statics, every one disabled again (as measured)."""
        self._check("configure")
        text = self._config_file.read_text() if self._config_file is not None else ""
        if self._config_file is not None and "router id" not in text:
            raise BirdError("configure", 8002, f"{self._config_file}:1:1 syntax error")
        self.configures += 1
        names = re.findall(r"^protocol static (\S+) \{", text, re.MULTILINE)
        self._enabled = dict.fromkeys(names or self._enabled, False)

    async def close(self) -> None:
        return None
