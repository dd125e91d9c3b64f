"""`haipvs run`: what the entry point does before the supervisor runs."""

from __future__ import annotations

import argparse
import signal

import pytest

import haipvs.supervisor as supervisor_module


def test_a_starting_daemon_ignores_sighup_until_its_handler_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # SIGHUP's default action kills: the nemesis saw a `systemctl reload` end a daemon
    # that was still reading its config. run() installs the real handler later.
    seen: list[object] = []

    async def starting(self: object) -> int:
        seen.append(signal.getsignal(signal.SIGHUP))
        return 0

    monkeypatch.setattr(supervisor_module.Supervisor, "run", starting)
    previous = signal.getsignal(signal.SIGHUP)
    try:
        assert supervisor_module.run_command(argparse.Namespace(config="/nonexistent")) == 0
    finally:
        signal.signal(signal.SIGHUP, previous)
    assert seen == [signal.SIG_IGN]
