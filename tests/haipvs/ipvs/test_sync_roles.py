"""The connection-sync rule alone: VRRP state and config in, the sync daemons to run out."""

from __future__ import annotations

import pytest

from haipvs.ipvs.genl import SyncState
from haipvs.ipvs.sync_roles import MESH, sync_roles, sync_steps

MASTER = frozenset({SyncState.MASTER})
BACKUP = frozenset({SyncState.BACKUP})
BOTH = frozenset({SyncState.MASTER, SyncState.BACKUP})


@pytest.mark.parametrize(
    ("vrrp_state", "roles"),
    [("MASTER", MASTER), ("BACKUP", BACKUP), ("FAULT", BACKUP), ("INIT", None), (None, None)],
)
def test_the_master_sends_and_everyone_else_listens(
    vrrp_state: str | None, roles: frozenset[SyncState] | None
) -> None:
    assert sync_roles("vrrp", "VI_WEB", "VI_WEB", vrrp_state) == roles
    # No instance named: any instance of the director counts.
    assert sync_roles("vrrp", None, "VI_ANY", vrrp_state) == roles


def test_another_instance_changes_nothing() -> None:
    assert sync_roles("vrrp", "VI_WEB", "VI_OTHER", "MASTER") is None


@pytest.mark.parametrize("vrrp_state", ["MASTER", "BACKUP", "FAULT", "INIT", None])
def test_mesh_runs_both_roles_whatever_vrrp_says(vrrp_state: str | None) -> None:
    assert sync_roles(MESH, None, None, vrrp_state) == BOTH
    assert sync_roles(MESH, "VI_WEB", "VI_OTHER", vrrp_state) == BOTH


def test_every_role_stops_before_the_wanted_ones_start_master_first() -> None:
    every = (SyncState.MASTER, SyncState.BACKUP)
    assert sync_steps(MASTER) == (every, (SyncState.MASTER,))
    assert sync_steps(BACKUP) == (every, (SyncState.BACKUP,))
    assert sync_steps(BOTH) == (every, every)
