"""Every shipped example validates, and docs/config.md documents every key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import BaseModel

from haipvs.config import Config, load_config
from haipvs.daemon.check import summarize

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = sorted([ROOT / "etc" / "haipvs.yaml", *(ROOT / "etc" / "examples").glob("*.yaml")])


def test_the_required_examples_exist() -> None:
    names = {path.name for path in EXAMPLES}
    assert {
        "haipvs.yaml",
        "dr.yaml",
        "tun.yaml",
        "fwmark.yaml",
        "ipv6.yaml",
        "unicast.yaml",
    } <= names


@pytest.mark.parametrize("path", EXAMPLES, ids=[path.name for path in EXAMPLES])
def test_example_is_valid_without_warnings(path: Path) -> None:
    loaded = load_config(path)
    assert loaded.warnings == ()
    assert loaded.config.virtual_servers, "an example shows at least one service"


def test_the_nat_pair_example_is_what_its_comments_say() -> None:
    config = load_config(ROOT / "etc" / "haipvs.yaml").config
    assert summarize(config) == "2 vrrp instances, 3 virtual servers, 8 real servers"
    assert [group.instances for group in config.sync_groups] == [("VI_PUBLIC", "VI_GATEWAY")]
    assert {str(vip.address) for inst in config.vrrp for vip in inst.vips} == {
        "198.51.100.10/24",
        "10.0.0.1/24",
    }


def _fields(model: type[BaseModel], seen: set[type[BaseModel]]) -> set[str]:
    from haipvs.config.load import _model_types  # the loader's own walk of the models

    names: set[str] = set()
    if model in seen:
        return names
    seen.add(model)
    for name, info in model.model_fields.items():
        names.add(name)
        for inner in _model_types(info.annotation):
            names |= _fields(inner, seen)
    return names


def test_docs_name_every_key() -> None:
    docs = (ROOT / "docs" / "config.md").read_text()
    missing = sorted(name for name in _fields(Config, set()) if f"`{name}`" not in docs)
    assert missing == []
