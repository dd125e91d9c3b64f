"""VRRP advert authentication trailer (keepalived ``auth_hmac``, draft-cassen-vrrp-auth-hmac-00).

keepalived 2.4.2+ appends a 28-octet trailer after the VRRP PDU (after the
addresses and, in VRRPv2, the 8 authentication octets). All fields in network
order::

    ext_type u8 (1: HMAC-SHA256 truncated to 128 bits) | key_id u8 | reserved u16 = 0
    sec u32 (UTC seconds) | subsec u16 (1/65536 s) | ctr u16 (tie-breaker)
    hmac 16 octets

The 64-bit sequence is ``sec << 32 | subsec << 16 | ctr``, ordered with RFC 1982
serial arithmetic. The HMAC covers a 20-octet pseudo header (family 4 or 6, VRRP
version, VRID, 0, the source address zero-padded to 16 octets), then the PDU with
its checksum read as zero, then the trailer's first 12 octets, then 16 zero
octets in place of the HMAC. The IP header is not covered, so one signature
serves every unicast copy of an advert.

The receiver finds the trailer by exact length (PDU + 28). keepalived's rollout
modes: ``receive-only`` verifies a trailer that is present but sends none,
``permissive`` signs and still accepts unsigned adverts, ``enforce`` requires a
valid trailer. Each refusal has its own verdict (missing, malformed, unknown key,
invalid HMAC, stale, replay) so an operator can tell a key typo from a clock
problem from an attack.

:class:`HmacGuard` is the per-instance rule: it signs (keeping the send
sequence) and checks (keeping one anti-replay high-water mark per sender). It
holds no clock: every call takes ``wall``, the UTC time in seconds the caller
read. A refused advert never moves a high-water mark; only a verified HMAC does.

Pure module: no IO, no clock, no logging.
"""

from __future__ import annotations

import enum
import hashlib
import hmac
import struct
from collections import OrderedDict
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv6Address

__all__ = [
    "EXT_HMAC_SHA256",
    "KEY_MAX",
    "KEY_MIN",
    "TRAILER_LEN",
    "WINDOW_MAX",
    "WINDOW_MIN",
    "AntiReplay",
    "AuthCheck",
    "AuthHmacSettings",
    "AuthMode",
    "AuthVerdict",
    "HmacGuard",
    "Trailer",
    "build_trailer",
    "decode_key",
    "default_window",
    "next_send_sequence",
    "pseudo_header",
    "seq_after",
    "sequence_at",
    "trailer_digest",
]

#: keepalived VRRP_AUTH_HMAC_TYPE_SHA256: HMAC-SHA256 truncated to 128 bits.
EXT_HMAC_SHA256 = 1
#: sizeof(vrrp_auth_ext_t).
TRAILER_LEN = 28
_PREFIX_LEN = 12
_HMAC_LEN = 16
_PSEUDO_LEN = 20
#: keepalived VRRP_AUTH_HMAC_KEY_MIN / _MAX (octets).
KEY_MIN = 32
KEY_MAX = 64
#: keepalived VRRP_AUTH_HMAC_WINDOW_MIN / _MAX / _FLOOR (seconds).
WINDOW_MIN = 1
WINDOW_MAX = 300
_WINDOW_FLOOR = 5
#: keepalived VRRP_AUTH_HMAC_MCAST_SENDERS: replay slots for multicast senders.
_MULTICAST_SENDERS = 4
_MASK64 = (1 << 64) - 1
_PREFIX = struct.Struct("!BBHIHH")

IPAddress = IPv4Address | IPv6Address


class AuthMode(enum.Enum):
    """keepalived ``auth_hmac { mode ... }``: the hitless rollout steps."""

    receive_only = "receive-only"
    permissive = "permissive"
    enforce = "enforce"


class AntiReplay(enum.Enum):
    """keepalived ``auth_hmac { anti_replay ... }``.

    ``time``: a trailer's seconds must be within ``time_window`` of the receiver's
    clock (stale otherwise) and grow per sender. ``monotonic``: growth only, for
    hosts without a trustworthy clock.
    """

    time = "time"
    monotonic = "monotonic"


