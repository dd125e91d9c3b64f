"""Small helpers shared by the test modules (tests/ is on sys.path: conftest.py lives here)."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Callable


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    """Wait for a condition the code under test reaches on its own (not a timing assertion)."""
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


def wait_for(condition: Callable[[], bool], seconds: float) -> bool:
    """Poll ``condition`` from a thread without a loop; its last value after ``seconds``."""
    end = time.monotonic() + seconds
    while time.monotonic() < end:
        if condition():
            return True
        time.sleep(0.05)
    return condition()
