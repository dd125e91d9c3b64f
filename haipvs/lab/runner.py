"""Run one command as root in a kernel that has IPVS: natively or in a guest (UML or QEMU).

Backends, chosen by `HAIPVS_LAB_BACKEND` (auto by default: native, else uml, else qemu):

- native: this host's kernel has IPVS (or can load it) and we are root. The command
  runs here, with HAIPVS_IN_LAB=1 in its environment.
- qemu: Debian's kernel boots under QEMU with this machine's root filesystem over
  9p (same paths, so the project's own virtualenv runs inside unchanged). KVM is
  used when it works; the first run probes it once and remembers the answer,
  because a nested /dev/kvm can open fine and then hang the boot. Without KVM the
  guest is emulated (TCG): correct and timer-accurate, but its CPU is many times
  slower, so compare CPU figures only with figures taken in the same boot.

- uml (preferred when installed): Debian's user-mode-linux kernel with this
  machine's root over hostfs. Guest user code runs at native speed (only system
  calls are slow), it boots in about a second, and it has one CPU. On hosts whose
  CPU has AVX-512/AMX state, UML 6.1's FPU restore is refused by the host kernel
  (EFAULT); guest/uml_xstate_shim.c, preloaded into the UML process, fixes that.

The command's output is streamed; the kernel's console goes to a log file that is
shown only when the guest dies before the command finishes.

A guest mounts its own tmpfs on /tmp and /run (guest/init.sh). Host paths below them
that the command needs (its working directory, the interpreter's prefix, the paths
in its argv and PYTHONPATH, the run directory) are mounted back at the same place,
so a checkout or virtualenv in /tmp works in the guest as it does on the host.
"""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from haipvs.lab.assets import (
    GUEST_DIR,
    PRELOAD_MODULES,
    GuestAssets,
    LabSetupError,
    cache_root,
    prepare_guest_assets,
    prepare_uml_assets,
)

__all__ = [
    "LabResult",
    "LabSetupError",
    "host_has_ipvs",
    "host_paths_to_keep",
    "rerun_in_lab_unless_ipvs",
    "run_in_lab",
]

TIMEOUT_EXIT = 124
GUEST_DIED_EXIT = 125

# The guest's environment is the caller's, minus what only makes sense on the host.
_ENV_DROP = frozenset({"PWD", "OLDPWD", "SHLVL", "_", "TERM_PROGRAM", "NOTIFY_SOCKET"})

# Where guest/init.sh mounts a tmpfs of the guest's own.
GUEST_PRIVATE_DIRS = ("/tmp", "/run")


@dataclass(frozen=True, slots=True)
class LabResult:
    exit_status: int
    backend: str
    seconds: float


def host_has_ipvs() -> bool:
    """True when this kernel has IPVS loaded or can load it (and we may)."""
    if os.geteuid() != 0:
        return False
    if Path("/proc/net/ip_vs").exists():
        return True
    if shutil.which("modprobe") is None:
        return False
    result = subprocess.run(["modprobe", "ip_vs"], capture_output=True, check=False)
    return result.returncode == 0 and Path("/proc/net/ip_vs").exists()


def rerun_in_lab_unless_ipvs(
    script: str, argv: Sequence[str], *, timeout: float, cwd: str | None = None
) -> int | None:
    """For bench scripts, which enter the lab themselves: None when this process can use
    IPVS (it runs in the lab, or this kernel has IPVS); otherwise ``script argv`` is run
    in the lab with this interpreter, and its exit status is returned."""
    if os.environ.get("HAIPVS_IN_LAB") == "1" or host_has_ipvs():
        return None
    command = [sys.executable, script, *argv]
    print(f"# no IPVS in this kernel: running in the lab: {shlex.join(command)}", flush=True)
    try:
        return run_in_lab(command, timeout=timeout, cwd=cwd).exit_status
    except LabSetupError as error:
        print(f"haipvs lab: {error}", file=sys.stderr)
        return 2


