"""checkers: health checks for IPVS real servers.

Public API. Other packages import only from here (pyproject's import contracts).

* Settings (filled in by ``haipvs.config.compile``): ``Target``, ``BackendId``,
  ``Timing``, ``DampingSettings``, ``FailOpenSettings`` and the check specs
  ``TcpCheck``, ``HttpCheck``, ``ExecCheck``, ``DnsCheck``, ``UdpCheck``
  (``CheckSpec`` is their union); ``check_key`` is the probe identity.
* Running checks: ``CheckerPool`` (``update``/``start``/``stop``/``snapshot``)
  emits ``HealthChanged``; ``effective_weight`` turns a configured weight and
  a ``weight_factor`` into the kernel weight.
* Probes: ``run_probe`` and ``ProbeResult``; ``ScriptedProber`` for the tests of
  the pool and of the daemon.
"""

import lazy_loader

# The public names live in __init__.pyi (also the table mypy reads); each is imported on
# first use, so `import checkers.<pure module>` does not drag in the IO modules.
__getattr__, __dir__, __all__ = lazy_loader.attach_stub(__name__, __file__)
