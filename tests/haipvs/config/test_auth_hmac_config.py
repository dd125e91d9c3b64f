"""auth_hmac in the config: keepalived's key syntax, defaults, and what it compiles to."""

from __future__ import annotations

import textwrap
from pathlib import Path

import vrrp
from haipvs.config.compile import compile_config
from haipvs.config.load import load_config_text

KEY_HEX = "hex:" + "00112233445566778899aabbccddeeff" * 2


def compiled_auth(block: str) -> vrrp.AuthHmacSettings | None:
    text = textwrap.dedent(
        """\
        vrrp:
          - name: VI_1
            interface: eth0
            vrid: 51
            advert_interval: 2
            vips: [198.51.100.10/24]
        """
    ) + textwrap.indent(textwrap.dedent(block), "    ")
    settings = compile_config(load_config_text(text).config).instances[0]
    return settings.auth_hmac


def test_defaults_are_keepalived_s_enforce_time_and_the_only_key_signs() -> None:
    auth = compiled_auth(
        f"""\
        auth_hmac:
          keys:
            - id: 3
              key: "{KEY_HEX}"
        """
    )
    assert auth == vrrp.AuthHmacSettings(
        keys=((3, bytes.fromhex(KEY_HEX[4:])),),
        active_key=3,
        mode=vrrp.AuthMode.enforce,
        anti_replay=vrrp.AntiReplay.time,
        time_window=None,
    )


def test_rotation_file_key_and_modes(tmp_path: Path) -> None:
    key_file = tmp_path / "vrrp.key"
    key_file.write_text("b" * 40 + "\n")
    key_file.chmod(0o600)
    auth = compiled_auth(
        f"""\
        auth_hmac:
          keys:
            - id: 1
              key: "{"a" * 32}"
            - id: 2
              key: "file:{key_file}"
          active_key: 2
          mode: receive-only
          anti_replay: monotonic
          time_window: 30
        """
    )
    assert auth is not None
    assert auth.keys == ((1, b"a" * 32), (2, b"b" * 40))
    assert auth.active_key == 2 and auth.mode is vrrp.AuthMode.receive_only
    assert auth.anti_replay is vrrp.AntiReplay.monotonic and auth.time_window == 30
