"""Tracking's decisions: the verdict from the tracked items, rise/fall, the priority clamp.

keepalived's ``track_interface`` and ``vrrp_script`` / ``track_script``:

- a tracked item with weight 0 puts the instance in FAULT while it is down or
  failing (keepalived: "if no weight is specified, the instance goes to FAULT");
- a negative weight is added to the priority while the item is down / failing,
  a positive weight while it is up / succeeding (keepalived's sign convention
  for both track_interface and vrrp_script);
- the result is clamped to 1..254 (:func:`clamp_priority`, which the machine's
  ``set_priority`` applies too): tracking can never make a router the address
  owner, nor silence it (priority 0 means "stopping", RFC 5798 §5.2.4), and an
  owner (255) is never changed (keepalived ignores weights on an owner).

The IO loop that feeds these (interface events, scripts, processes, files) is
``vrrp.track.InstanceTracker``.

Pure: no IO, no clock, no logger.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from vrrp.settings import PRIORITY_OWNER, TrackInterface, TrackScript

__all__ = [
    "RiseFall",
    "TrackVerdict",
    "TrackedItem",
    "clamp_priority",
    "tracking_verdict",
]

#: (label, weight, good): a tracked process or file as :func:`tracking_verdict` counts it.
TrackedItem = tuple[str, int, bool]


def clamp_priority(priority: int, *, owner: bool = False) -> int:
    """The effective priority an instance advertises for ``priority`` (its base plus
    tracking weights): 1..254, or 255 for the address owner whatever the weights.

    keepalived ``vrrp_set_effective_priority``: 0 is reserved for "stopping"
    (RFC 5798 §5.2.4) and 255 for the owner of the addresses; the owner's priority
    never moves.
    """
    if owner:
        return PRIORITY_OWNER
    return min(max(priority, 1), PRIORITY_OWNER - 1)


@dataclass(frozen=True, slots=True)
class TrackVerdict:
    """What tracking says about an instance right now."""

    priority: int
    fault: bool
    reason: str


def tracking_verdict(
    base_priority: int,
    interfaces: Mapping[TrackInterface, bool],
    scripts: Mapping[TrackScript, bool],
    others: Iterable[TrackedItem] = (),
) -> TrackVerdict:
    """Effective priority and fault from the state of every tracked item.

    ``interfaces`` maps each tracked interface to "up", ``scripts`` each script
    to "succeeding"; ``others`` are tracked processes and files, already as
    (label, weight, good) (vrrp.track_watch). The reason names every item that is
    currently counting.
    """
    faults: list[str] = []
    moves: list[str] = []
    total = 0
    items: list[tuple[str, int, bool]] = [
        (f"interface {item.name} {'up' if up else 'down'}", item.weight, up)
        for item, up in interfaces.items()
    ]
    items += [
        (f"script {item.command[0]} {'ok' if ok else 'failing'}", item.weight, ok)
        for item, ok in scripts.items()
    ]
    items += others
    for label, weight, good in items:
        if weight == 0:
            if not good:
                faults.append(label)
        elif (weight > 0) == good:
            total += weight
            moves.append(f"{label} {weight:+d}")
    priority = clamp_priority(base_priority + total, owner=base_priority == PRIORITY_OWNER)
    if faults:
        return TrackVerdict(priority, True, "; ".join(faults))
    return TrackVerdict(priority, False, "; ".join(moves) if moves else "all tracked items nominal")


class RiseFall:
    """keepalived ``rise``/``fall``: a script changes state only after ``rise``
    consecutive successes or ``fall`` consecutive failures."""

    __slots__ = ("_fall", "_rise", "_streak", "healthy")

    def __init__(self, rise: int, fall: int, *, healthy: bool = True) -> None:
        if rise < 1 or fall < 1:
            raise ValueError(f"rise {rise} and fall {fall} must be >= 1")
        self._rise = rise
        self._fall = fall
        self._streak = 0
        self.healthy = healthy

    def observe(self, ok: bool) -> bool:
        """Feed one result; True when the state changed."""
        if ok == self.healthy:
            self._streak = 0
            return False
        self._streak += 1
        if self._streak >= (self._rise if ok else self._fall):
            self.healthy = ok
            self._streak = 0
            return True
        return False