def run_in_lab(
    argv: Sequence[str],
    *,
    timeout: float,
    backend: str | None = None,
    env: Mapping[str, str] | None = None,
    cwd: str | None = None,
) -> LabResult:
    """Run argv as root in a kernel with IPVS and return its exit status."""
    if os.geteuid() != 0:
        raise LabSetupError(
            "the lab runs as root (it builds namespaces and programs IPVS): use sudo"
        )
    if not argv:
        raise LabSetupError("nothing to run: give a command after `--`")
    chosen = backend or os.environ.get("HAIPVS_LAB_BACKEND", "auto")
    environment = dict(os.environ if env is None else env)
    workdir = cwd or os.getcwd()
    started = time.monotonic()
    if chosen == "native" or (chosen == "auto" and host_has_ipvs()):
        status = _run_native(argv, timeout=timeout, env=environment, cwd=workdir)
        return LabResult(status, "native", time.monotonic() - started)
    if chosen == "uml" or (chosen == "auto" and shutil.which("linux") is not None):
        status = _run_uml(argv, timeout=timeout, env=environment, cwd=workdir)
        return LabResult(status, "uml", time.monotonic() - started)
    if chosen not in ("auto", "qemu"):
        raise LabSetupError(f"unknown lab backend {chosen!r}: use auto, native, uml or qemu")
    status, accel = _run_qemu(argv, timeout=timeout, env=environment, cwd=workdir)
    return LabResult(status, f"qemu-{accel}", time.monotonic() - started)


def _run_native(argv: Sequence[str], *, timeout: float, env: dict[str, str], cwd: str) -> int:
    env = {**env, "HAIPVS_IN_LAB": "1"}
    process = subprocess.Popen(list(argv), env=env, cwd=cwd, start_new_session=True)
    try:
        return process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
        _say(f"timed out after {timeout:g} s: {shlex.join(argv)} was killed")
        return TIMEOUT_EXIT


def _qemu_binary() -> str:
    binary = shutil.which("qemu-system-x86_64")
    if binary is None:
        raise LabSetupError(
            "this kernel has no IPVS, so the lab boots a guest kernel and needs QEMU: "
            "apt-get install qemu-system-x86 busybox-static"
        )
    return binary


def _kvm_usable() -> bool:
    try:
        fd = os.open("/dev/kvm", os.O_RDWR)
    except OSError:
        return False
    os.close(fd)
    return True


def _choose_accel(assets: GuestAssets) -> str:
    forced = os.environ.get("HAIPVS_LAB_ACCEL")
    if forced in ("kvm", "tcg"):
        return forced
    if not _kvm_usable():
        return "tcg"
    remembered = cache_root() / "accel"
    if remembered.exists():
        return remembered.read_text().strip()
    # A nested /dev/kvm may accept a VM and then never boot it: try once, briefly.
    status = _boot(assets, ["true"], accel="kvm", timeout=30.0, env={}, cwd="/", quiet=True)
    accel = "kvm" if status == 0 else "tcg"
    remembered.write_text(accel + "\n")
    return accel


def _run_qemu(
    argv: Sequence[str], *, timeout: float, env: dict[str, str], cwd: str
) -> tuple[int, str]:
    _qemu_binary()
    assets = prepare_guest_assets()
    accel = _choose_accel(assets)
    return _boot(assets, argv, accel=accel, timeout=timeout, env=env, cwd=cwd, quiet=False), accel


