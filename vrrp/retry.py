"""When does failing to send adverts become a fault? (pure policy, literal time)

A raw socket's ``sendto`` fails with ENOBUFS when the interface queue is full
for a moment, EAGAIN when the socket buffer is, ENOMEM under memory pressure:
conditions that pass within milliseconds. Treating one of them as a fault
drops a healthy master's VIPs for the whole fault hold; never treating a
persistent one as a fault keeps VIPs on a master nobody hears. So:

- an errno outside :data:`TRANSIENT_SEND_ERRNOS` (ENETDOWN, EPERM, EBADF...)
  is a fault at once, as before;
- transient ones are retried (the runner tries again at once, then at the
  next advert) and become a fault only when sends have failed without a
  single success for ``grace`` seconds. The runner uses 1.5 advert
  intervals, so the third advert in a row that cannot leave is a fault: that
  comes before the peer's Master_Down_Interval (3 intervals + skew, RFC 5798
  §6.1) makes it master too, so a mute master does not hold the VIPs beside a
  new one.

Pure module: no IO, no clock, no logging.
"""

from __future__ import annotations

import errno

__all__ = ["TRANSIENT_SEND_ERRNOS", "SendFailures"]

TRANSIENT_SEND_ERRNOS = frozenset(
    {errno.ENOBUFS, errno.EAGAIN, errno.EWOULDBLOCK, errno.ENOMEM, errno.EINTR}
)


class SendFailures:
    """Consecutive advert send failures of one instance."""

    def __init__(self, grace: float) -> None:
        if grace < 0:
            raise ValueError(f"grace: {grace} must be >= 0")
        self.grace = grace
        self._since: float | None = None
        self.consecutive = 0

    @property
    def failing_since(self) -> float | None:
        return self._since

    def failed(self, code: int, now: float) -> bool:
        """A send failed with ``code`` at ``now``: True when that is a fault."""
        self.consecutive += 1
        if self._since is None:
            self._since = now
        if code not in TRANSIENT_SEND_ERRNOS:
            return True
        return now - self._since >= self.grace

    @staticmethod
    def retry_at_once(code: int) -> bool:
        """Is one immediate second try worth it? (a transient errno)"""
        return code in TRANSIENT_SEND_ERRNOS

    def sent(self) -> None:
        """A send succeeded: the failure streak is over."""
        self._since = None
        self.consecutive = 0
