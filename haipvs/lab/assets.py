"""The lab guest's kernel and initramfs: where they come from and how they are built.

The lab boots Debian's own kernel (it ships IPVS with every scheduler, netns, veth,
bridge, netem and the tunnels as modules) under QEMU, with this machine's root
filesystem mounted over 9p. Nothing is downloaded from outside Debian's archive:
the kernel package is fetched with `apt-get download` and unpacked into a cache
directory, never installed, so the host's /boot and /lib/modules stay untouched.

The initramfs is tiny and built here: a static busybox, the virtio and 9p modules
(in dependency order, read from the kernel's modules.dep) and guest/initramfs-init.
"""

from __future__ import annotations

import gzip
import io
import lzma
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "GuestAssets",
    "LabSetupError",
    "UmlAssets",
    "cache_root",
    "prepare_guest_assets",
    "prepare_uml_assets",
]

GUEST_DIR = Path(__file__).resolve().parent / "guest"

# Modules the first stage needs before it can mount the host filesystem.
INITRAMFS_MODULES = ("virtio_pci", "virtio_console", "9pnet_virtio", "9p")

# Modules the second stage preloads (everything else is loaded on demand through
# the kernel's modprobe hook). The schedulers are listed so that `ipvsadm` and our
# programmer find them without relying on on-demand loading.
PRELOAD_MODULES = (
    "ip_vs",
    "ip_vs_rr", "ip_vs_wrr", "ip_vs_lc", "ip_vs_wlc", "ip_vs_lblc", "ip_vs_lblcr",
    "ip_vs_dh", "ip_vs_sh", "ip_vs_sed", "ip_vs_nq", "ip_vs_fo", "ip_vs_ovf", "ip_vs_mh",
    "veth", "bridge", "dummy", "macvlan", "ipip", "ip_gre", "fou", "ip6_tunnel",
    "sch_netem", "nf_conntrack", "af_packet",
)

BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")


class LabSetupError(RuntimeError):
    """The lab cannot be prepared on this machine; the message says what to install."""


@dataclass(frozen=True, slots=True)
class GuestAssets:
    kernel_version: str
    kernel_image: Path
    initramfs: Path
    modules_dir: Path


@dataclass(frozen=True, slots=True)
class UmlAssets:
    linux: Path
    modules_dir: Path
    xstate_shim: Path


UML_MODULES = Path("/usr/lib/uml/modules")


def prepare_uml_assets() -> UmlAssets:
    """Debian's user-mode-linux kernel, its modules and our FPU-state shim for it."""
    linux = shutil.which("linux")
    versions = sorted(UML_MODULES.iterdir()) if UML_MODULES.is_dir() else []
    if linux is None or not versions:
        raise LabSetupError(
            "this kernel has no IPVS, so the lab boots a user-mode-linux guest: "
            "apt-get install user-mode-linux"
        )
    source = GUEST_DIR / "uml_xstate_shim.c"
    shim = cache_root() / "uml_xstate_shim.so"
    if not shim.exists() or shim.stat().st_mtime < source.stat().st_mtime:
        compiler = shutil.which("cc") or shutil.which("gcc")
        if compiler is None:
            raise LabSetupError("the UML lab builds a small shim: apt-get install gcc libc6-dev")
        shim.parent.mkdir(parents=True, exist_ok=True)
        # Build beside it and rename: two labs starting at once must not see half a file.
        partial = shim.with_name(f"{shim.name}.{os.getpid()}")
        _run(
            [compiler, "-O2", "-shared", "-fPIC", "-o", str(partial), str(source), "-ldl"],
            "build the UML FPU-state shim",
        )
        os.replace(partial, shim)
    return UmlAssets(Path(linux), versions[-1], shim)


def cache_root() -> Path:
    return Path(os.environ.get("HAIPVS_LAB_CACHE", "/var/cache/haipvs/lab"))


def prepare_guest_assets(*, quiet: bool = False) -> GuestAssets:
    """Return the kernel and initramfs, fetching and building them on first use."""
    root = cache_root()
    package = _debian_kernel_package()
    base = root / package
    version = package.removeprefix("linux-image-")
    assets = GuestAssets(
        kernel_version=version,
        kernel_image=base / "root" / "boot" / f"vmlinuz-{version}",
        initramfs=base / "initramfs.img",
        modules_dir=base / "root" / "lib" / "modules" / version,
    )
    stamp = base / "ready"
    if stamp.exists() and stamp.read_text() == _initramfs_fingerprint():
        return assets
    if not quiet:
        print(f"haipvs lab: preparing the guest kernel {version} in {base} (once)", flush=True)
    base.mkdir(parents=True, exist_ok=True)
    unpacked = base / "root"
    if not assets.kernel_image.exists():
        deb = _download_package(package, base)
        if unpacked.exists():
            shutil.rmtree(unpacked)
        _run(["dpkg-deb", "-x", str(deb), str(unpacked)], "unpack the kernel package")
        deb.unlink()
        _run(["depmod", "-b", str(unpacked), version], "index the kernel modules (depmod)")
    assets.initramfs.write_bytes(_build_initramfs(assets.modules_dir))
    stamp.write_text(_initramfs_fingerprint())
    return assets


def _initramfs_fingerprint() -> str:
    return (GUEST_DIR / "initramfs-init").read_text() + "\n".join(INITRAMFS_MODULES)