def _run_uml(argv: Sequence[str], *, timeout: float, env: dict[str, str], cwd: str) -> int:
    assets = prepare_uml_assets()

    def command(
        rundir: Path, params: dict[str, str], console: int
    ) -> tuple[list[str], dict[str, str]]:
        memory = os.environ.get("HAIPVS_LAB_MEM", "2048")
        params["HAIPVS_LAB_OUTPUT"] = "/dev/tty1"
        words = [f"{key}={value}" for key, value in params.items()]
        argv = [
            str(assets.linux), f"mem={memory}M", "rootfstype=hostfs", "rw", "quiet",
            f"init={GUEST_DIR / 'init.sh'}", *words,
            # tty0 (the kernel's console) to the console log; tty1 (the command's
            # output) to our stdout.
            "con=null", f"con0=null,fd:{console}", "con1=null,fd:1",
        ]
        return argv, {"LD_PRELOAD": str(assets.xstate_shim), "TMPDIR": str(rundir)}

    return _guest_run(
        command, argv, timeout=timeout, env=env, cwd=cwd, modules=assets.modules_dir,
        quiet=False, console_fd=True,
    )


def _boot(
    assets: GuestAssets,
    argv: Sequence[str],
    *,
    accel: str,
    timeout: float,
    env: Mapping[str, str],
    cwd: str,
    quiet: bool,
) -> int:
    def command(
        rundir: Path, params: dict[str, str], console: int
    ) -> tuple[list[str], dict[str, str]]:
        params["HAIPVS_LAB_OUTPUT"] = "/dev/hvc0"
        words = " ".join(f"{key}={value}" for key, value in params.items())
        memory = os.environ.get("HAIPVS_LAB_MEM", "2048")
        cpus = os.environ.get("HAIPVS_LAB_CPUS", "2")
        qemu = [
            _qemu_binary(),
            *(["-accel", "kvm", "-cpu", "host"] if accel == "kvm"
              else ["-accel", "tcg,thread=multi,tb-size=512", "-cpu", "max"]),
            "-m", memory, "-smp", cpus,
            "-nodefaults", "-no-reboot", "-display", "none",
            "-kernel", str(assets.kernel_image),
            "-initrd", str(assets.initramfs),
            "-append", f"console=ttyS0 quiet panic=-1 {words}",
            "-virtfs",
            "local,path=/,mount_tag=hostroot,security_model=passthrough,multidevs=remap",
            "-serial", f"file:{rundir / 'console.log'}",
            "-device", "virtio-serial",
            "-chardev", "stdio,id=out,signal=off",
            "-device", "virtconsole,chardev=out",
            "-device", "virtio-rng-pci",
        ]
        return qemu, {}

    return _guest_run(
        command, argv, timeout=timeout, env=env, cwd=cwd, modules=assets.modules_dir,
        quiet=quiet, console_fd=False,
    )


# (run directory, kernel parameters, console log fd) -> (argv, extra environment)
GuestCommand = Callable[[Path, dict[str, str], int], tuple[list[str], dict[str, str]]]


