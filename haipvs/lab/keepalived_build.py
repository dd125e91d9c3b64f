"""Build a keepalived binary from a source snapshot into the lab's cache, for interop tests.

Debian ships keepalived 2.2.7, which has no `auth_hmac` (added in 2.4.0; the wire
format settled in 2.4.2, and 2.4.3 speaks the same). The auth_hmac interop test
needs a newer keepalived, so this helper builds one from a source directory or
tarball given on the command line (a git export of tag v2.4.3, or a release
tarball) into `cache_root()/keepalived-<version>/`, never inside the repository:

    python -m haipvs.lab.keepalived_build SOURCE [--version 2.4.3]

The build is the VRRP part only (no LVS, BFD, SNMP, DBus, iptables/nftables,
track_process): the interop test exercises adverts, nothing else. The build
dependencies are Debian packages: gcc, make, autoconf, automake, pkg-config and
libssl-dev (HMAC-SHA256 comes from OpenSSL's EVP). A git export has no
`configure`, so it is generated with autoreconf, as keepalived's own
`build_setup` does.

`built_keepalived()` answers where the binary is (or None), so a test can skip
with this module's command in its reason.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

from haipvs.lab.assets import cache_root

__all__ = ["BUILD_COMMAND", "DEFAULT_VERSION", "build", "built_keepalived", "main"]

DEFAULT_VERSION = "2.4.3"

BUILD_COMMAND = (
    "python -m haipvs.lab.keepalived_build SOURCE_DIR_OR_TARBALL --version " + DEFAULT_VERSION
)

# Everything the VRRP adverts do not need is off, so the only library needed is
# OpenSSL (vrrp-auth and json stay on: auth_hmac lives under vrrp-auth, and the
# json stats file is where the interop test reads keepalived's counters).
CONFIGURE_FLAGS = (
    "--disable-lvs",
    "--disable-bfd",
    "--disable-snmp",
    "--disable-dbus",
    "--disable-iptables",
    "--disable-nftables",
    "--disable-track-process",
    "--disable-systemd",
    "--enable-vrrp-auth",
    "--enable-json",
)

DEBIAN_BUILD_DEPS = ("gcc", "make", "autoconf", "automake", "pkg-config", "libssl-dev")


def build_dir(version: str = DEFAULT_VERSION) -> Path:
    return cache_root() / f"keepalived-{version}"


def built_keepalived(version: str = DEFAULT_VERSION) -> Path | None:
    """The built binary, or None when it has not been built on this machine."""
    binary = build_dir(version) / "install" / "sbin" / "keepalived"
    return binary if binary.is_file() and os.access(binary, os.X_OK) else None


def _unpack(source: Path, dest: Path) -> None:
    if dest.exists():
        shutil.rmtree(dest)
    if source.is_dir():
        shutil.copytree(source, dest, symlinks=True)
        return
    dest.mkdir(parents=True)
    with tarfile.open(source) as tar:
        tar.extractall(dest, filter="data")
    # A release tarball holds one top directory; build inside it.
    entries = list(dest.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        inner = entries[0]
        for item in inner.iterdir():
            item.rename(dest / item.name)
        inner.rmdir()


def _run(argv: list[str], cwd: Path, log: Path) -> None:
    with log.open("a") as out:
        out.write(f"$ {' '.join(argv)}\n")
        out.flush()
        done = subprocess.run(argv, cwd=cwd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        tail = log.read_text(errors="replace").splitlines()[-30:]
        raise SystemExit(
            f"keepalived build: {' '.join(argv)} failed ({done.returncode}) in {cwd}; "
            f"log {log}:\n" + "\n".join(tail)
        )


def build(source: Path, version: str = DEFAULT_VERSION, jobs: int = 2) -> Path:
    missing = [
        tool for tool in ("gcc", "make", "autoreconf", "pkg-config") if shutil.which(tool) is None
    ]
    if missing:
        raise SystemExit(
            f"keepalived build: {', '.join(missing)} not found; install the Debian packages "
            + " ".join(DEBIAN_BUILD_DEPS)
        )
    root = build_dir(version)
    src = root / "src"
    prefix = root / "install"
    root.mkdir(parents=True, exist_ok=True)
    log = root / "build.log"
    log.write_text("")
    _unpack(source, src)
    if not (src / "configure").exists():
        _run(["autoreconf", "-fi"], src, log)
    _run(["./configure", f"--prefix={prefix}", *CONFIGURE_FLAGS], src, log)
    _run(["make", f"-j{jobs}"], src, log)
    _run(["make", "install"], src, log)
    binary = built_keepalived(version)
    if binary is None:
        raise SystemExit(
            f"keepalived build: make install left no {prefix}/sbin/keepalived; log {log}"
        )
    return binary


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m haipvs.lab.keepalived_build", description=__doc__.split("\n")[0]
    )
    parser.add_argument("source", type=Path, help="keepalived source directory or tarball")
    parser.add_argument(
        "--version", default=DEFAULT_VERSION, help="version label of the cache directory"
    )
    parser.add_argument("--jobs", type=int, default=2)
    args = parser.parse_args(argv)
    binary = build(args.source.resolve(), args.version, args.jobs)
    print(f"keepalived {args.version} built: {binary}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
