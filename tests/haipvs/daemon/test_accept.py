"""One gate: check-config's verdict is the daemon's verdict at start and at reload.

Configs come from the invalid-config corpus and from the valid-config generator
(tests/haipvs/config/config_strategies.py), varied by what only the host or the
daemon used to judge: the interfaces this host has, whether the scripts are safe, a
non-loopback API without a token, a world-writable file. For each, `check-config`
(exit status and lines), `Supervisor.run` (exit status and stderr) and a reload of
a running daemon (``POST /reload``'s outcome) must agree, line for line.
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from support import FakeHost, FakeVrrpPart, free_port, until

import checkers
from haipvs.daemon.accept import accept_config
from haipvs.daemon.check import check_config_command
from haipvs.ipvs import FakeIpvsKernel
from haipvs.status.api import ReloadOutcome
from haipvs.supervisor import Supervisor

# The valid-config generator lives beside the config tests.
sys.path.insert(0, str(Path(__file__).parents[1] / "config"))
from config_strategies import configs

CORPUS = sorted((Path(__file__).parents[1] / "config" / "invalid").glob("*.yaml"))
INTERFACES = ("eth0", "eth1", "bond0.10")


def check(path: Path, host: FakeHost) -> tuple[int, list[str]]:
    out = io.StringIO()
    status = check_config_command(str(path), out, host=host)
    lines = out.getvalue().splitlines()
    # The refusals; warnings are printed after them (and logged by the daemon).
    return status, [line for line in lines if ": warning: " not in line]


def supervisor(path: Path, host: FakeHost) -> Supervisor:
    return Supervisor(
        str(path), kernel=FakeIpvsKernel(), vrrp_factory=FakeVrrpPart, host=host,
        prober=checkers.ScriptedProber(default=checkers.ProbeResult(True, "ok", 0.001)),
    )


async def start_verdict(path: Path, host: FakeHost) -> tuple[int, list[str]]:
    """What the daemon says at start: 1 with its stderr lines, or 0 once it runs."""
    daemon = supervisor(path, host)
    err = io.StringIO()
    with contextlib.redirect_stderr(err):
        task = asyncio.create_task(daemon.run())
        await until(lambda: task.done() or daemon.running_config is not None)
        if not task.done():
            await until(lambda: daemon.programmer is not None)
            daemon.request_shutdown()
        status = await task
    return status, err.getvalue().splitlines()


def assert_agree(
    checked: tuple[int, list[str]], started: tuple[int, list[str]], reloaded: ReloadOutcome
) -> None:
    status, lines = checked
    if status == 0:
        assert started[0] == 0, started[1]
        assert reloaded.applied, reloaded.errors
    else:
        assert started == (1, lines)
        assert not reloaded.applied
        assert list(reloaded.errors) == lines


@contextlib.asynccontextmanager
async def running(tmp_path: Path, host: FakeHost) -> Any:
    """A daemon running a minimal good config; reloads read ``tmp_path/running.yaml``."""
    path = tmp_path / "running.yaml"
    path.write_text(f"director: {{name: lb1, api: '127.0.0.1:{free_port()}'}}\n")
    path.chmod(0o644)
    daemon = supervisor(path, host)
    task = asyncio.create_task(daemon.run())
    await until(lambda: daemon.programmer is not None)
    try:
        yield daemon, path
    finally:
        daemon.request_shutdown()
        await task


@pytest.mark.asyncio
async def test_the_corpus_gets_one_verdict_from_check_config_start_and_reload(
    tmp_path: Path,
) -> None:
    host = FakeHost(*INTERFACES)
    async with running(tmp_path, host) as (daemon, path):
        for candidate in CORPUS:
            path.write_text(candidate.read_text())
            checked = check(path, host)
            assert checked[0] == 1, candidate.name
            started = await start_verdict(path, host)
            reloaded = await daemon.reload()
            assert_agree(checked, started, reloaded)


def _safe_scripts(data: Any) -> Any:
    """The generator's scripts (/usr/local/bin/...) replaced by one that passes the
    script-safety rule on any host: a root-owned /bin/true."""
    if isinstance(data, dict):
        return {key: _safe_scripts(value) for key, value in data.items()}
    if isinstance(data, list):
        if data and isinstance(data[0], str) and data[0].startswith("/usr/local/bin/"):
            return ["/bin/true", *data[1:]]
        return [_safe_scripts(item) for item in data]
    return data


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/bin/true"),
                    reason="the safe-script variant needs a root-owned /bin/true")
@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(
    data=configs(),
    # Mostly one refusal reason at a time, so that accepted files come up too.
    present=st.one_of(st.just(set(INTERFACES)), st.sets(st.sampled_from(INTERFACES))),
    safe_scripts=st.sampled_from([True, True, True, False]),
    exposed_api=st.sampled_from([False, False, False, True]),
    world_writable=st.sampled_from([False, False, False, True]),
)
def test_generated_configs_get_one_verdict(
    tmp_path: Path,
    data: dict[str, Any],
    present: set[str],
    safe_scripts: bool,
    exposed_api: bool,
    world_writable: bool,
) -> None:
    host = FakeHost("lo", *present)
    if safe_scripts:
        data = _safe_scripts(data)
    director = dict(data.get("director", {}))
    # Never a real bind beyond loopback: the exposed variant has no token, so it is refused.
    director["api"] = f"0.0.0.0:{free_port()}" if exposed_api else f"127.0.0.1:{free_port()}"
    data = {**data, "director": director}

    async def verdicts() -> None:
        async with running(tmp_path, host) as (daemon, path):
            path.write_text(yaml.safe_dump(data, sort_keys=False))
            path.chmod(0o646 if world_writable else 0o644)
            checked = check(path, host)
            event("accepted" if checked[0] == 0 else "refused")
            started = await start_verdict(path, host)
            reloaded = await daemon.reload()
            assert_agree(checked, started, reloaded)
            path.chmod(0o644)

    asyncio.run(verdicts())


def test_a_missing_interface_is_a_located_error(tmp_path: Path) -> None:
    path = tmp_path / "haipvs.yaml"
    path.write_text(
        "vrrp:\n"
        "  - name: VI_1\n"
        "    interface: eth7\n"
        "    vrid: 51\n"
        "    vips: [198.51.100.10/24]\n"
    )
    path.chmod(0o644)
    with pytest.raises(Exception) as refused:
        accept_config(str(path), host=FakeHost("eth0"))
    assert [str(error) for error in refused.value.errors] == [  # type: ignore[attr-defined]
        f"{path}:3: vrrp[0].interface: no interface eth7 on this host"
    ]
    assert accept_config(str(path), offline=True).config.vrrp[0].interface == "eth7"


def test_a_virtual_route_through_a_missing_device_is_a_located_error(tmp_path: Path) -> None:
    # The kernel refuses a route to a device it lacks (ENODEV): the route would fail at
    # every takeover, so the gate refuses it where it is written, as it does an interface.
    path = tmp_path / "haipvs.yaml"
    path.write_text(
        "vrrp:\n"
        "  - name: VI_1\n"
        "    interface: eth0\n"
        "    vrid: 51\n"
        "    vips: [198.51.100.10/24]\n"
        "    routes:\n"
        "      - to: 203.0.113.0/24\n"
        "        dev: eth7\n"
        "      - to: 192.0.2.0/24\n"
        "        nexthops:\n"
        "          - via: 198.51.100.1\n"
        "            dev: eth0\n"
        "          - via: 198.51.100.2\n"
        "            dev: eth8\n"
    )
    path.chmod(0o644)
    with pytest.raises(Exception) as refused:
        accept_config(str(path), host=FakeHost("eth0"))
    assert [str(error) for error in refused.value.errors] == [  # type: ignore[attr-defined]
        f"{path}:8: vrrp[0].routes[0].dev: no interface eth7 on this host",
        f"{path}:14: vrrp[0].routes[1].nexthops[1].dev: no interface eth8 on this host",
    ]


def test_a_route_through_the_instances_own_vmac_is_not_asked_of_the_host(
        tmp_path: Path) -> None:
    # The macvlan `vmac` names is created by the daemon when the instance starts.
    path = tmp_path / "haipvs.yaml"
    path.write_text(
        "vrrp:\n"
        "  - name: VI_1\n"
        "    interface: eth0\n"
        "    vrid: 51\n"
        "    vips: [198.51.100.10/24]\n"
        "    vmac: {}\n"
        "    routes:\n"
        "      - to: 203.0.113.0/24\n"
        "        dev: vrrp.51\n"
    )
    path.chmod(0o644)
    accepted = accept_config(str(path), host=FakeHost("eth0"))
    assert accepted.config.vrrp[0].routes[0].dev == "vrrp.51"