def _guest_run(
    make_command: GuestCommand,
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str],
    cwd: str,
    modules: Path,
    quiet: bool,
    console_fd: bool,
) -> int:
    """Boot a guest that runs argv through guest/init.sh; return argv's exit status."""
    runs = cache_root() / "runs"
    runs.mkdir(parents=True, exist_ok=True)
    rundir = Path(tempfile.mkdtemp(prefix="run-", dir=runs))
    try:
        (rundir / "cmd.sh").write_text(_command_script(argv, env, timeout))
        console = rundir / "console.log"
        keep = host_paths_to_keep(argv, env, cwd, extra=(str(rundir), str(modules)))
        params = {
            "HAIPVS_LAB_INIT": str(GUEST_DIR / "init.sh"),
            "HAIPVS_LAB_RUN": str(rundir),
            "HAIPVS_LAB_CWD": cwd,
            "HAIPVS_LAB_MODULES": str(modules),
            # The kernel command line splits on spaces: commas inside one word.
            "HAIPVS_LAB_PRELOAD": ",".join(PRELOAD_MODULES),
            "HAIPVS_LAB_KEEP": ",".join(keep),
        }
        for key, value in params.items():
            if " " in value:
                raise LabSetupError(f"lab paths cannot contain spaces: {key}={value}")
        for path in keep:
            if "," in path:
                raise LabSetupError(f"lab paths under /tmp or /run cannot contain commas: {path}")
        stdout = subprocess.DEVNULL if quiet else None
        with open(rundir / "guest.err", "wb") as guest_err, open(console, "wb") as console_out:
            command, extra_env = make_command(rundir, params, console_out.fileno())
            pass_fds: tuple[int, ...] = ()
            if console_fd:
                pass_fds = (console_out.fileno(),)
            process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=stdout, stderr=guest_err,
                env={**os.environ, **extra_env}, pass_fds=pass_fds, start_new_session=True,
            )
            try:
                # Boot and power-off are not the command's time: this is a backstop only,
                # timeout(1) inside the guest stops the command first.
                process.wait(timeout=timeout + 60.0)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                if not quiet:
                    _say(f"timed out after {timeout:g} s: {shlex.join(argv)}; guest stopped")
                return TIMEOUT_EXIT
        rc_file = rundir / "rc"
        if not rc_file.exists():
            if not quiet:
                tail = console.read_text(errors="replace")[-3000:]
                err = (rundir / "guest.err").read_text(errors="replace")[-1000:]
                _say(
                    "the guest stopped before the command finished "
                    f"(exit {process.returncode}); its console:"
                )
                sys.stderr.write(tail + "\n" + err + "\n")
            return GUEST_DIED_EXIT
        status = int(rc_file.read_text().strip() or GUEST_DIED_EXIT)
        if status == TIMEOUT_EXIT and not quiet:
            _say(f"timed out after {timeout:g} s: {shlex.join(argv)} was stopped")
        return status
    finally:
        shutil.rmtree(rundir, ignore_errors=True)


def host_paths_to_keep(
    argv: Sequence[str],
    env: Mapping[str, str],
    cwd: str,
    *,
    extra: Sequence[str] = (),
    exists: Callable[[str], bool] = os.path.isdir,
) -> list[str]:
    """The host directories under /tmp or /run that the guest must mount back.

    Each is the top directory below /tmp or /run (``/tmp/x`` for ``/tmp/x/.venv/bin/python``)
    that one of these names: the working directory, this interpreter and its prefix, the
    absolute paths in argv (also after ``=`` in ``--opt=/path``), VIRTUAL_ENV and
    PYTHONPATH, and ``extra``. Only directories that exist on the host are kept.
    """
    candidates = [cwd]
    for word in argv:
        candidates.extend(word.split("="))
    candidates.append(env.get("VIRTUAL_ENV", ""))
    candidates.extend(env.get("PYTHONPATH", "").split(os.pathsep))
    candidates.extend([sys.executable, sys.prefix, *extra])
    kept: list[str] = []
    for candidate in candidates:
        if not candidate.startswith("/"):
            continue
        parts = Path(os.path.normpath(candidate)).parts  # ("/", "tmp", "x", ...)
        if len(parts) < 3 or f"/{parts[1]}" not in GUEST_PRIVATE_DIRS:
            continue
        top = f"/{parts[1]}/{parts[2]}"
        if top not in kept and exists(top):
            kept.append(top)
    return kept


def _command_script(argv: Sequence[str], env: Mapping[str, str], timeout: float) -> str:
    lines = ["# written by haipvs lab: the command and its environment"]
    for key, value in sorted(env.items()):
        if key in _ENV_DROP or not key.replace("_", "a").isalnum() or key[0].isdigit():
            continue
        lines.append(f"export {key}={shlex.quote(value)}")
    lines.append("export HAIPVS_IN_LAB=1")
    # timeout(1) inside the guest stops the command cleanly, so the guest still
    # powers off and reports; the host's own deadline is only a backstop.
    lines.append(f"exec timeout -k 5 {timeout:g} {shlex.join(argv)}")
    return "\n".join(lines) + "\n"


def _say(message: str) -> None:
    print(f"haipvs lab: {message}", file=sys.stderr, flush=True)
