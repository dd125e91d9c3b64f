"""The JSON Schema of the config (`haipvs schema`): shipped, current, and true to the loader."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from config_strategies import configs
from hypothesis import HealthCheck, given, settings

from haipvs.config.load import load_config_text
from haipvs.config.schema import config_schema, render_schema

ROOT = Path(__file__).resolve().parents[3]
SHIPPED = ROOT / "etc/haipvs.schema.json"
VALIDATOR = jsonschema.Draft202012Validator(config_schema())


def test_the_shipped_schema_is_what_haipvs_schema_prints() -> None:
    printed = subprocess.run([sys.executable, "-m", "haipvs", "schema"], capture_output=True,
                             text=True, check=True, timeout=60).stdout
    assert printed == render_schema()
    assert SHIPPED.read_text() == printed, "regenerate: haipvs schema > etc/haipvs.schema.json"
    jsonschema.Draft202012Validator.check_schema(json.loads(printed))


@pytest.mark.parametrize(
    "path", [ROOT / "etc/haipvs.yaml", *sorted((ROOT / "etc/examples").glob("*.yaml"))],
    ids=lambda p: p.name,
)
def test_every_shipped_config_validates(path: Path) -> None:
    document = yaml.safe_load(path.read_text())
    load_config_text(path.read_text(), str(path))  # the loader accepts it...
    assert [e.message for e in VALIDATOR.iter_errors(document)] == []  # ...and so does the schema


@settings(max_examples=60, suppress_health_check=[HealthCheck.too_slow])
@given(configs())
def test_the_schema_accepts_every_config_the_loader_accepts(config: dict[str, Any]) -> None:
    load_config_text(yaml.safe_dump(config))
    assert [e.message for e in VALIDATOR.iter_errors(config)] == []


@pytest.mark.parametrize(
    ("document", "message"),
    [
        ({"director": {"nmae": "lb1"}}, "Additional properties are not allowed ('nmae'"),
        ({"vrrp": [{"name": "VI", "interface": "eth0", "vrid": 256, "priority": 100,
                    "vips": ["192.0.2.1/24"]}]}, "256 is greater than the maximum of 255"),
        ({"director": {"log_level": "loud"}}, "'loud' is not one of"),
    ],
)
def test_the_schema_catches_typos_and_ranges_in_the_editor(
    document: dict[str, Any], message: str
) -> None:
    errors = [error.message for error in VALIDATOR.iter_errors(document)]
    assert any(message in error for error in errors), errors
