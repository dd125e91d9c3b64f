"""Errors of the VRRP core.

Two kinds, as in h11 (``LocalProtocolError`` / ``RemoteProtocolError``):

- :class:`MalformedAdvert`: the *peer* sent something we cannot or must not use.
  It carries a :class:`DropReason` so the IO side can count it (metrics label) and
  log it (``vrrp.advert.dropped reason=...``). It is never fatal.
- :class:`VrrpUsageError`: *we* (the caller) broke the rules, e.g. started a
  machine twice or encoded an advertisement with an out-of-range field. It is a
  bug and is raised, never swallowed.

Pure module: no IO, no clock, no logging.
"""

from __future__ import annotations

import enum

__all__ = ["DropReason", "MalformedAdvert", "VrrpError", "VrrpUsageError"]


class DropReason(enum.Enum):
    """Why an incoming advertisement was dropped (snake_case: metric label and log value).

    RFC 5798 §7.1 / RFC 3768 §7.1 list the receiver checks; each failed check has
    its own reason so an operator can tell a TTL problem (a router in the path)
    from an authentication or configuration mismatch.
    """

    bad_checksum = "bad_checksum"
    bad_ttl = "bad_ttl"
    bad_version = "bad_version"
    truncated = "truncated"
    wrong_vrid = "wrong_vrid"
    address_count_mismatch = "address_count_mismatch"
    interval_mismatch = "interval_mismatch"
    bad_type = "bad_type"
    auth_mismatch = "auth_mismatch"
    not_a_peer = "not_a_peer"
    own_packet = "own_packet"
    bad_length = "bad_length"
    family_mismatch = "family_mismatch"
    #: Sent to an address that does not match the instance's mode: a multicast
    #: instance takes only the group, a unicast one only its own address.
    wrong_destination = "wrong_destination"
    #: A multicast advert from a source on none of the interface's subnets.
    foreign_source = "foreign_source"
    #: keepalived auth_hmac verdicts (vrrp.auth_hmac.AuthVerdict), one counter each as
    #: keepalived's auth_ext_* statistics: no trailer in enforce mode, a trailer of an
    #: unknown scheme, a key id we do not hold, an HMAC that does not verify, a
    #: timestamp outside the window, a sequence not after the sender's last.
    auth_missing = "auth_missing"
    auth_malformed = "auth_malformed"
    auth_unknown_key = "auth_unknown_key"
    auth_invalid_hmac = "auth_invalid_hmac"
    auth_stale = "auth_stale"
    auth_replay = "auth_replay"


class VrrpError(Exception):
    """Base class of every error raised by the ``vrrp`` package."""


class MalformedAdvert(VrrpError):  # noqa: N818 (name fixed by the package contract)
    """The peer's packet is unusable; count it under ``reason`` and drop it."""

    def __init__(self, reason: DropReason, detail: str) -> None:
        super().__init__(f"{reason.value}: {detail}")
        self.reason = reason
        self.detail = detail


class VrrpUsageError(VrrpError):
    """The caller misused the core (a bug on our side, never the peer's)."""
