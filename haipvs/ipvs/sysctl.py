"""IPVS's sysctls that haipvs sets (``/proc/sys/net/ipv4/vs/*``): thin IO, one small file
each, set only when it differs and read back, one log line per change of the answer.

They exist once the ``ip_vs`` module is loaded (the programmer's first netlink call) and
are per network namespace. What haipvs sets and why:

- ``sloppy_tcp = 1`` in scale-out and sync-mesh mode (``haipvs.bgp.sloppy``).
- ``sync_refresh_period = R``, and the period of ``sync_threshold`` 0 (``3 0``: the kernel
  has no ``sync_period`` file, the period is that file's second value), when the
  connection sync daemon has a ``refresh_period`` (``SyncRefresh``). By default the
  kernel re-sends an established connection only on its 3rd packet and every 50th after
  (``sync_threshold = 3 50``, ``ip_vs_sync.c ip_vs_sync_conn_needed``): a director that
  starts (or joins a scale-out group) learns a long-lived connection only when it next
  passes its 50th packet, which may be never for a quiet one. With the period 0 the
  packet count no longer decides, and ``sync_refresh_period`` re-sends each connection
  once R seconds have passed since its last sync message, on its next packet (or half
  its timeout, if less): within R seconds plus one packet's gap (and the kernel's 2 s
  flush of a partly filled message) every peer holds every live connection."""

from __future__ import annotations

import structlog

__all__ = ["IPVS_SYSCTL_DIR", "KernelSetting", "SyncRefresh"]

log = structlog.get_logger("haipvs.ipvs")

IPVS_SYSCTL_DIR = "/proc/sys/net/ipv4/vs"


class KernelSetting:
    """One sysctl file kept at a wanted value. ``ensure`` answers None once it reads the
    value, else why it does not; ``EVENT.set`` when haipvs changed it, ``EVENT.failed``
    (once per distinct problem) when it cannot."""

    def __init__(self, path: str, *, event: str, why: str, consequence: str) -> None:
        self.path = path
        self.event = event
        self.why = why  # the reason logged with a change
        self.consequence = consequence  # what a failure costs, logged with it
        self._problem: str | None = None

    def ensure(self, want: str) -> str | None:
        # Compared word by word: a vector sysctl reads back tab-separated ("3\t0").
        try:
            value = self._read()
            if value.split() != want.split():
                with open(self.path, "w") as handle:
                    handle.write(f"{want}\n")
                now = self._read()
                if now.split() == want.split():
                    log.info(f"{self.event}.set", file=self.path, was=value, value=want,
                             reason=self.why)
                value = now
        except OSError as error:
            problem: str | None = f"cannot set it: {error.strerror or error}"
        else:
            problem = (None if value.split() == want.split()
                       else f"reads {value} after haipvs wrote {want}")
        if problem is not None and problem != self._problem:
            log.error(f"{self.event}.failed", file=self.path, error=problem,
                      reason=self.consequence)
        self._problem = problem
        return problem

    def _read(self) -> str:
        with open(self.path) as handle:
            return handle.read().strip()


class SyncRefresh:
    """The period of ``sync_threshold`` 0 (its threshold kept) and ``sync_refresh_period =
    R``: every live connection is re-sent to the peers at least every R seconds (module
    docstring)."""

    def __init__(self, directory: str = IPVS_SYSCTL_DIR) -> None:
        consequence = ("a director that starts or joins learns its peers' long-lived "
                       "connections only every 50 packets (the kernel's default)")
        self._threshold = KernelSetting(
            f"{directory}/sync_threshold", event="ipvs.sync_refresh",
            why="connections are re-sent by time (sync_refresh_period), not by packet count",
            consequence=consequence)
        self._refresh = KernelSetting(
            f"{directory}/sync_refresh_period", event="ipvs.sync_refresh",
            why="every live connection is re-sent to the peers at least this often",
            consequence=consequence)

    def ensure(self, refresh_period: int) -> str | None:
        """None once both read as wanted, else the first problem."""
        threshold = self._threshold_now() or "3"
        period = self._threshold.ensure(f"{threshold} 0")
        refresh = self._refresh.ensure(str(refresh_period))
        return period or refresh

    def _threshold_now(self) -> str | None:
        """The first packet's sync threshold as set (the kernel's 3 unless tuned)."""
        try:
            with open(self._threshold.path) as handle:
                words = handle.read().split()
        except OSError:
            return None  # ensure() reports it
        return words[0] if words and words[0].isdigit() else None
