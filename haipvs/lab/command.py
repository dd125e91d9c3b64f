"""`haipvs lab ...`: the operator-facing side of the lab (run, setup, demo)."""

from __future__ import annotations

import argparse
import sys

__all__ = ["add_lab_arguments", "lab_command"]

DEFAULT_TIMEOUT = 600.0
_DEMOS = {"pair": "haipvs.lab.demo", "scaleout": "haipvs.lab.demo_scaleout"}


def add_lab_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="lab_command", required=True, metavar="LAB_COMMAND")
    run = sub.add_parser(
        "run",
        help="run a command as root in a kernel with IPVS",
        description=(
            "Run CMD as root in a kernel that has IPVS: natively when this kernel has it, "
            "otherwise in a guest kernel (Debian's user-mode-linux, or QEMU) that uses this "
            "machine's filesystem as its root. "
            "Exits with CMD's exit status (124 when it outlived --timeout)."
        ),
    )
    run.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT, help="seconds (default 600)")
    run.add_argument(
        "--backend", choices=("auto", "native", "uml", "qemu"), default=None,
        help="where to run: auto is native if this kernel has IPVS, else uml if "
        "user-mode-linux is installed, else qemu (default: $HAIPVS_LAB_BACKEND or auto)",
    )
    run.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD [ARGS...]")
    sub.add_parser("setup", help="fetch and build the guest kernel and initramfs now")
    demo = sub.add_parser(
        "demo", help="two directors, three real servers and a client: failures and failover "
        "(scaleout: three active directors behind ECMP, a death, a join, a drain)"
    )
    demo.add_argument("scenario", nargs="?", choices=("pair", "scaleout"), default="pair")
    demo.add_argument("--timeout", type=float, default=None,
                      help="seconds (default 300, scaleout 900)")


def lab_command(args: argparse.Namespace) -> int:
    from haipvs.lab.runner import LabSetupError, run_in_lab

    try:
        if args.lab_command == "setup":
            import shutil

            from haipvs.lab.assets import prepare_guest_assets, prepare_uml_assets

            # The guest `auto` would boot: user-mode-linux when installed, else QEMU's.
            if shutil.which("linux") is not None:
                uml = prepare_uml_assets()
                print(f"haipvs lab: user-mode-linux {uml.modules_dir.name} ready")
                return 0
            assets = prepare_guest_assets()
            print(f"haipvs lab: guest kernel {assets.kernel_version} ready")
            return 0
        if args.lab_command == "demo":
            timeout = args.timeout or (900.0 if args.scenario == "scaleout" else 300.0)
            return run_in_lab(
                [sys.executable, "-m", _DEMOS[args.scenario]], timeout=timeout
            ).exit_status
        argv = list(args.argv)
        if argv and argv[0] == "--":
            argv = argv[1:]
        return run_in_lab(argv, timeout=args.timeout, backend=args.backend).exit_status
    except LabSetupError as error:
        print(f"haipvs lab: {error}", file=sys.stderr)
        return 2
