"""One director pair for the whole chaos module (module scope): building it costs more
lab time than most scenarios, and every scenario starts by restoring its steady state."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from haipvs.lab.chaos import chaos_pair
from haipvs.lab.pair import DirectorPair


@pytest.fixture(scope="module")
def pair() -> Iterator[DirectorPair]:
    with chaos_pair() as built:
        yield built
