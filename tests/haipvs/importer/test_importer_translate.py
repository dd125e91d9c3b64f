"""keepalived.conf -> haipvs YAML: what each keyword becomes, and what is reported."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import pytest

from haipvs.config import load_config_text
from haipvs.importer import (
    Finding,
    Severity,
    Translation,
    parse_text,
    render_yaml,
    run_import,
    translate,
)


def convert(text: str) -> Translation:
    return translate(parse_text(text, "k.conf"), "k.conf")


def findings(t: Translation, severity: Severity) -> list[tuple[int, str]]:
    return [(f.location.line, f.keyword) for f in t.findings if f.severity is severity]


def validated(t: Translation) -> Any:
    """The rendered YAML must load with the config package, as check-config reads it."""
    return load_config_text(render_yaml(t), "imported.yaml").config


VRRP_PAIR = """\
global_defs {
    router_id lb1
}
vrrp_instance VI_WEB {
    state MASTER
    interface eth0
    virtual_router_id 51
    priority 150
    advert_int 1
    nopreempt
    preempt_delay 5
    virtual_ipaddress {
        198.51.100.10/24
        10.0.0.1/24 dev eth1
    }
    unicast_src_ip 192.0.2.1
    unicast_peer {
        192.0.2.2
    }
    notify_master "/usr/local/bin/notify master"
    notify_backup "/usr/local/bin/notify backup"
}
"""


def test_vrrp_instance_maps_onto_the_model() -> None:
    t = convert(VRRP_PAIR)
    assert t.complete
    (instance,) = t.config["vrrp"]
    assert instance == {
        "name": "VI_WEB",
        "interface": "eth0",
        "vrid": 51,
        "priority": 150,
        "version": 2,  # keepalived's default, written out (haipvs defaults to 3)
        "advert_interval": 1,
        "preempt": False,
        "preempt_delay": 5,
        "unicast_source": "192.0.2.1",
        "unicast_peers": ["192.0.2.2"],
        "vips": ["198.51.100.10/24", {"address": "10.0.0.1/24", "interface": "eth1"}],
        "notify": {
            "master": ["/usr/local/bin/notify", "master"],
            "backup": ["/usr/local/bin/notify", "backup"],
        },
    }
    assert t.config["director"] == {"name": "lb1"}
    assert findings(t, Severity.NOTE) == [(5, "state")]
    config = validated(t)
    assert config.vrrp[0].preempt is False
    assert config.director.name == "lb1"


def test_vrrp_version_and_default_interface_from_global_defs() -> None:
    t = convert(
        "global_defs {\n vrrp_version 3\n default_interface bond0\n}\n"
        "vrrp_instance A {\n virtual_router_id 7\n advert_int 0.5\n"
        " virtual_ipaddress {\n 2001:db8::10\n }\n}\n"
    )
    (instance,) = t.config["vrrp"]
    assert (instance["interface"], instance["version"], instance["advert_interval"]) == (
        "bond0",
        3,
        0.5,
    )
    assert instance["vips"] == ["2001:db8::10"]
    validated(t)


def test_priority_255_is_the_address_owner() -> None:
    t = convert(
        "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n priority 255\n"
        " virtual_ipaddress {\n 192.0.2.1\n }\n}\n"
    )
    assert t.config["vrrp"][0]["address_owner"] is True
    validated(t)


def test_positive_track_weights_are_folded_into_the_priority() -> None:
    text = """\
vrrp_script chk_proxy {
    script "/usr/local/bin/check-proxy --deep"
    interval 2
    weight 10
    rise 2
    fall 3
}
vrrp_instance A {
    interface eth0
    virtual_router_id 9
    priority 100
    virtual_ipaddress {
        192.0.2.1
    }
    track_interface {
        eth1 weight 5
        eth2 weight -20
        eth3
    }
    track_script {
        chk_proxy
    }
}
"""
    t = convert(text)
    (instance,) = t.config["vrrp"]
    # keepalived: 100 + 5 (eth1 up) + 10 (script ok) = 115 when all is well;
    # haipvs: base 115, minus the same weights while down.
    assert instance["priority"] == 115
    assert instance["track"] == {
        "interfaces": [
            {"name": "eth1", "weight": -5},
            {"name": "eth2", "weight": -20},
            {"name": "eth3", "weight": 0},  # 0: FAULT while down, as keepalived
        ],
        "scripts": [
            {
                "name": "chk_proxy",
                "command": ["/usr/local/bin/check-proxy", "--deep"],
                "interval": 2,
                "weight": -10,
                "rise": 2,
                "fall": 3,
            }
        ],
    }
    assert (8, "vrrp_instance") in findings(t, Severity.NOTE)
    validated(t)


def test_folded_priority_is_capped_at_254_like_keepalived() -> None:
    t = convert(
        "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n priority 250\n"
        " virtual_ipaddress {\n 192.0.2.1\n }\n track_interface {\n eth1 weight 10\n }\n}\n"
    )
    assert t.config["vrrp"][0]["priority"] == 254
    (note,) = [f for f in t.findings if f.keyword == "vrrp_instance"]
    assert "caps 260 at 254" in note.message


def test_track_script_weight_override_and_shell_and_path_lookup() -> None:
    text = """\
