"""Coverage-guided fuzzing of the VRRP receive path with atheris (libFuzzer for Python).

Nothing a peer can put on the wire may raise anything but
``vrrp.MalformedAdvert`` from the path a runner takes: ``parse_ipv4_packet`` ->
``check_ttl`` -> ``decode_advert`` -> ``VrrpMachine.on_advert``. Any other exception
is a crash: libFuzzer stops, writes the input as ``crash-<sha1>`` in the artifact
directory and this script reports it.

Each input is split by its first octet:

- mode 0: a raw IPv4 datagram (what an AF_INET raw socket delivers);
- mode 1: a VRRP payload with source/destination of either family (IPv6 raw sockets
  deliver the payload only; a peer may also mix families);
- modes 2 and 3: as mode 0, but with the IP and VRRP checksums repaired first, so the
  fuzzer explores the checks behind the checksum and then the machine's own rules
  (VRID, version, interval, unicast peers, priority 0, preemption).

The seed corpus is the golden keepalived captures in tests/data/captures.

Usage (a bounded run that ends with one ``RESULT`` line):

    .venv/bin/python fuzz/fuzz_vrrp.py --seconds 60
    .venv/bin/python fuzz/fuzz_vrrp.py --seconds 60 --corpus fuzz/corpus
    .venv/bin/python fuzz/fuzz_vrrp.py --seconds 60 --plant-bug   # self-test: must crash

Internally it re-runs itself as ``fuzz_vrrp.py --libfuzzer [libFuzzer flags]`` and
reads libFuzzer's final statistics.
"""

from __future__ import annotations

import argparse
import re
import struct
import subprocess
import sys
import tempfile
import time
from ipaddress import IPv4Address, IPv4Interface, IPv6Address
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
CAPTURES = REPO / "tests" / "data" / "captures"


def read_pcap(path: Path) -> list[bytes]:
    """Frames of a classic pcap file (either byte order)."""
    data = path.read_bytes()
    order = "<" if struct.unpack_from("<I", data)[0] == 0xA1B2C3D4 else ">"
    frames, offset = [], 24
    while offset + 16 <= len(data):
        incl_len = struct.unpack_from(f"{order}I", data, offset + 8)[0]
        offset += 16
        frames.append(data[offset : offset + incl_len])
        offset += incl_len
    return frames


def seed_inputs() -> list[bytes]:
    """Golden datagrams, one per capture file and mode, as fuzzer inputs."""
    seeds: list[bytes] = []
    for name in ("vrrp-v2-adverts.pcap", "vrrp-v3-adverts.pcap"):
        frames = read_pcap(CAPTURES / name)
        datagram = frames[0][14:]
        payload = datagram[20:]
        seeds += [b"\x00" + datagram, b"\x02" + datagram, b"\x03" + datagram]
        seeds.append(b"\x01\x00" + datagram[12:20] + payload)
    return seeds


# --- the harness (runs under --libfuzzer) ------------------------------------------------------


def repair_checksums(data: bytearray, internet_checksum: object) -> None:
    """Recompute the VRRP checksum (v2: message; v3: + IPv4 pseudo-header) in place."""
    assert callable(internet_checksum)
    if len(data) < 20:
        return
    header_len = (data[0] & 0x0F) * 4
    if header_len < 20 or len(data) < header_len:
        return
    total_len = min(struct.unpack_from("!H", data, 2)[0], len(data))
    payload = bytes(data[header_len:total_len])
    if len(payload) < 8:
        return
    summed = payload[:6] + b"\0\0" + payload[8:]
    if payload[0] >> 4 == 3:
        summed = bytes(data[12:20]) + struct.pack("!BBH", 0, 112, len(payload)) + summed
    struct.pack_into("!H", data, header_len + 6, internet_checksum(summed))