class AuthVerdict(enum.Enum):
    """The outcome of checking one advert (snake_case: counter label and log value)."""

    #: A trailer verified.
    ok = "ok"
    #: No trailer, accepted because the mode is receive-only or permissive.
    unsigned = "unsigned"
    missing = "missing"
    malformed = "malformed"
    unknown_key = "unknown_key"
    invalid_hmac = "invalid_hmac"
    stale = "stale"
    replay = "replay"

    @property
    def accepted(self) -> bool:
        return self in (AuthVerdict.ok, AuthVerdict.unsigned)


def decode_key(text: str) -> bytes:
    """keepalived's key value: ``hex:`` then hex digits is raw octets, anything else ASCII.

    Raises ``ValueError`` for bad hex digits. (``file:`` is read by the caller,
    which then passes the file's text here, as keepalived does.)
    """
    if text.startswith("hex:"):
        digits = text[4:]
        try:
            return bytes.fromhex(digits)
        except ValueError:
            raise ValueError("hex: must be followed by an even number of hex digits") from None
    return text.encode("utf-8")


def default_window(advert_interval: float) -> int:
    """keepalived's derived ``time_window``: 3 x advert_int in whole seconds, 5..300."""
    window = 3 * int(advert_interval)
    return min(max(window, _WINDOW_FLOOR), WINDOW_MAX)


@dataclass(frozen=True, slots=True)
class AuthHmacSettings:
    """keepalived ``auth_hmac { key ID VALUE; active_key ID; mode; anti_replay; time_window }``.

    ``keys`` are (id, octets); every listed key verifies, ``active_key`` signs
    (make-before-break rotation). ``time_window`` None: derived from the advert
    interval (:func:`default_window`).
    """

    keys: tuple[tuple[int, bytes], ...]
    active_key: int
    mode: AuthMode = AuthMode.enforce
    anti_replay: AntiReplay = AntiReplay.time
    time_window: int | None = None

    def __post_init__(self) -> None:
        if not self.keys:
            raise ValueError("keys: at least one key is required")
        ids = [key_id for key_id, _ in self.keys]
        if len(set(ids)) != len(ids):
            raise ValueError("keys: duplicate key id")
        for key_id, key in self.keys:
            if not 1 <= key_id <= 255:
                raise ValueError(f"keys: id {key_id} outside 1..255")
            if not KEY_MIN <= len(key) <= KEY_MAX:
                raise ValueError(
                    f"keys: key {key_id} is {len(key)} octets, not {KEY_MIN}..{KEY_MAX}"
                )
        if self.active_key not in ids:
            raise ValueError(f"active_key: {self.active_key} is not one of the keys")
        if self.time_window is not None and not WINDOW_MIN <= self.time_window <= WINDOW_MAX:
            raise ValueError(f"time_window: {self.time_window} outside {WINDOW_MIN}..{WINDOW_MAX}")

    def key(self, key_id: int) -> bytes | None:
        for candidate, key in self.keys:
            if candidate == key_id:
                return key
        return None

    @property
    def signs(self) -> bool:
        """receive-only sends no trailer; the other modes sign every advert."""
        return self.mode is not AuthMode.receive_only


@dataclass(frozen=True, slots=True)
class Trailer:
    """The 28 octets after the PDU, decoded (no check beyond the length)."""

    ext_type: int
    key_id: int
    reserved: int
    sequence: int
    hmac: bytes

    @classmethod
    def from_bytes(cls, data: bytes) -> Trailer:
        if len(data) != TRAILER_LEN:
            raise ValueError(f"trailer: {len(data)} octets, not {TRAILER_LEN}")
        ext_type, key_id, reserved, sec, subsec, ctr = _PREFIX.unpack_from(data)
        return cls(
            ext_type, key_id, reserved, (sec << 32) | (subsec << 16) | ctr, data[_PREFIX_LEN:]
        )

    @property
    def seconds(self) -> int:
        return self.sequence >> 32

    def prefix(self) -> bytes:
        seq = self.sequence
        return _PREFIX.pack(
            self.ext_type, self.key_id, self.reserved, seq >> 32, (seq >> 16) & 0xFFFF, seq & 0xFFFF
        )


