"""The generic notify hook (``notify.any``, keepalived's ``notify``) through the config:
compiled into the VRRP settings, and refused by the script-safety gate at its line."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from support import FakeHost

from haipvs.config.load import ConfigInvalid
from haipvs.daemon.accept import accept_config, script_paths
from haipvs.security import script_commands, unsafe_paths

CONFIG = """\
vrrp:
  - name: VI_1
    interface: eth0
    vrid: 51
    vips: [198.51.100.10/24]
    notify:
      any: [{instance_script}, extra]
  - name: VI_2
    interface: eth0
    vrid: 52
    vips: [198.51.100.11/24]
sync_groups:
  - name: G1
    instances: [VI_1, VI_2]
    notify:
      master: [/bin/true]
      any: [{group_script}]
"""


def write(tmp_path: Path, instance_script: str, group_script: str) -> Path:
    path = tmp_path / "haipvs.yaml"
    path.write_text(CONFIG.format(instance_script=instance_script, group_script=group_script))
    path.chmod(0o644)
    return path


def test_the_generic_hook_reaches_the_instance_and_the_group_settings(tmp_path: Path) -> None:
    path = write(tmp_path, "/usr/local/bin/notify", "/usr/local/bin/group-notify")
    accepted = accept_config(str(path), offline=True)
    first, second = accepted.compiled.instances
    # Only the generic hook configured: the instance still has notify settings.
    assert first.notify is not None
    assert first.notify.any == ("/usr/local/bin/notify", "extra")
    assert first.notify.master is None
    assert second.notify is None
    for member in (first, second):
        assert member.sync_group_notify is not None
        assert member.sync_group_notify.any == ("/usr/local/bin/group-notify",)
        assert member.sync_group_notify.master == ("/bin/true",)
    assert [key for key, _argv in script_paths(accepted.config)] == [
        ("vrrp", 0, "notify", "any"),
        ("sync_groups", 0, "notify", "master"),
        ("sync_groups", 0, "notify", "any"),
    ]
    # The compiled side's list (the gate's backstop for a command no key path names).
    assert script_commands(accepted.compiled.instances, ()) == [
        ("/usr/local/bin/notify", "extra"),
        ("/bin/true",),
        ("/usr/local/bin/group-notify",),
        ("/bin/true",),
        ("/usr/local/bin/group-notify",),
    ]


@pytest.mark.skipif(os.geteuid() != 0 or not os.path.exists("/bin/true"),
                    reason="the safe hook needs a root-owned /bin/true")
def test_an_unsafe_generic_hook_is_refused_at_its_line(tmp_path: Path) -> None:
    scripts = tmp_path / "scripts"
    scripts.mkdir(mode=0o755)
    unsafe = []
    for name in ("notify.sh", "group-notify.sh"):
        script = scripts / name
        script.write_text("#!/bin/sh\n")
        script.chmod(0o777)  # anyone may change what would run as root
        unsafe.append(str(script))
    path = write(tmp_path, *unsafe)
    with pytest.raises(ConfigInvalid) as refused:
        accept_config(str(path), host=FakeHost("eth0"))
    instance_message, group_message = (unsafe_paths([(script,)])[0] for script in unsafe)
    assert "writable" in instance_message
    assert [str(error) for error in refused.value.errors] == [
        f"{path}:7: vrrp[0].notify.any: {instance_message}",
        f"{path}:17: sync_groups[0].notify.any: {group_message}",
    ]
    # The same file with safe scripts passes the gate.
    safe = write(tmp_path, "/bin/true", "/bin/true")
    assert accept_config(str(safe), host=FakeHost("eth0")).compiled.instances[0].notify