def run_libfuzzer(libfuzzer_argv: list[str], *, plant_bug: bool = False) -> None:
    import atheris  # type: ignore[import-untyped, import-not-found, unused-ignore]

    with atheris.instrument_imports(include=["vrrp"]):
        import vrrp
        import vrrp.packet

    instances = {}
    for version in (2, 3):
        for unicast in (False, True):
            instances[(version, unicast)] = vrrp.InstanceSettings(
                name="VI_FUZZ",
                interface="eth0",
                vrid=51,
                priority=100,
                version=version,
                advert_interval=1.0,
                preempt=True,
                preempt_delay=0.0,
                vips=(
                    vrrp.VipSpec(IPv4Interface("198.51.100.100/24")),
                    vrrp.VipSpec(IPv4Interface("10.0.0.1/24")),
                ),
                unicast_peers=(IPv4Address("198.51.100.11"),) if unicast else (),
            )
    ours = IPv4Address("198.51.100.12")

    def feed_machine(
        advert: vrrp.Advertisement, source: IPv4Address | IPv6Address, selector: int
    ) -> None:
        settings = instances[(2 + (selector & 1), bool(selector & 2))]
        machine = vrrp.VrrpMachine(settings, primary_address=ours)
        machine.start(now=0.0)
        if selector & 4:
            machine.on_timer(now=10.0)  # master-down timer: now MASTER
        state = machine.state
        actions = machine.on_advert(advert, source, now=10.5)
        dropped = any(isinstance(action, vrrp.AdvertDropped) for action in actions)
        if dropped and (len(actions) != 1 or machine.state is not state):
            raise AssertionError(f"a dropped advert changed something: {actions}")
        machine.on_timer(now=100.0)

    def test_one_input(data: bytes) -> None:
        if not data:
            return
        mode, body = data[0] & 3, bytearray(data[1:])
        try:
            if mode == 1:
                if not body:
                    return
                flags, rest = body[0], bytes(body[1:])
                source: IPv4Address | IPv6Address
                destination: IPv4Address | IPv6Address
                if flags & 1:
                    source, rest = IPv6Address(rest[:16].ljust(16, b"\0")), rest[16:]
                else:
                    source, rest = IPv4Address(rest[:4].ljust(4, b"\0")), rest[4:]
                if flags & 2:
                    destination, rest = IPv6Address(rest[:16].ljust(16, b"\0")), rest[16:]
                else:
                    destination, rest = IPv4Address(rest[:4].ljust(4, b"\0")), rest[4:]
                vrrp.decode_advert(rest, source, destination)
                return
            if mode >= 2:
                repair_checksums(body, vrrp.packet.internet_checksum)
            source4, destination4, ttl, payload = vrrp.parse_ipv4_packet(bytes(body))
            vrrp.check_ttl(ttl)
            advert = vrrp.decode_advert(payload, source4, destination4)
            if plant_bug and advert.vrid == 66:
                # --plant-bug: proves the harness finds and reports a crash.
                raise RuntimeError("planted bug: VRID 66")
            if mode == 3:
                feed_machine(advert, source4, data[-1])
        except vrrp.MalformedAdvert:
            pass

    atheris.Setup([sys.argv[0], *libfuzzer_argv], test_one_input)
    atheris.Fuzz()


# --- the driver --------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    args_in = sys.argv[1:] if argv is None else argv
    if args_in[:1] == ["--libfuzzer"]:
        plant = args_in[1:2] == ["--plant-bug"]
        run_libfuzzer(args_in[1 + plant :], plant_bug=plant)
        return 0
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=int, default=60, help="fuzzing time budget")
    parser.add_argument("--corpus", type=Path, help="corpus directory (kept); default temporary")
    parser.add_argument("--artifacts", type=Path,
                        help="where crash inputs go; default a new temporary directory")
    parser.add_argument(
        "--plant-bug", action="store_true",
        help="self-test: raise on any decoded VRID 66; the run must report a crash",
    )
    args = parser.parse_args(args_in)
    corpus = args.corpus or Path(tempfile.mkdtemp(prefix="fuzz-vrrp-corpus-"))
    corpus.mkdir(parents=True, exist_ok=True)
    for index, seed in enumerate(seed_inputs()):
        (corpus / f"seed-{index:02d}").write_bytes(seed)
    artifacts = args.artifacts or Path(tempfile.mkdtemp(prefix="fuzz-vrrp-artifacts-"))
    artifacts.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable, str(Path(__file__).resolve()), "--libfuzzer",
        *(["--plant-bug"] if args.plant_bug else []),
        f"-max_total_time={args.seconds}", "-print_final_stats=1", "-max_len=512",
        f"-artifact_prefix={artifacts}/", str(corpus),
    ]
    started = time.monotonic()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO, check=False)
    elapsed = time.monotonic() - started
    output = done.stdout + done.stderr
    tail = output.strip().splitlines()[-25:]
    print("\n".join(tail))
    executions = _stat(output, "number_of_executed_units")
    coverage = re.findall(r"cov: (\d+)", output)
    crash_files = re.findall(r"Test unit written to (\S+)", output)
    crashes = len(crash_files) or (1 if done.returncode not in (0,) else 0)
    print(
        f"RESULT fuzz_seconds={elapsed:.0f} executions={executions} "
        f"exec_per_s={_stat(output, 'average_exec_per_sec')} "
        f"coverage_edges={coverage[-1] if coverage else 0} "
        f"corpus_inputs={len(list(corpus.iterdir()))} crashes={crashes} "
        f"artifact={crash_files[0] if crash_files else '-'}"
    )
    return 0 if crashes == 0 else 1


def _stat(output: str, name: str) -> int:
    found = re.search(rf"stat::{name}:\s+(\d+)", output)
    return int(found.group(1)) if found else 0


if __name__ == "__main__":
    sys.path.insert(0, str(REPO))
    sys.exit(main())
