"""haipvs.config: the YAML contract of docs/config.md.

Public API (other packages import only from here):

- ``load_config(path) -> LoadedConfig(config, warnings)``; raises ``ConfigInvalid(errors)``
  where each error is a ``ConfigError(file, line, key_path, message)`` printed as
  ``FILE:LINE: key.path: message``.
- ``load_config_text(text, file)``, ``dump_config(config) -> str`` (round-trips).
- ``Config`` and the models it is made of (``VrrpInstance``, ``VirtualServer``...).
- ``diff_configs(old, new) -> ConfigDelta``: per kind added / removed / changed / unchanged
  by identity key (``instance_key``, ``service_key``, ``real_server_key``, ``check_key``).
- ``compile_config(config, hostname=...) -> Compiled``: the settings of vrrp, checkers and
  haipvs.ipvs; ``CompileError(key_path, message)`` if one refuses a value.
- ``summarize(config)``: the summary line of `haipvs check-config` (haipvs.daemon.check).
"""

import lazy_loader

# The public names live in __init__.pyi (also the table mypy reads); each is imported on
# first use, so `import haipvs.config.<pure module>` does not drag in the IO modules.
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
