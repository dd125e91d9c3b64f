"""haipvs VRRP: a sans-IO VRRPv2/v3 core (codec + election machine) and its IO runner.

Other packages import only from here (pyproject's import contracts). The core modules
(settings, packet, timing, machine, errors) are pure: no IO, no clock, no logger.
"""

import lazy_loader

# The public names live in __init__.pyi (also the table mypy reads); each is imported on
# first use, so `import vrrp.<pure module>` does not drag in the IO modules.
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
