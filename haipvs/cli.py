"""The `haipvs` command line: one sub-command per operator task (design.md §4.2).

Each sub-command lives in the module that owns its subject; this file only parses
arguments and dispatches, importing the owner lazily so `haipvs check-config` does
not pay for the lab or the daemon.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

Handler = Callable[[argparse.Namespace], int]


def _run_check_config(args: argparse.Namespace) -> int:
    from haipvs.config.check import check_config_command

    return check_config_command(args.file, offline=args.offline)


def _run_plan(args: argparse.Namespace) -> int:
    from haipvs.daemon.plan import plan_command

    return plan_command(args)


def _run_lab(args: argparse.Namespace) -> int:
    from haipvs.lab.command import lab_command

    return lab_command(args)


def _run_daemon(args: argparse.Namespace) -> int:
    from haipvs.supervisor import run_command

    return run_command(args)


def _run_status(args: argparse.Namespace) -> int:
    from haipvs.status.command import status_command

    return status_command(args)


def _run_import_keepalived(args: argparse.Namespace) -> int:
    from haipvs.importer.command import import_keepalived_command

    return import_keepalived_command(args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="haipvs",
        description="High-availability director for Linux Virtual Server (IPVS).",
    )
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = commands.add_parser("run", help="run the director daemon in the foreground")
    run.add_argument("-c", "--config", required=True, help="the YAML config file")
    run.add_argument(
        "--remove-ipvs-on-exit",
        action="store_true",
        help="delete the services haipvs owns at shutdown "
        "(default: keep them for a hitless restart)",
    )
    run.set_defaults(handler=_run_daemon)

    check = commands.add_parser(
        "check-config", help="validate a config file; never touches the kernel"
    )
    check.add_argument("file")
    check.add_argument(
        "--offline", action="store_true",
        help="skip what depends on this host (scripts, interfaces), for a file meant for "
        "another machine",
    )
    check.set_defaults(handler=_run_check_config)

    plan = commands.add_parser(
        "plan",
        help="what a reload of FILE would do to the running daemon "
        "(exit 0 no change, 10 changes, 1 invalid)",
    )
    plan.add_argument("file")
    plan.add_argument("--api", default="127.0.0.1:9797", help="HOST:PORT of the status API")
    plan.add_argument("--token", default=None, help="API token (when the API is not on loopback)")
    plan.add_argument(
        "--running", default=None, metavar="FILE",
        help="compare with this file instead of the running daemon's config",
    )
    plan.add_argument(
        "--offline", action="store_true",
        help="skip what depends on this host (scripts, interfaces) when checking FILE",
    )
    plan.set_defaults(handler=_run_plan)

    status = commands.add_parser("status", help="show VRRP state and the IPVS table with health")
    status.add_argument("--api", default="127.0.0.1:9797", help="HOST:PORT of the status API")
    status.add_argument("--token", default=None, help="API token (when the API is not on loopback)")
    status.add_argument("--json", action="store_true", help="print the raw JSON snapshot")
    status.set_defaults(handler=_run_status)

    lab = commands.add_parser("lab", help="the lab: a kernel with IPVS, on this machine")
    from haipvs.lab.command import add_lab_arguments

    add_lab_arguments(lab)
    lab.set_defaults(handler=_run_lab)

    imp = commands.add_parser(
        "import-keepalived", help="translate a keepalived.conf into a haipvs YAML config"
    )
    imp.add_argument("file")
    imp.add_argument(
        "--config-id", default=None,
        help="keepalived's config id (-i): selects @ID lines, as keepalived -i ID would",
    )
    imp.set_defaults(handler=_run_import_keepalived)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
