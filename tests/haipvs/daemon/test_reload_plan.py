"""Reloads: the pure plan (haipvs.daemon.reload) and the supervisor executing it.

A failing step is reported and leaves the daemon on its running config: never a crash,
never half a new config, and `POST /reload` and SIGHUP say the same.
"""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Sequence
from pathlib import Path

import aiohttp
import pytest
from support import FakeHost, FakeVrrpPart, free_port, until

import checkers
import vrrp
from haipvs.config import compile_config, load_config_text
from haipvs.daemon.overrides import Overrides, ServerOverride
from haipvs.daemon.reload import plan_reload
from haipvs.ipvs import AdminState, FakeIpvsKernel
from haipvs.ipvs.model import AddDest, Dest, DestKey, ServiceKey, UpdateDest
from haipvs.supervisor import Supervisor

BASE = """
director: {{name: lb1, api: '127.0.0.1:{port}', api_token: s3cret}}
vrrp:
  - {{name: VI_A, interface: eth0, vrid: 1, priority: 150, vips: [198.51.100.10/24]}}
  - {{name: VI_B, interface: eth0, vrid: 2, priority: 100, vips: [198.51.100.20/24]}}
  - {{name: VI_C, interface: eth0, vrid: 3, priority: 100, vips: [198.51.100.30/24]}}
virtual_servers:
  - name: web
    vip: 198.51.100.10
    port: 80
    real_servers:
      - {{address: 10.0.0.11, port: 80, weight: 1}}
      - {{address: 10.0.0.12, port: 80, weight: {weight}}}
"""


def config(port: int = 9797, weight: int = 2, extra: str = "") -> str:
    return BASE.format(port=port, weight=weight) + extra


def compiled(text: str) -> tuple[object, object]:
    loaded = load_config_text(text, "t.yaml")
    return loaded.config, compile_config(loaded.config)


# --- the plan, pure -------------------------------------------------------------------------


def test_an_unchanged_file_plans_nothing() -> None:
    plan = plan_reload(compiled(config()), compiled(config()))  # type: ignore[arg-type]
    assert plan.is_empty and plan.ipvs_ops == () and plan.summary == "no changes"


def test_one_weight_is_one_ipvs_operation_and_no_vrrp_step() -> None:
    plan = plan_reload(compiled(config()), compiled(config(weight=5)))  # type: ignore[arg-type]
    assert [type(op) for op in plan.ipvs_ops] == [UpdateDest]
    assert not plan.vrrp_changed
    assert plan.summary == "real_servers: 1 changed"


def test_a_vip_a_priority_and_an_instance_touch_those_instances_only() -> None:
    new = config().replace("vips: [198.51.100.10/24]", "vips: [198.51.100.10/24, 198.51.100.11/24]")
    new = new.replace("vrid: 2, priority: 100", "vrid: 2, priority: 120")
    new = new.replace(
        "virtual_servers:",
        "  - {name: VI_D, interface: eth0, vrid: 4, vips: [198.51.100.40/24]}\nvirtual_servers:",
    )
    plan = plan_reload(compiled(config()), compiled(new))  # type: ignore[arg-type]
    assert [(c.name, c.action, c.vips_added) for c in plan.instances] == [
        ("VI_A", "reconfigure", ("198.51.100.11/24",)),
        ("VI_B", "reconfigure", ()),
        ("VI_D", "add", ("198.51.100.40/24",)),
    ]
    assert plan.instances[1].fields == ("priority",)
    assert not plan.vrrp.restart


WEB = ServiceKey.tcp("198.51.100.10", 80)
RS2 = DestKey(address="10.0.0.12", port=80)


def operator(state: AdminState, service: str | None = None) -> Overrides:
    return Overrides((ServerOverride("10.0.0.12", 80, service, state, 0.0, 0),))


@pytest.mark.parametrize("state", [AdminState.DRAIN, AdminState.MAINTENANCE])
def test_a_weight_change_of_an_overridden_real_server_plans_no_ipvs_op(
    state: AdminState,
) -> None:
    # Drained (weight 0) or in maintenance (out of the table): the operator's override
    # outlives the reload, so the new weight sends nothing to the kernel.
    plan = plan_reload(compiled(config()), compiled(config(weight=5)),  # type: ignore[arg-type]
                       overrides=operator(state))
    assert plan.ipvs_ops == ()
    assert plan.summary == "real_servers: 1 changed"


def test_an_override_limited_to_another_service_leaves_the_op() -> None:
    plan = plan_reload(compiled(config()), compiled(config(weight=5)),  # type: ignore[arg-type]
                       overrides=operator(AdminState.DRAIN, service="other"))
    assert [type(op) for op in plan.ipvs_ops] == [UpdateDest]


