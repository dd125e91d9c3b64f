"""FILE_CHECK in the lab: a number written into a file drains a real server, without a
reload (keepalived's answer to "change real servers without a reload", #2609).

One haipvs director of the lab pair with the three real servers; 10.0.0.12 carries a
``file`` check instead of the service's HTTP check. Writing a number moves its kernel
weight (configured 2 + number), writing -2 makes it 0: down, drained (weight 0 in the
kernel), then removed after the drain timeout; writing 0 brings it back.
"""

from __future__ import annotations

import re

import pytest

from haipvs.lab.pair import PairSettings, haipvs_config, running_pair, wait_until

pytestmark = pytest.mark.lab

SETTINGS = PairSettings(version=3, check_interval=0.5, check_timeout=0.4, drain_timeout=3.0)


def rs2_row(table: str) -> str | None:
    match = re.search(r"^\s*->\s*10\.0\.0\.12:80\s+Masq\s+(\d+)", table, re.MULTILINE)
    return None if match is None else match.group(1)


def test_a_number_in_a_file_sets_the_weight_and_drains_the_real_server() -> None:
    with running_pair(SETTINGS, prefix="fck-") as pair:
        weight_file = pair.workdir / "rs2.weight"
        weight_file.write_text("0\n")
        weight_file.chmod(0o644)
        config = haipvs_config("dir1", SETTINGS).replace(
            "- {address: 10.0.0.12, port: 80}",
            "- {address: 10.0.0.12, port: 80, weight: 2, check: "
            f"{{type: file, path: {weight_file}, interval: 0.5, timeout: 0.2}}}}",
        )
        path = pair.config_path("dir1")
        path.write_text(config)
        path.chmod(0o644)
        pair.start_real_servers()
        pair.start_director("dir1")

        def table() -> str:
            return pair.net.run("dir1", ["ipvsadm", "-Ln"]).stdout

        wait_until(lambda: rs2_row(table()) == "2", 90)
        # An operator writes a number: the kernel weight follows, 2 + 3, no reload.
        weight_file.write_text("3\n")
        wait_until(lambda: rs2_row(table()) == "5", 20)
        updates = [e for e in pair.log_events("dir1") if e.get("event") == "ipvs.dest.updated"]
        assert any(e.get("reason") == "check_weight" and e.get("weight") == 5 for e in updates)
        # A number taking the weight to 0 is down: drained, then removed.
        weight_file.write_text("-2\n")
        wait_until(lambda: rs2_row(table()) in {"0", None}, 20)
        wait_until(lambda: rs2_row(table()) is None, 20)
        events = pair.log_events("dir1")
        downs = [e for e in events if e.get("event") == "check.down" and "10.0.0.12" in str(e)]
        assert downs and "rs2.weight: value -2: weight 0" in str(downs[-1]), downs
        # Back to 0: up again at the configured weight.
        weight_file.write_text("0\n")
        wait_until(lambda: rs2_row(table()) == "2", 20)