def pseudo_header(version: int, vrid: int, source: IPAddress) -> bytes:
    """The 20 octets bound into the HMAC: family, version and VRID stop splicing between
    instances sharing a key, the source ties the advert to its sender."""
    family = 6 if isinstance(source, IPv6Address) else 4
    return bytes((family, version, vrid, 0)) + source.packed.ljust(16, b"\0")


def trailer_digest(
    key: bytes, pdu: bytes, prefix: bytes, *, version: int, vrid: int, source: IPAddress
) -> bytes:
    """The 16-octet truncated HMAC-SHA256 of the draft's input (checksum read as zero)."""
    message = (
        pseudo_header(version, vrid, source)
        + pdu[:6]
        + b"\0\0"
        + pdu[8:]
        + prefix
        + bytes(_HMAC_LEN)
    )
    return hmac.new(key, message, hashlib.sha256).digest()[:_HMAC_LEN]


def build_trailer(
    pdu: bytes,
    *,
    key_id: int,
    key: bytes,
    sequence: int,
    version: int,
    vrid: int,
    source: IPAddress,
) -> bytes:
    """The 28-octet trailer for ``pdu`` sent from ``source``."""
    head = Trailer(EXT_HMAC_SHA256, key_id, 0, sequence & _MASK64, b"").prefix()
    return head + trailer_digest(key, pdu, head, version=version, vrid=vrid, source=source)


