"""Connection sync (keepalived ``lvs_sync_daemon``): which sync daemons the kernel runs.

The rule, from the VRRP state of the instance the sync daemon follows:

- the VRRP master runs the *master* daemon (it sends its connections' state);
- a backup, and a faulted instance, run the *backup* daemon (they listen): only the
  master sends (keepalived ``vrrp_state_master_tx`` / ``_rx``);
- INIT (starting, stopping) or a state not known yet changes nothing;
- ``mode: mesh`` (scale-out, no VRRP) runs both roles at once, whatever VRRP says:
  every director sends its connections and holds the others'.

The kernel runs at most one daemon per role (a second start is EEXIST): a change of role
stops both roles first (a daemon left by a crashed predecessor, or the other role, would
make the start fail), then starts the wanted ones (:func:`sync_steps`).

Pure: no IO, no clock, no logging. The supervisor executes the steps through the kernel's
``SyncDaemonPort`` (haipvs.ipvs.kernel).
"""

from __future__ import annotations

from haipvs.ipvs.genl import SyncState

__all__ = ["MESH", "sync_roles", "sync_steps"]

#: ``ipvs.sync_daemon.mode`` that runs both roles independently of VRRP.
MESH = "mesh"

_ROLE_OF_STATE = {
    "MASTER": frozenset({SyncState.MASTER}),
    "BACKUP": frozenset({SyncState.BACKUP}),
    "FAULT": frozenset({SyncState.BACKUP}),
}


def sync_roles(
    mode: str, followed: str | None, instance: str | None, vrrp_state: str | None
) -> frozenset[SyncState] | None:
    """The sync daemons to run when ``instance`` is in ``vrrp_state``; None: no change.

    ``followed`` is the VRRP instance the config names (None: any instance the director
    runs); a transition of another instance changes nothing. In mesh mode both roles run.
    """
    if mode == MESH:
        return frozenset(SyncState)
    if followed is not None and instance != followed:
        return None
    if vrrp_state is None:
        return None
    return _ROLE_OF_STATE.get(vrrp_state)


def sync_steps(
    wanted: frozenset[SyncState],
) -> tuple[tuple[SyncState, ...], tuple[SyncState, ...]]:
    """(roles to stop, roles to start) to go from whatever runs to ``wanted``: every role
    is stopped first (stopping one that does not run is refused with ESRCH, harmlessly),
    then the wanted ones start, master first."""
    ordered = tuple(SyncState)
    return ordered, tuple(state for state in ordered if state in wanted)