vrrp_script chk_port {
    script "</dev/tcp/127.0.0.1/80"
    weight -2
}
vrrp_script chk_proc {
    script "killall -0 sshd"
    timeout 5
    interval 2
}
vrrp_instance A {
    interface eth0
    virtual_router_id 1
    virtual_ipaddress {
        192.0.2.1
    }
    track_script {
        chk_port weight -7
        chk_proc
    }
}
"""
    t = convert(text)
    scripts = t.config["vrrp"][0]["track"]["scripts"]
    assert scripts[0]["command"] == ["/bin/bash", "-c", "</dev/tcp/127.0.0.1/80"]
    assert scripts[0]["weight"] == -7
    # `killall -0 sshd` asks only whether sshd runs: a native track_process.
    assert len(scripts) == 1
    assert t.config["vrrp"][0]["track"]["processes"] == [
        {"name": "chk_proc", "process": "sshd", "interval": 2, "weight": 0}
    ]
    assert findings(t, Severity.NOTE) == [(2, "script"), (5, "vrrp_script"), (6, "script")]
    validated(t)


PROCESS_TRACKING = """\
vrrp_script chk_haproxy {
    script "killall -0 haproxy"
    interval 2
    rise 2
    fall 3
}
vrrp_script chk_nginx {
    script "/usr/bin/pgrep nginx"
}
vrrp_script chk_many {
    script "pgrep -f nginx"
}
vrrp_track_process track_sshd {
    process /usr/sbin/sshd -D
    param_match partial
    weight -10
    delay 1.5
}
track_file maint {
    file /run/keepalived/maint
    weight -5
}
vrrp_instance VI_1 {
    interface eth0
    virtual_router_id 51
    priority 100
    virtual_ipaddress {
        192.0.2.10/24
    }
    track_script {
        chk_haproxy
        chk_nginx weight 20
        chk_many weight -1
    }
    track_process {
        track_sshd
    }
    track_file {
        maint weight -7
    }
}
"""


def test_process_scripts_track_process_and_track_file_become_native_trackers() -> None:
    t = convert(PROCESS_TRACKING)
    assert t.complete
    (instance,) = t.config["vrrp"]
    assert instance["priority"] == 120  # chk_nginx's +20 folded, as for scripts
    track = instance["track"]
    assert track["scripts"][0]["command"] == ["/usr/bin/env", "pgrep", "-f", "nginx"]
    assert track["processes"] == [
        # rise/fall of a 2 s script: the same reaction time as delays.
        {
            "name": "chk_haproxy",
            "process": "haproxy",
            "interval": 2,
            "fork_delay": 2,
            "terminate_delay": 4,
            "weight": 0,
        },
        {"name": "chk_nginx", "process": "nginx", "interval": 1.0, "weight": -20},
        {
            "name": "track_sshd",
            "process": "/usr/sbin/sshd",
            "args": ["-D"],
            "param_match": "partial",
            "fork_delay": 1.5,
            "terminate_delay": 1.5,
            "weight": -10,
        },
    ]
    assert track["files"] == [{"name": "maint", "path": "/run/keepalived/maint", "weight": -7}]
    notes = {(f.location.line, f.message) for f in t.findings if f.severity is Severity.NOTE}
    assert (2, "`killall -0 haproxy` becomes track_process 'haproxy' (read from /proc)") in notes
    assert any("matches it exactly" in message for line, message in notes if line == 8)
    config = validated(t)
    assert [p.name for p in config.vrrp[0].track.processes] == [
        "chk_haproxy",
        "chk_nginx",
        "track_sshd",
    ]


def test_track_file_init_file_and_unknown_tracker_are_located() -> None:
    t = convert(
        "track_file f {\n file /run/f\n init_file 0 overwrite\n}\n"
        "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n"
        " virtual_ipaddress {\n 192.0.2.1\n }\n track_file {\n f\n g\n }\n}\n"
    )
    assert findings(t, Severity.UNSUPPORTED) == [(3, "init_file"), (13, "g")]


def test_authentication_and_use_ipvlan_fail_the_import_and_routes_translate() -> None:
    text = """\
