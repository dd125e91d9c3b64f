"""The nemesis: a seeded, replayable randomized fault schedule against a lab director pair,
with its invariants checked from timestamped observations (the way Jepsen works).

- :mod:`haipvs.lab.nemesis.schedule`: seed -> faults at times (pure, deterministic);
- :mod:`haipvs.lab.nemesis.invariants`: observations -> violations and figures (pure);
- :mod:`haipvs.lab.nemesis.probe`: the sampler that runs inside a director's namespace;
- ``bench/nemesis.py``: the thin executor that builds the pair, injects and observes.
"""