def test_a_real_server_back_while_it_drains_is_an_update_not_an_add() -> None:
    # 10.0.0.13 left the config and is still draining (weight 0 in the kernel): the file
    # that brings it back updates its weight, as the programmer will.
    back = config() + "      - {address: 10.0.0.13, port: 80, weight: 3}\n"
    draining = {(WEB, DestKey(address="10.0.0.13", port=80)):
                Dest(DestKey(address="10.0.0.13", port=80), weight=0)}
    plan = plan_reload(compiled(config()), compiled(back),  # type: ignore[arg-type]
                       drains=draining)
    assert [(type(op), op.dest.weight) for op in plan.ipvs_ops
            if isinstance(op, UpdateDest | AddDest)] == [(UpdateDest, 3)]
    without = plan_reload(compiled(config()), compiled(back))  # type: ignore[arg-type]
    assert [type(op) for op in without.ipvs_ops] == [AddDest]


def test_an_api_change_is_named_as_waiting_for_a_restart() -> None:
    plan = plan_reload(compiled(config(port=1)), compiled(config(port=2)))  # type: ignore[arg-type]
    assert plan.restart_needed == ("director.api: takes effect at the next restart",)


# --- the supervisor executing plans -----------------------------------------------------------


class FailingVrrpPart(FakeVrrpPart):
    """A VRRP part that cannot bring up an instance named VI_BAD (a device gone, a socket
    refused): the update fails after the other steps, as a real one can."""

    updates: list[tuple[str, ...]] = []

    async def update(self, instances: Sequence[vrrp.InstanceSettings]) -> None:
        names = tuple(settings.name for settings in instances)
        FailingVrrpPart.updates.append(names)
        self.instances = tuple(instances)
        if "VI_BAD" in names:
            raise OSError(19, "No such device")


async def start(tmp_path: Path, host: FakeHost) -> tuple[Supervisor, asyncio.Task[int], int]:
    port = free_port()
    path = tmp_path / "haipvs.yaml"
    path.write_text(config(port))
    path.chmod(0o644)
    FakeVrrpPart.last = None
    FailingVrrpPart.updates = []
    daemon = Supervisor(
        str(path), kernel=FakeIpvsKernel(), vrrp_factory=FailingVrrpPart, host=host,
        prober=checkers.ScriptedProber(default=checkers.ProbeResult(True, "ok", 0.001)),
    )
    task = asyncio.create_task(daemon.run())
    await until(lambda: daemon.programmer is not None and FakeVrrpPart.last is not None)
    await until(lambda: listening(port))
    return daemon, task, port


def listening(port: int) -> bool:
    with socket.socket() as probe:
        return probe.connect_ex(("127.0.0.1", port)) == 0


async def post_reload(port: int) -> tuple[int, dict[str, object]]:
    async with aiohttp.ClientSession() as session, session.post(
        f"http://127.0.0.1:{port}/reload", headers={"Authorization": "Bearer s3cret"}
    ) as response:
        return response.status, await response.json()


async def sighup(daemon: Supervisor) -> tuple[str, ...]:
    rejected = daemon.snapshot().reloads_rejected
    daemon.request_reload()
    await until(lambda: daemon.snapshot().reloads_rejected > rejected)
    last = daemon.snapshot().last_reload
    assert last is not None and last.result == "rejected"
    return tuple(last.errors)


@pytest.mark.asyncio
async def test_a_failing_vrrp_step_is_reported_rolled_back_and_not_adopted(
    tmp_path: Path,
) -> None:
    daemon, task, port = await start(tmp_path, FakeHost("eth0"))
    path = tmp_path / "haipvs.yaml"
    running = daemon.running_config
    path.write_text(config(port, weight=7, extra="").replace(
        "virtual_servers:",
        "  - {name: VI_BAD, interface: eth0, vrid: 9, vips: [198.51.100.90/24]}\n"
        "virtual_servers:",
    ))
    status, body = await post_reload(port)
    assert status == 422 and body["applied"] is False
    (error,) = body["errors"]  # type: ignore[misc]
    assert "reload not applied" in error and "No such device" in error
    # The VRRP side was brought back to the running instances; nothing else moved.
    assert FailingVrrpPart.updates[-1] == ("VI_A", "VI_B", "VI_C")
    assert daemon.running_config is running
    (service,) = daemon.snapshot().services
    assert [rs.weight for rs in service.real_servers] == [1, 2]
    # Not "no changes" next time: the same file fails the same way, by SIGHUP too.
    assert await sighup(daemon) == (error,)
    assert not task.done()
    # A good file afterwards applies.
    path.write_text(config(port, weight=7))
    status, body = await post_reload(port)
    assert body["applied"] is True and body["summary"] == "real_servers: 1 changed"
    daemon.request_shutdown()
    assert await task == 0


@pytest.mark.asyncio
async def test_a_reload_naming_a_missing_interface_is_refused_where_it_is_named(
    tmp_path: Path,
) -> None:
    daemon, task, port = await start(tmp_path, FakeHost("eth0"))
    path = tmp_path / "haipvs.yaml"
    path.write_text(config(port).replace("interface: eth0, vrid: 3", "interface: eth7, vrid: 3"))
    status, body = await post_reload(port)
    expected = f"{path}:6: vrrp[2].interface: no interface eth7 on this host"
    assert (status, body["applied"], body["errors"]) == (422, False, [expected])
    assert await sighup(daemon) == (expected,)
    assert FailingVrrpPart.updates == []  # the VRRP side never saw it
    assert not task.done()
    daemon.request_shutdown()
    assert await task == 0