vrrp_instance A {
    interface eth0
    virtual_router_id 1
    use_ipvlan private
    authentication {
        auth_type AH
        auth_pass secret
    }
    virtual_ipaddress {
        192.0.2.1
    }
    virtual_routes {
        10.1.0.0/16 via 192.0.2.254
    }
}
"""
    t = convert(text)
    assert not t.complete
    assert findings(t, Severity.UNSUPPORTED) == [(4, "use_ipvlan"), (5, "authentication")]
    assert t.config["vrrp"][0]["routes"] == [{"to": "10.1.0.0/16", "via": "192.0.2.254"}]
    # The rest still translates and validates, with the reasons as comments beside it.
    text_out = render_yaml(t)
    assert "#   k.conf:4: unsupported: use_ipvlan:" in text_out
    validated(t)


def test_unknown_keyword_is_unsupported_never_ignored() -> None:
    t = convert(
        "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n frobnicate yes\n"
        " virtual_ipaddress {\n 192.0.2.1\n }\n}\nmystery_block {\n}\n"
    )
    assert findings(t, Severity.UNSUPPORTED) == [(4, "frobnicate"), (9, "mystery_block")]
    assert "not known to the importer in vrrp_instance" in str(t.unsupported[0])


def test_mail_and_process_tuning_are_dropped_with_reasons() -> None:
    t = convert(
        "global_defs {\n notification_email {\n ops@example.org\n }\n smtp_server 192.0.2.25\n"
        " vrrp_iptables\n script_user nobody\n}\n"
    )
    assert t.complete
    assert findings(t, Severity.DROPPED) == [
        (2, "notification_email"),
        (5, "smtp_server"),
        (6, "vrrp_iptables"),
        (7, "script_user"),
    ]
    assert "e-mail alerts" in t.findings[0].message


def test_duplicate_vip_is_kept_once() -> None:
    t = convert(
        "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n virtual_ipaddress {\n"
        " 192.0.2.1\n 192.0.2.1 label eth0:1\n }\n}\n"
    )
    assert t.config["vrrp"][0]["vips"] == ["192.0.2.1"]
    assert (6, "192.0.2.1") in findings(t, Severity.NOTE)
    assert (6, "192.0.2.1") in findings(t, Severity.DROPPED)  # the label
    validated(t)


def test_sync_group_of_two_instances() -> None:
    text = """\
vrrp_sync_group G1 {
    group {
        VI_A
        VI_B
    }
}
vrrp_instance VI_A {
    interface eth0
    virtual_router_id 1
    virtual_ipaddress {
        192.0.2.1
    }
}
vrrp_instance VI_B {
    interface eth1
    virtual_router_id 2
    virtual_ipaddress {
        10.0.0.1/24
    }
}
"""
    t = convert(text)
    assert t.complete
    assert t.config["sync_groups"] == [{"name": "G1", "instances": ["VI_A", "VI_B"]}]
    assert validated(t).sync_groups[0].instances == ("VI_A", "VI_B")


def test_sync_group_notify_scripts_become_the_groups_notify() -> None:
    t = convert(
        "vrrp_sync_group G {\n group {\n A\n B\n }\n notify_master /bin/true\n"
        ' notify_fault "/usr/local/bin/alert fault"\n notify /usr/local/bin/any\n}\n'
        "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n"
        " virtual_ipaddress {\n 192.0.2.1\n }\n}\n"
        "vrrp_instance B {\n interface eth0\n virtual_router_id 2\n"
        " virtual_ipaddress {\n 192.0.2.2\n }\n}\n"
    )
    assert t.config["sync_groups"] == [
        {
            "name": "G",
            "instances": ["A", "B"],
            "notify": {
                "master": ["/bin/true"],
                "fault": ["/usr/local/bin/alert", "fault"],
                "any": ["/usr/local/bin/any"],  # the generic script
            },
        }
    ]
    assert t.complete and findings(t, Severity.UNSUPPORTED) == []
    config = validated(t)
    assert config.sync_groups[0].notify.master == ("/bin/true",)
    assert config.sync_groups[0].notify.any == ("/usr/local/bin/any",)


def test_notify_scripts_of_a_group_of_one_are_not_lost_silently() -> None:
    t = convert(
        "vrrp_sync_group G {\n group {\n A\n }\n notify_master /bin/true\n}\n"
        "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n"
        " virtual_ipaddress {\n 192.0.2.1\n }\n}\n"
    )
    assert "sync_groups" not in t.config  # one member synchronises nothing
    assert (1, "vrrp_sync_group") in findings(t, Severity.NOTE)
    assert findings(t, Severity.UNSUPPORTED) == [(1, "vrrp_sync_group")]


VIRTUAL_SERVER = """\
virtual_server 198.51.100.10 80 {
    delay_loop 6
    lb_algo wrr
    lb_kind DR
    persistence_timeout 300
    persistence_granularity 255.255.255.0
    protocol TCP
    quorum 2
    hysteresis 1
    sorry_server 10.0.0.250 80
    alpha
    real_server 10.0.0.11 80 {
        weight 2
        inhibit_on_failure
        HTTP_GET {
            url {
                path /healthz
                status_code 200-202 204
            }
            connect_timeout 2
            retry 2
            delay_before_retry 1
        }
    }
    real_server 10.0.0.12 80 {
        weight 1
        HTTP_GET {
            url {
                path /healthz
                status_code 200-202 204
            }
            connect_timeout 2
            retry 2
            delay_before_retry 1
        }
    }
}
"""


def test_virtual_server_with_a_shared_check() -> None:
    t = convert(VIRTUAL_SERVER)
    assert t.complete
    (service,) = t.config["virtual_servers"]
    assert service == {
        "vip": "198.51.100.10",
        "port": 80,
        "protocol": "tcp",
        "scheduler": "wrr",
        "forwarding": "dr",
        "persistence": {"timeout": 300, "netmask": "255.255.255.0"},
        "quorum": {"min_weight": 2, "hysteresis": 1},  # keepalived sums live weights
        "sorry_server": "10.0.0.250:80",
        "inhibit_on_failure": True,
        # identical checks on every real server become the service's default
        "check": {
            "type": "http",
            "path": "/healthz",
            "expect_status": ["200-202", 204],
            "interval": 6.0,
            "timeout": 2.0,
            "rise": 1,
            "fall": 3,  # the first failure plus `retry 2` (keepalived check_http.c)
            "fast_interval": 1.0,
            "alpha": True,
        },
        "real_servers": [
            {"address": "10.0.0.11", "weight": 2},
            {"address": "10.0.0.12", "weight": 1},
        ],
    }
    config = validated(t)
    assert config.virtual_servers[0].persistence.netmask == 24


def test_different_checks_stay_on_their_real_servers() -> None:
    text = """\
