"""haipvs.importer: translate keepalived.conf into the haipvs YAML config (issue 8).

Public API (other packages import only from here):

- ``parse_file(path, *, source=None, config_id=None) -> ParsedConfig`` and
  ``parse_text(text, name, *, source=None, config_id=None)``: keepalived syntax only
  (blocks, ``include`` globs, comments, ``@ID`` lines, ``$NAME`` definitions), raising
  ``KeepalivedSyntaxError(location, message)``.
- ``translate(parsed, source) -> Translation(config, findings, source, anchors, origins,
  comments)``: the YAML as plain data and every keyword that did not translate exactly, as
  ``Finding(location, keyword, severity, message, anchor)``; where each output item came
  from (``source_of(translation, key_path)`` locates a validation error there) and the
  source's comments of each block.
- ``render_yaml(translation) -> str``: the YAML text with the findings and the carried
  comments beside their items, and a virtual_server_group's shared check and real servers
  written once with a YAML anchor.
- ``import_keepalived_command(args) -> int``: ``haipvs import-keepalived FILE``.
"""

import lazy_loader

# The public names live in __init__.pyi (also the table mypy reads); each is imported on
# first use, so `import haipvs.importer.<pure module>` does not drag in the IO modules.
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
