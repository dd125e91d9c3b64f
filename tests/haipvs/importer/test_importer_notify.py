"""keepalived's notify scripts through the importer: the generic ``notify`` becomes
``notify.any`` (instance and sync group), and a script line's ``username [groupname]``
words (lib/notify.c notify_script_init) are dropped with a finding, never run as argv."""

from __future__ import annotations

import io
from pathlib import Path

from haipvs.config import load_config_text
from haipvs.importer import Severity, Translation, parse_text, render_yaml, run_import, translate


def convert(text: str) -> Translation:
    return translate(parse_text(text, "k.conf"), "k.conf")


def located(t: Translation, severity: Severity) -> list[tuple[int, str, str]]:
    return [
        (f.location.line, f.keyword, f.message) for f in t.findings if f.severity is severity
    ]


INSTANCES = (
    "vrrp_instance VI_1 {{\n"
    " interface eth0\n"
    " virtual_router_id 51\n"
    " virtual_ipaddress {{\n  192.0.2.1\n }}\n"
    "{notify}"
    "}}\n"
    "vrrp_instance VI_2 {{\n"
    " interface eth0\n"
    " virtual_router_id 52\n"
    " virtual_ipaddress {{\n  192.0.2.2\n }}\n"
    "}}\n"
)


def test_the_generic_notify_of_an_instance_becomes_notify_any() -> None:
    t = convert(
        INSTANCES.format(
            notify=' notify_master /etc/keepalived/master.sh\n'
            ' notify "/etc/keepalived/notify.sh extra"\n'
        )
    )
    assert t.complete
    assert t.config["vrrp"][0]["notify"] == {
        "master": ["/etc/keepalived/master.sh"],
        "any": ["/etc/keepalived/notify.sh", "extra"],
    }
    assert located(t, Severity.DROPPED) == []
    config = load_config_text(render_yaml(t), "imported.yaml").config
    assert config.vrrp[0].notify.any == ("/etc/keepalived/notify.sh", "extra")


def test_username_and_groupname_words_are_dropped_with_a_finding() -> None:
    t = convert(
        INSTANCES.format(
            notify=' notify "/etc/keepalived/notify.sh extra" keepalived_script\n'
            " notify_backup /usr/local/bin/notify backup\n"
        )
        + "vrrp_sync_group G1 {\n group {\n  VI_1\n  VI_2\n }\n"
        " notify /etc/keepalived/group.sh root wheel\n}\n"
    )
    assert t.complete
    notify = t.config["vrrp"][0]["notify"]
    # keepalived runs `/usr/local/bin/notify` as the user `backup`: not with `backup` as $1.
    assert notify == {
        "any": ["/etc/keepalived/notify.sh", "extra"],
        "backup": ["/usr/local/bin/notify"],
    }
    assert t.config["sync_groups"][0]["notify"] == {"any": ["/etc/keepalived/group.sh"]}
    why = "scripts run as haipvs's user (set User= in the systemd unit if needed)"
    assert located(t, Severity.DROPPED) == [
        (7, "notify", f"run as 'keepalived_script' (keepalived's username [groupname]): {why}"),
        (8, "notify_backup", f"run as 'backup' (keepalived's username [groupname]): {why}"),
        (22, "notify", f"run as 'root wheel' (keepalived's username [groupname]): {why}"),
    ]


def test_a_config_with_generic_notify_scripts_imports_with_exit_0(tmp_path: Path) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text(
        INSTANCES.format(notify=" notify /etc/keepalived/notify.sh\n")
        + "vrrp_sync_group G1 {\n group {\n  VI_1\n  VI_2\n }\n"
        ' notify "/etc/keepalived/notify.sh group"\n}\n'
    )
    out, err = io.StringIO(), io.StringIO()
    assert run_import(str(conf), out, err) == 0, err.getvalue()
    config = load_config_text(out.getvalue(), "imported.yaml").config
    assert config.vrrp[0].notify.any == ("/etc/keepalived/notify.sh",)
    assert config.sync_groups[0].notify.any == ("/etc/keepalived/notify.sh", "group")
    assert "unsupported" not in err.getvalue().split("haipvs import-keepalived:")[0]