virtual_server fwmark 7 {
    lb_algo rr
    real_server 10.0.0.11 {
        TCP_CHECK {
            connect_port 8080
            connect_timeout 3
        }
    }
    real_server 10.0.0.12 9000 {
        MISC_CHECK {
            misc_path "/usr/local/bin/check 10.0.0.12"
            misc_dynamic
        }
    }
    real_server 10.0.0.13 9000 {
    }
}
"""
    t = convert(text)
    assert t.complete
    (service,) = t.config["virtual_servers"]
    assert service["fwmark"] == 7
    assert "check" not in service
    first, second, third = service["real_servers"]
    assert first["check"] == {
        "type": "tcp",
        "port": 8080,
        "interval": 60.0,
        "timeout": 3.0,
        "rise": 1,
        "fall": 2,
        "alpha": False,  # keepalived without `alpha`: up until the first result
    }
    assert second["check"]["command"] == ["/usr/local/bin/check", "10.0.0.12"]
    assert second["check"]["dynamic"] is True
    assert second["check"]["timeout"] == 60.0  # misc_timeout defaults to delay_loop
    assert "check" not in third  # no checker: always up, in keepalived and haipvs
    assert (15, "real_server") in findings(t, Severity.NOTE)
    validated(t)


def test_virtual_server_group_expands_ranges_and_fwmarks() -> None:
    text = """\