def _debian_kernel_package() -> str:
    """The concrete kernel package behind Debian's `linux-image-amd64` metapackage."""
    override = os.environ.get("HAIPVS_LAB_KERNEL_PACKAGE")
    if override:
        return override
    if shutil.which("apt-cache") is None:
        raise LabSetupError(
            "the lab needs Debian's kernel package; this machine has no apt-cache. "
            "Run it on Debian or Ubuntu, or on a host whose kernel has IPVS."
        )
    arch = subprocess.run(
        ["dpkg", "--print-architecture"], capture_output=True, text=True, check=False
    ).stdout.strip()
    if arch != "amd64":
        raise LabSetupError(f"the QEMU lab supports amd64 hosts; this one is {arch or 'unknown'}")
    out = subprocess.run(
        ["apt-cache", "depends", "linux-image-amd64"], capture_output=True, text=True, check=False
    ).stdout
    match = re.search(r"Depends:\s+(linux-image-[0-9][^\s]*-amd64)\b", out)
    if match is None:
        raise LabSetupError(
            "apt does not know linux-image-amd64: run `apt-get update` first"
        )
    return match.group(1)


def _download_package(package: str, directory: Path) -> Path:
    for old in directory.glob("*.deb"):
        old.unlink()
    result = subprocess.run(
        ["apt-get", "download", package], cwd=directory, capture_output=True, text=True, check=False
    )
    debs = sorted(directory.glob(f"{package}_*.deb"))
    if result.returncode != 0 or not debs:
        raise LabSetupError(
            f"`apt-get download {package}` failed: {result.stderr.strip()[-400:]}\n"
            "run `apt-get update` and try again"
        )
    return debs[0]


def _run(argv: list[str], what: str) -> None:
    result = subprocess.run(argv, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise LabSetupError(f"could not {what}: {' '.join(argv)}: {result.stderr.strip()[-400:]}")


def _module_order(modules_dir: Path, wanted: tuple[str, ...]) -> list[str]:
    """Relative paths of `wanted` and their dependencies, dependencies first."""
    deps: dict[str, list[str]] = {}
    by_name: dict[str, str] = {}
    for line in (modules_dir / "modules.dep").read_text().splitlines():
        path, _, rest = line.partition(":")
        deps[path] = rest.split()
        name = Path(path).name.split(".ko")[0].replace("-", "_")
        by_name[name] = path
    builtin_path = modules_dir / "modules.builtin"
    builtin = builtin_path.read_text() if builtin_path.exists() else ""
    order: list[str] = []

    def visit(path: str) -> None:
        if path in order:
            return
        for dep in reversed(deps.get(path, [])):
            visit(dep)
        order.append(path)

    for name in wanted:
        found = by_name.get(name.replace("-", "_"))
        if found is None:
            if f"/{name}.ko" in builtin:
                continue
            raise LabSetupError(f"the guest kernel has no module {name}")
        visit(found)
    return order


def _busybox() -> Path:
    for candidate in BUSYBOX_CANDIDATES:
        path = Path(candidate)
        if path.exists():
            out = subprocess.run(
                ["file", "-L", str(path)], capture_output=True, text=True, check=False
            ).stdout
            if "statically linked" in out or "static-pie" in out or not out:
                return path
    raise LabSetupError("the lab needs a static busybox: apt-get install busybox-static")


def _build_initramfs(modules_dir: Path) -> bytes:
    archive = _Cpio()
    for directory in ("bin", "dev", "proc", "sys", "newroot", "modules"):
        archive.add_dir(directory)
    archive.add_file("bin/busybox", _busybox().read_bytes(), mode=0o755)
    archive.add_file("init", (GUEST_DIR / "initramfs-init").read_bytes(), mode=0o755)
    names = []
    for relative in _module_order(modules_dir, INITRAMFS_MODULES):
        data = (modules_dir / relative).read_bytes()
        name = Path(relative).name
        if name.endswith(".xz"):
            data, name = lzma.decompress(data), name.removesuffix(".xz")
        elif name.endswith(".zst"):
            raise LabSetupError("zstd-compressed modules are not supported by the lab initramfs")
        archive.add_file(f"modules/{name}", data, mode=0o644)
        names.append(name)
    archive.add_file("modules.order", ("\n".join(names) + "\n").encode(), mode=0o644)
    return gzip.compress(archive.finish(), compresslevel=1)


class _Cpio:
    """A writer for the `newc` cpio format, the one the kernel unpacks as initramfs."""

    def __init__(self) -> None:
        self._out = io.BytesIO()
        self._inode = 1

    def add_dir(self, name: str) -> None:
        self._entry(name, b"", 0o040755)

    def add_file(self, name: str, data: bytes, *, mode: int) -> None:
        self._entry(name, data, 0o100000 | mode)

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", b"", 0)
        return self._out.getvalue()

    def _entry(self, name: str, data: bytes, mode: int) -> None:
        encoded = name.encode() + b"\0"
        fields = (self._inode, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0)
        header = b"070701" + b"".join(f"{value:08X}".encode() for value in fields)
        self._inode += 1
        self._write_padded(header + encoded)
        self._write_padded(data)

    def _write_padded(self, chunk: bytes) -> None:
        self._out.write(chunk)
        self._out.write(b"\0" * (-self._out.tell() % 4))