def sequence_at(wall: float) -> int:
    """The sequence a clock reading gives: UTC seconds, then a 1/65536 s fraction, ctr 0."""
    seconds = int(wall // 1)
    subsec = int((wall - seconds) * 65536) & 0xFFFF
    return ((seconds & 0xFFFFFFFF) << 32) | (subsec << 16)


def seq_after(a: int, b: int) -> bool:
    """RFC 1982 serial order on 64 bits: is ``a`` after ``b``?"""
    diff = (a - b) & _MASK64
    return 0 < diff < (1 << 63)


def _seconds_delta(a: int, b: int) -> int:
    """``a - b`` of two 32-bit second counts as a signed 32-bit difference."""
    diff = (a - b) & 0xFFFFFFFF
    return diff - (1 << 32) if diff >= (1 << 31) else diff


def next_send_sequence(last: int, wall: float, *, time_mode: bool, window: int) -> int:
    """keepalived ``next_seq``: the clock's sequence if it is after ``last``, else ``last + 1``
    (carrying into the timestamp). In time mode a ``last`` stranded more than ``window``
    seconds ahead of the clock (a clock stepped back) restarts from the clock, because
    receivers would call every advert stale until the clock caught up."""
    clock = sequence_at(wall)
    if seq_after(clock, last):
        return clock
    ahead = _seconds_delta(last >> 32, clock >> 32)
    if time_mode and ahead > window:
        return clock
    return (last + 1) & _MASK64


@dataclass(frozen=True, slots=True)
class AuthCheck:
    """A verdict, with ``detail`` (key=value words) for the log line."""

    verdict: AuthVerdict
    detail: str = ""


@dataclass(slots=True)
class _Mark:
    sequence: int


class HmacGuard:
    """Signing and checking for one instance (keepalived ``vrrp_auth_hmac_sign`` / ``_check``).

    ``max_senders``: how many per-sender high-water marks to keep (least recently
    verified evicted first); keepalived keeps one per unicast peer, or 4 for
    multicast. A mark is created or moved only after the HMAC verified, so forged
    sources cannot churn the table.
    """

    def __init__(
        self,
        settings: AuthHmacSettings,
        *,
        version: int,
        vrid: int,
        advert_interval: float,
        max_senders: int = _MULTICAST_SENDERS,
        send_sequence: int = 0,
    ) -> None:
        self.settings = settings
        self._version = version
        self._vrid = vrid
        self.window = (
            settings.time_window
            if settings.time_window is not None
            else default_window(advert_interval)
        )
        self._time_mode = settings.anti_replay is AntiReplay.time
        self._max_senders = max(max_senders, 1)
        self._marks: OrderedDict[IPAddress, _Mark] = OrderedDict()
        self.send_sequence = send_sequence

    def sign(self, pdu: bytes, source: IPAddress, wall: float) -> bytes:
        """The trailer for ``pdu`` (b"" in receive-only mode); advances the send sequence.

        Call once per advert: unicast copies share the trailer (the HMAC does not
        cover the destination), as keepalived 2.4.3 does.
        """
        settings = self.settings
        if not settings.signs:
            return b""
        key = settings.key(settings.active_key)
        assert key is not None  # AuthHmacSettings guarantees the active key exists
        self.send_sequence = next_send_sequence(
            self.send_sequence, wall, time_mode=self._time_mode, window=self.window
        )
        return build_trailer(
            pdu,
            key_id=settings.active_key,
            key=key,
            sequence=self.send_sequence,
            version=self._version,
            vrid=self._vrid,
            source=source,
        )

    def check(self, pdu: bytes, trailer: bytes | None, source: IPAddress, wall: float) -> AuthCheck:
        """The verdict for ``pdu`` (the VRRP PDU as received) and its trailer, if any.

        The order is keepalived's: trailer shape, freshness (before the costly HMAC,
        so a flood of old captures costs no digest), key, HMAC, then the sender's
        high-water mark, which only a verified advert moves.
        """
        settings = self.settings
        if trailer is None:
            if settings.mode is AuthMode.enforce:
                return AuthCheck(AuthVerdict.missing, "mode=enforce")
            return AuthCheck(AuthVerdict.unsigned, f"mode={settings.mode.value}")
        fields = Trailer.from_bytes(trailer)
        if fields.ext_type != EXT_HMAC_SHA256 or fields.reserved != 0:
            return AuthCheck(
                AuthVerdict.malformed, f"ext_type={fields.ext_type} reserved={fields.reserved}"
            )
        now_seconds = int(wall // 1) & 0xFFFFFFFF
        skew = _seconds_delta(now_seconds, fields.seconds)
        if self._time_mode and abs(skew) > self.window:
            return AuthCheck(AuthVerdict.stale, f"skew={skew}s window={self.window}s")
        key = settings.key(fields.key_id)
        if key is None:
            return AuthCheck(AuthVerdict.unknown_key, f"key_id={fields.key_id}")
        digest = trailer_digest(
            key, pdu, fields.prefix(), version=self._version, vrid=self._vrid, source=source
        )
        if not hmac.compare_digest(digest, fields.hmac):
            return AuthCheck(AuthVerdict.invalid_hmac, f"key_id={fields.key_id}")
        mark = self._marks.get(source)
        if mark is not None and self._time_mode:
            # A mark outside the window orders only packets the window already
            # refuses; forgetting it lets a sender whose clock was stepped back return.
            age = _seconds_delta(now_seconds, mark.sequence >> 32)
            if abs(age) > self.window:
                mark = None
                del self._marks[source]
        if mark is not None and not seq_after(fields.sequence, mark.sequence):
            return AuthCheck(
                AuthVerdict.replay, f"sequence={fields.sequence:#x} last={mark.sequence:#x}"
            )
        if mark is None:
            if len(self._marks) >= self._max_senders:
                self._marks.popitem(last=False)
            self._marks[source] = _Mark(fields.sequence)
        else:
            mark.sequence = fields.sequence
            self._marks.move_to_end(source)
        detail = f"key_id={fields.key_id}"
        if self._time_mode and abs(skew) > self.window // 2:
            # keepalived warns when a peer's clock drifts toward the window's edge.
            detail += f" skew={skew}s window={self.window}s"
        return AuthCheck(AuthVerdict.ok, detail)