virtual_server_group G {
    192.0.2.3-5 80
    2001:db8::a-b 80
    fwmark 9
}
virtual_server group G {
    lb_algo rr
    protocol TCP
    persistence_timeout 60
    real_server 10.0.0.11 80 {
        TCP_CHECK {
        }
    }
}
"""
    t = convert(text)
    services = t.config["virtual_servers"]
    assert [(s.get("vip"), s.get("port"), s.get("fwmark")) for s in services] == [
        ("192.0.2.3", 80, None),
        ("192.0.2.4", 80, None),
        ("192.0.2.5", 80, None),
        ("2001:db8::a", 80, None),
        ("2001:db8::b", 80, None),
        (None, None, 9),
    ]
    assert (1, "virtual_server_group") in findings(t, Severity.NOTE)


def test_group_ranges_that_are_too_large_or_backwards_are_unsupported() -> None:
    t = convert(
        "virtual_server_group G {\n 192.0.2.9-3 80\n 10.0.0.x 80\n}\n"
        "virtual_server group G {\n}\nvirtual_server group H {\n}\n"
    )
    assert findings(t, Severity.UNSUPPORTED) == [
        (2, "192.0.2.9-3"),
        (3, "10.0.0.x"),
        (7, "virtual_server"),
    ]
    assert t.config["virtual_servers"] == []


def test_unused_group_and_script_are_noted() -> None:
    t = convert(
        "virtual_server_group G {\n 192.0.2.1 80\n}\nvrrp_script s {\n script /bin/true\n}\n"
    )
    assert findings(t, Severity.NOTE) == [(1, "virtual_server_group"), (4, "vrrp_script")]


def test_https_digest_and_a_second_url() -> None:
    t = convert(
        "virtual_server 192.0.2.1 443 {\n real_server 10.0.0.1 443 {\n SSL_GET {\n url {\n"
        " path /\n digest 0123456789ABCDEF0123456789abcdef\n }\n url {\n path /b\n }\n }\n }\n}\n"
    )
    assert t.complete
    check = t.config["virtual_servers"][0]["check"]
    assert check["type"] == "https"
    assert check["digest"] == "0123456789abcdef0123456789abcdef"
    # without status_code keepalived accepts any 2xx: haipvs's default, so not written
    assert "expect_status" not in check
    assert findings(t, Severity.DROPPED) == [(8, "url")]
    assert findings(t, Severity.NOTE) == []
    assert validated(t).virtual_servers[0].check.expect_status == ("200-299",)


def test_vrrp2_password_is_kept_for_the_keepalived_peer() -> None:
    base = (
        "vrrp_instance A {{\n interface eth0\n virtual_router_id 1\n version {version}\n"
        " authentication {{\n auth_type PASS\n auth_pass {password}\n }}\n"
        " virtual_ipaddress {{\n 192.0.2.1\n }}\n}}\n"
    )
    t = convert(base.format(version=2, password="s3cret"))
    assert t.complete
    assert t.config["vrrp"][0]["auth_pass"] == "s3cret"
    assert validated(t).vrrp[0].auth_pass == "s3cret"
    long = convert(base.format(version=2, password="longer-than-8"))
    assert long.config["vrrp"][0]["auth_pass"] == "longer-t"  # keepalived sends 8 octets
    assert (7, "auth_pass") in findings(long, Severity.NOTE)
    v3 = convert(base.format(version=3, password="s3cret"))
    assert "auth_pass" not in v3.config["vrrp"][0]
    assert findings(v3, Severity.DROPPED) == [(5, "authentication")]
    validated(v3)


def test_smtp_check_becomes_smtp_and_other_hosts_are_unsupported() -> None:
    t = convert(
        "virtual_server 192.0.2.1 25 {\n real_server 10.0.0.1 25 {\n SMTP_CHECK {\n"
        " helo_name x\n host {\n connect_ip 10.9.9.9\n }\n }\n }\n}\n"
    )
    check = t.config["virtual_servers"][0]["check"]
    assert (check["type"], check["port"], check["helo_name"]) == ("smtp", 25, "x")
    assert findings(t, Severity.DROPPED) == []
    assert findings(t, Severity.UNSUPPORTED) == [(5, "host")]


def test_two_checkers_on_one_real_server_are_unsupported() -> None:
    t = convert(
        "virtual_server 192.0.2.1 53 {\n protocol UDP\n real_server 10.0.0.1 53 {\n"
        " PING_CHECK {\n }\n }\n real_server 10.0.0.2 53 {\n UDP_CHECK {\n }\n"
        " DNS_CHECK {\n name example.org\n }\n }\n}\n"
    )
    assert findings(t, Severity.UNSUPPORTED) == [(10, "DNS_CHECK")]
    rs = t.config["virtual_servers"][0]["real_servers"]
    assert rs[0]["check"]["type"] == "ping"
    assert rs[1]["check"]["type"] == "udp"


def test_quorum_scripts_and_global_ipvs_settings() -> None:
    t = convert(
        "global_defs {\n lvs_timeouts tcp 900 tcpfin 30 udp 60\n"
        " lvs_sync_daemon eth1 VI_1 id 5\n}\n"
        "virtual_server 192.0.2.1 80 {\n quorum 3\n quorum_up /bin/up\n"
        ' quorum_down "/usr/local/bin/withdraw 192.0.2.1"\n}\n'
    )
    assert t.config["ipvs"] == {
        "timeouts": {"tcp": 900, "tcpfin": 30, "udp": 60},
        "sync_daemon": {"interface": "eth1", "instance": "VI_1", "syncid": 5},
    }
    assert t.complete
    (service,) = t.config["virtual_servers"]
    assert service["quorum"] == {
        "min_weight": 3,
        "up": ["/bin/up"],
        "down": ["/usr/local/bin/withdraw", "192.0.2.1"],
    }


def test_render_puts_findings_beside_their_item_and_counts_them() -> None:
    t = convert(VRRP_PAIR + "virtual_server 198.51.100.10 80 {\n real_server 10.0.0.1 80 {\n}\n}\n")
    text = render_yaml(t)
    assert "# findings: 0 unsupported, 0 dropped, 2 note" in text
    lines = text.splitlines()
    vrrp_comment = lines.index("  # vrrp VI_WEB:")
    assert lines[vrrp_comment + 1].startswith("  #   k.conf:5: note: state:")
    assert lines[vrrp_comment + 2] == "  - name: VI_WEB"
    vs_comment = lines.index("  # virtual_server 198.51.100.10 80:")
    assert "note: real_server: no checker" in lines[vs_comment + 1]


def test_every_finding_string_has_file_line_severity_keyword() -> None:
    t = convert("global_defs {\n smtp_server 192.0.2.25\n}\n")
    (finding,) = t.findings
    assert isinstance(finding, Finding)
    assert str(finding).startswith("k.conf:2: dropped: smtp_server: ")


# --- the command ----------------------------------------------------------------------


def test_command_success_prints_yaml_and_warnings_apart(tmp_path: Path) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text(VRRP_PAIR)
    out, err = io.StringIO(), io.StringIO()
    assert run_import(str(conf), out, err) == 0
    assert out.getvalue().startswith(f"# haipvs configuration imported from {conf}")
    assert f"{conf}:5: note: state:" in err.getvalue()
    assert "0 unsupported, 0 dropped, 1 notes" in err.getvalue()
    load_config_text(out.getvalue(), "x.yaml")


def test_command_fails_with_the_list_of_unsupported_keywords(tmp_path: Path) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text(VRRP_PAIR.replace("    nopreempt\n", "    use_ipvlan private\n    nopreempt\n"))
    out, err = io.StringIO(), io.StringIO()
    assert run_import(str(conf), out, err) == 1
    assert f"{conf}:10: unsupported: use_ipvlan:" in err.getvalue()
    assert "resolve these keywords first: use_ipvlan" in err.getvalue()
    assert "name: VI_WEB" in out.getvalue()  # still printed, for review


def test_command_reports_syntax_errors_with_location(tmp_path: Path) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text("vrrp_instance A {\n")
    out, err = io.StringIO(), io.StringIO()
    assert run_import(str(conf), out, err) == 1
    assert out.getvalue() == ""
    assert err.getvalue().startswith(f"{conf}:1: error: block 'vrrp_instance' is not closed")


def test_command_refuses_output_that_does_not_validate_at_the_keepalived_line(
    tmp_path: Path,
) -> None:
    # A VRID keepalived would refuse too translates word for word and the config
    # package refuses it: the command must not exit 0, and the error points at the
    # keepalived block the item came from, not only at the output's line.
    conf = tmp_path / "keepalived.conf"
    conf.write_text(
        "global_defs {\n router_id a\n}\n"
        "vrrp_instance A {\n interface eth0\n virtual_router_id 300\n"
        " virtual_ipaddress {\n 192.0.2.1\n }\n}\n"
    )
    out, err = io.StringIO(), io.StringIO()
    assert run_import(str(conf), out, err) == 1
    assert "does not validate" in err.getvalue()
    (line,) = [x for x in err.getvalue().splitlines() if ": error: vrrp[0].vrid" in x]
    assert line.startswith(f"{conf}:4: error: vrrp[0].vrid: ")
    assert "<import>" not in err.getvalue()
    assert line.endswith(")") and "(output line " in line


def test_ipv6_instance_becomes_vrrpv3_as_keepalived_runs_it() -> None:
    t = convert(
        "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n"
        " virtual_ipaddress {\n 2001:db8::1/64\n }\n}\n"
    )
    (instance,) = t.config["vrrp"]
    assert instance["version"] == 3
    assert findings(t, Severity.NOTE) == [(1, "vrrp_instance")]
    assert t.complete
    validated(t)


def test_mixed_family_instance_is_refused_with_a_reason() -> None:
    t = convert(
        "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n"
        " virtual_ipaddress {\n 192.0.2.1\n 2001:db8::1\n }\n}\n"
    )
    assert findings(t, Severity.UNSUPPORTED) == [(1, "vrrp_instance")]
    assert "split it into an IPv4 and an IPv6 instance" in t.unsupported[0].message


def test_group_members_share_check_and_real_servers_through_yaml_anchors() -> None:
    t = convert(
        "virtual_server_group G {\n 10.0.0.1 80\n 10.0.0.2 80\n 10.0.0.3 80\n}\n"
        "virtual_server group G {\n lb_kind DR\n"
        " real_server 192.168.0.1 80 {\n  TCP_CHECK {\n   connect_timeout 2\n  }\n }\n}\n"
    )
    text = render_yaml(t)
    assert text.count("check: &group_G_check") == 1
    assert text.count("check: *group_G_check") == 2
    assert text.count("real_servers: &group_G_real_servers") == 1
    assert text.count("real_servers: *group_G_real_servers") == 2
    assert text.count("192.168.0.1") == 1
    services = validated(t).virtual_servers
    assert len(services) == 3
    assert services[0].real_servers == services[2].real_servers


def test_source_comments_are_carried_beside_their_item() -> None:
    t = convert(
        "# web pair, rack 3\nvrrp_instance A {\n interface eth0\n"
        " virtual_router_id 1   # agreed with the network team\n"
        " virtual_ipaddress {\n 192.0.2.1\n }\n}\n"
    )
    text = render_yaml(t)
    assert "  # | web pair, rack 3\n" in text
    assert "  # | virtual_router_id (line 4): agreed with the network team\n" in text
    validated(t)


def test_empty_include_pattern_is_noted() -> None:
    t = translate(parse_text("include /nonexistent-dir/*.conf\n", "k.conf"), "k.conf")
    assert [(f.keyword, f.severity) for f in t.findings] == [("include", Severity.NOTE)]


@pytest.mark.parametrize("config_id, priority", [(None, 100), ("high", 170)])
def test_command_config_id_selects_conditional_lines(
    tmp_path: Path, config_id: str | None, priority: int
) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text(
        "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n@high priority 170\n"
        " virtual_ipaddress {\n 192.0.2.1\n }\n}\n"
    )
    out, err = io.StringIO(), io.StringIO()
    assert run_import(str(conf), out, err, config_id=config_id) == 0
    config = load_config_text(out.getvalue(), "x.yaml").config
    assert config.vrrp[0].priority == priority


OLD_CHECKSUM = (
    "vrrp_instance A {{\n interface eth0\n virtual_router_id 1\n version {version}\n"
    " unicast_peer {{\n {peer}\n }}\n old_unicast_checksum{mode}\n"
    " virtual_ipaddress {{\n {vip}\n }}\n}}\n"
)


@pytest.mark.parametrize(("mode", "expected"), [("", "old"), (" never", "never")])
def test_old_unicast_checksum_becomes_unicast_checksum(mode: str, expected: str) -> None:
    t = convert(OLD_CHECKSUM.format(version=3, peer="192.0.2.2", mode=mode, vip="192.0.2.1"))
    assert t.complete
    assert findings(t, Severity.DROPPED) == []
    assert t.config["vrrp"][0]["unicast_checksum"] == expected
    assert validated(t).vrrp[0].unicast_checksum.value == expected


@pytest.mark.parametrize(
    ("version", "peer", "vip", "mode", "why"),
    [
        (2, "192.0.2.2", "192.0.2.1", "", "has no effect here"),  # keepalived's default v2
        (3, "fe80::2", "2001:db8::1", "", "has no effect here"),  # IPv6: kernel checksums
        (3, "192.0.2.2", "192.0.2.1", " sometimes", "unknown mode 'sometimes'"),
    ],
    ids=["vrrpv2", "ipv6", "unknown-mode"],
)
def test_old_unicast_checksum_without_effect_is_dropped(
    version: int, peer: str, vip: str, mode: str, why: str
) -> None:
    t = convert(OLD_CHECKSUM.format(version=version, peer=peer, mode=mode, vip=vip))
    assert t.complete
    assert findings(t, Severity.DROPPED) == [(8, "old_unicast_checksum")]
    assert why in t.findings[0].message
    assert "unicast_checksum" not in t.config["vrrp"][0]
    validated(t)


def test_old_unicast_checksum_on_a_multicast_instance_is_dropped() -> None:
    t = convert(
        "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n version 3\n"
        " old_unicast_checksum\n virtual_ipaddress {\n 192.0.2.1\n }\n}\n"
    )
    assert findings(t, Severity.DROPPED) == [(5, "old_unicast_checksum")]
    assert "unicast_checksum" not in t.config["vrrp"][0]
    validated(t)


def test_ping_check_becomes_the_native_ping_check() -> None:
    t = convert(
        "virtual_server 192.0.2.1 53 {\n protocol UDP\n delay_loop 4\n"
        " real_server 10.0.0.1 53 {\n  PING_CHECK {\n   retry 2\n   connect_timeout 2\n  }\n }\n"
        " real_server 10.0.0.2 53 {\n  PING_CHECK {\n   retry 2\n   connect_timeout 2\n  }\n }\n"
        "}\n"
    )
    assert t.complete
    (service,) = t.config["virtual_servers"]
    assert service["check"] == {
        "type": "ping",
        "interval": 4.0,
        "timeout": 2.0,
        "rise": 1,
        "fall": 3,
        "alpha": False,
    }
    validated(t)


def test_command_stops_at_a_missing_include_with_its_line(tmp_path: Path) -> None:
    conf = tmp_path / "keepalived.conf"
    conf.write_text("global_defs {\n router_id a\n}\ninclude services.conf\n")
    out, err = io.StringIO(), io.StringIO()
    assert run_import(str(conf), out, err) == 1
    assert out.getvalue() == ""  # never `virtual_servers: []` in place of the lost file
    assert err.getvalue() == (
        f"{conf}:4: error: include {tmp_path}/services.conf: no such file "
        "(the import would lose its content)\n"
    )


def test_a_vrrp_script_without_script_is_removed_as_keepalived_does() -> None:
    t = convert(
        "vrrp_script chk {\n interval 2\n}\n"
        "vrrp_instance A {\n interface eth0\n virtual_router_id 1\n"
        " virtual_ipaddress {\n 192.0.2.1\n }\n track_script {\n chk\n typo\n }\n}\n"
    )
    assert findings(t, Severity.DROPPED) == [(1, "vrrp_script"), (11, "chk")]
    assert findings(t, Severity.UNSUPPORTED) == [(12, "typo")]  # never defined: flagged
    assert "track" not in t.config["vrrp"][0]


def test_notify_fifo_becomes_the_director_fifo() -> None:
    t = convert(
        "global_defs {\n notify_fifo /run/keepalived.fifo root\n"
        " vrrp_notify_fifo /run/keepalived.fifo\n lvs_notify_fifo /run/other.fifo\n"
        " notify_fifo_script /usr/local/bin/reader\n}\n"
    )
    assert t.config["director"] == {"notify_fifo": "/run/keepalived.fifo"}
    assert findings(t, Severity.NOTE) == [(2, "notify_fifo"), (3, "vrrp_notify_fifo")]
    assert findings(t, Severity.UNSUPPORTED) == [(4, "lvs_notify_fifo"), (5, "notify_fifo_script")]
    validated(t)


AUTH_HMAC = (
    "vrrp_instance A {{\n interface eth0\n virtual_router_id 1\n"
    " authentication {{\n auth_type PASS\n auth_pass s3cret\n }}\n"
    " auth_hmac {{\n{body} }}\n"
    " virtual_ipaddress {{\n 192.0.2.1\n }}\n}}\n"
)


def test_auth_hmac_keeps_keepalived_s_names_and_drops_the_legacy_password() -> None:
    key = "hex:" + "ab" * 32
    t = convert(
        AUTH_HMAC.format(
            body=f" key 1 {key}\n key 2 file:/etc/keepalived/vrrp.key\n active_key 2\n"
            " mode permissive\n anti_replay monotonic\n time_window 30\n"
        )
    )
    assert t.config["vrrp"][0]["auth_hmac"] == {
        "keys": [{"id": 1, "key": key}, {"id": 2, "key": "file:/etc/keepalived/vrrp.key"}],
        "active_key": 2,
        "mode": "permissive",
        "anti_replay": "monotonic",
        "time_window": 30,
    }
    assert "auth_pass" not in t.config["vrrp"][0]
    assert findings(t, Severity.DROPPED) == [(4, "authentication")]


def test_auth_hmac_without_active_key_is_off_like_keepalived_and_says_so() -> None:
    t = convert(AUTH_HMAC.format(body=" key 0 short\n key 1 " + "a" * 32 + "\n"))
    assert "auth_hmac" not in t.config["vrrp"][0]
    assert t.config["vrrp"][0]["auth_pass"] == "s3cret"
    assert findings(t, Severity.DROPPED) == [(8, "auth_hmac"), (9, "key")]
    validated(t)


def test_file_check_takes_its_path_and_weight_from_the_track_file_block() -> None:
    t = convert(
        "track_file drain_rs1 {\n file /run/lb/rs1\n weight 2\n}\n"
        "virtual_server 192.0.2.1 80 {\n real_server 10.0.0.1 80 {\n weight 10\n"
        " FILE_CHECK {\n track_file drain_rs1\n }\n }\n"
        " real_server 10.0.0.2 80 {\n FILE_CHECK {\n track_file drain_rs1\n weight 0 reverse\n"
        " }\n }\n}\n"
    )
    first, second = (rs["check"] for rs in t.config["virtual_servers"][0]["real_servers"])
    assert first == {"type": "file", "path": "/run/lb/rs1", "weight": 2, "alpha": False}
    assert second == {
        "type": "file", "path": "/run/lb/rs1", "weight": 0, "reverse": True, "alpha": False
    }
    assert t.complete
    validated(t)
    missing = convert(
        "virtual_server 192.0.2.1 80 {\n real_server 10.0.0.1 80 {\n"
        " FILE_CHECK {\n track_file nowhere\n }\n }\n}\n"
    )
    assert findings(missing, Severity.UNSUPPORTED) == [(4, "track_file")]
