"""`haipvs status` against a real status API on loopback, run as the operator runs it."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from status_sample import sample_snapshot
from support import free_port

from haipvs.status.api import ReloadOutcome, StatusApi
from haipvs.status.command import (
    EXIT_API_ERROR,
    EXIT_UNREACHABLE,
    EXIT_USAGE,
    resolve_target,
)

TOKEN = "s3cret-token"


async def _no_reload() -> ReloadOutcome:
    return ReloadOutcome(False, ("not in this test",), "")


@pytest.fixture
async def api() -> AsyncIterator[int]:
    port = free_port()
    server = StatusApi(f"127.0.0.1:{port}", snapshot=sample_snapshot, reload=_no_reload,
                       token=TOKEN)
    await server.start()
    yield port
    await server.stop()


def write_config(path: Path, api: str, token: str | None) -> Path:
    path.write_text(
        "director:\n  name: lb-test\n"
        f"  api: {api}\n" + (f"  api_token: {token}\n" if token else "")
        + "virtual_servers: [ {this part: is broken} ]\n"
    )
    return path


async def status(*args: str, env: dict[str, str] | None = None) -> tuple[int, str, str]:
    environ = {k: v for k, v in os.environ.items()
               if k.lower() not in ("http_proxy", "no_proxy", "haipvs_api_token", "haipvs_api")}
    # A proxy that does not exist: a request that went through it would fail.
    dead = f"http://127.0.0.1:{free_port()}"
    environ.update(http_proxy=dead, HTTP_PROXY=dead, **(env or {}))
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "haipvs", "status", *args, env=environ,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()


async def test_the_config_gives_address_and_token_and_http_proxy_is_not_used(
    api: int, tmp_path: Path
) -> None:
    config = write_config(tmp_path / "haipvs.yaml", f"127.0.0.1:{api}", TOKEN)
    code, out, err = await status("--config", str(config), "--json")
    assert (code, err) == (0, "")
    assert json.loads(out)["director"] == "lb-test"
    code, out, _ = await status("--config", str(config))
    assert code == 0 and "10.0.0.12:80" in out and "VI_PUBLIC" in out


async def test_a_401_says_where_the_token_comes_from(api: int, tmp_path: Path) -> None:
    config = write_config(tmp_path / "haipvs.yaml", f"127.0.0.1:{api}", None)
    code, out, err = await status("--config", str(config))
    assert code == EXIT_API_ERROR and out == ""
    assert err.count("\n") == 1
    assert "(401)" in err and "--token" in err and "$HAIPVS_API_TOKEN" in err
    assert f"127.0.0.1:{api}" in err
    code, _, err = await status("--config", str(config), env={"HAIPVS_API_TOKEN": "wrong"})
    assert code == EXIT_API_ERROR and "the token from $HAIPVS_API_TOKEN is not" in err
    code, _, _ = await status("--config", str(config), env={"HAIPVS_API_TOKEN": TOKEN})
    assert code == 0


async def test_connection_refused_is_one_line_naming_the_address(tmp_path: Path) -> None:
    port = free_port()
    code, out, err = await status("--api", f"127.0.0.1:{port}",
                                  "--config", str(write_config(tmp_path / "c.yaml",
                                                               "127.0.0.1:9", None)))
    assert code == EXIT_UNREACHABLE and out == ""
    assert err == (
        f"haipvs status: cannot reach the status API at 127.0.0.1:{port}: connection refused: "
        "is haipvs running (systemctl status haipvs), and is director.api this address?\n"
    )


async def test_usage_errors_exit_2_and_differ_from_unreachable(tmp_path: Path) -> None:
    code, _, err = await status("--config", str(tmp_path / "missing.yaml"))
    assert code == EXIT_USAGE and "missing.yaml does not exist" in err
    bad = tmp_path / "bad.yaml"
    bad.write_text("director:\n  api: not-an-address\n")
    code, _, err = await status("--config", str(bad))
    assert code == EXIT_USAGE and "bad.yaml" in err and "director.api" in err
    code, _, _ = await status("--no-such-option")
    assert code == EXIT_USAGE
    assert EXIT_UNREACHABLE != EXIT_USAGE


def test_flags_beat_environment_beat_config_and_a_wildcard_bind_is_reached_on_loopback(
    tmp_path: Path,
) -> None:
    config = str(write_config(tmp_path / "haipvs.yaml", "0.0.0.0:9797", "from-config"))
    target = resolve_target(api=None, token=None, config=config, environ={})
    assert (target.address, target.connect, target.token) == (
        "0.0.0.0:9797", "127.0.0.1:9797", "from-config")
    assert target.token_source == f"director.api_token in {config}"
    target = resolve_target(api=None, token=None, config=config,
                            environ={"HAIPVS_API": "[::]:1", "HAIPVS_API_TOKEN": "env"})
    assert (target.connect, target.token) == ("[::1]:1", "env")
    target = resolve_target(api="10.1.1.1:2", token="flag", config=config,
                            environ={"HAIPVS_API": "[::]:1", "HAIPVS_API_TOKEN": "env"})
    assert (target.connect, target.token, target.token_source) == ("10.1.1.1:2", "flag",
                                                                   "--token")
