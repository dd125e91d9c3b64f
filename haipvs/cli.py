"""The `haipvs` command line: one sub-command per operator task.

Each sub-command lives in the module that owns its subject; this file only parses
arguments and dispatches, importing the owner lazily so `haipvs check-config` does
not pay for the lab or the daemon.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Callable, Sequence

Handler = Callable[[argparse.Namespace], int]


def _run_check_config(args: argparse.Namespace) -> int:
    if getattr(args, "host", False):
        from haipvs.preflight import check_config_and_host

        return check_config_and_host(args.file)
    from haipvs.daemon.check import check_config_command

    return check_config_command(args.file, offline=args.offline)


def _run_plan(args: argparse.Namespace) -> int:
    from haipvs.daemon.plan import plan_command

    return plan_command(args)


def _run_lab(args: argparse.Namespace) -> int:
    from haipvs.lab.command import lab_command

    return lab_command(args)


def _run_daemon(args: argparse.Namespace) -> int:
    # structlog imports rich at import time when it is installed (for pretty tracebacks
    # on a terminal; a development environment has it through its tools): about a fifth
    # of the daemon's imports before its VRRP process can fork, on every start. The
    # daemon never renders rich tracebacks (its lines are JSON or plain key=value), so
    # it starts without: structlog then formats exceptions as Python does.
    sys.modules.setdefault("rich", None)  # type: ignore[arg-type]
    # No cyclic collection while the daemon starts: its imports and config build
    # hundreds of thousands of objects that all live as long as it does, and the
    # collector would walk them again and again (~5 % of the start's CPU). The
    # supervisor freezes them and turns the collector back on once it has started;
    # the VRRP process it forks does so at once.
    gc.disable()
    from haipvs.supervisor import run_command

    return run_command(args)


def _run_status(args: argparse.Namespace) -> int:
    from haipvs.status.command import status_command

    return status_command(args)


def _run_admin(args: argparse.Namespace) -> int:
    from haipvs.daemon.admin import admin_command

    return admin_command(args)


def _run_version(args: argparse.Namespace) -> int:
    del args
    print(f"haipvs {package_version()}")
    return 0


def package_version() -> str:
    """The installed package's version (pyproject), what `haipvs --version` prints."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("haipvs")
    except PackageNotFoundError:  # run from a source tree that is not installed
        return "unknown"


class _VersionAction(argparse.Action):
    """--version, reading the package metadata only when asked (it costs every start)."""

    def __call__(self, parser: argparse.ArgumentParser, namespace: argparse.Namespace,
                 values: object, option_string: str | None = None) -> None:
        print(f"haipvs {package_version()}")
        parser.exit()


def _seconds(text: str) -> float:
    """A positive number of seconds (argparse type)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not value > 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"must be more than 0 seconds: {text!r}")
    return value


def _add_admin_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """drain, undrain, maintenance, failover, overrides: haipvs.daemon.admin talks to the
    daemon's admin socket (see docs/operator-actions.md)."""

    def socket_option(parser: argparse.ArgumentParser) -> None:
        parser.add_argument("--socket", default=None,
                            help="the daemon's admin socket (default: "
                                 "$RUNTIME_DIRECTORY/admin.sock or /run/haipvs/admin.sock)")
        parser.set_defaults(handler=_run_admin)

    drain = commands.add_parser("drain", help="weight 0 for a real server; "
                                "its connections carry on, new ones go elsewhere")
    undrain = commands.add_parser("undrain", help="end a drain: the configured weight again")
    for parser in (drain, undrain):
        parser.add_argument("target", metavar="ADDR[:PORT]")
        parser.add_argument("--service", default=None, metavar="NAME",
                            help="only in this virtual server (default: every one)")
        socket_option(parser)
    drain.add_argument("--wait", action="store_true",
                       help="report the connections left until there is none (exit 0)")
    drain.add_argument("--timeout", type=_seconds, default=None, metavar="SECONDS",
                       help="with --wait: stop waiting after SECONDS (exit 3, connections "
                       "left; the drain stays in force)")
    drain.add_argument("--interval", type=float, default=1.0, help=argparse.SUPPRESS)
    maintenance = commands.add_parser(
        "maintenance", help="take a real server out (connections drained first) or back")
    maintenance.add_argument("state", choices=("on", "off"))
    maintenance.add_argument("target", metavar="ADDR[:PORT]")
    maintenance.add_argument("--service", default=None, metavar="NAME")
    socket_option(maintenance)
    failover = commands.add_parser(
        "failover", help="hand a VRRP instance's mastership to the peer and stay backup")
    failover.add_argument("instance")
    failover.add_argument("--for", dest="hold_for", type=float, default=None,
                          metavar="SECONDS", help="hold it as backup this long "
                          "(default: until --release)")
    failover.add_argument("--release", action="store_true",
                          help="end the hold: the instance may preempt again")
    socket_option(failover)
    for name, text in (
        ("drain-director", "scale-out mode: withdraw every VIP from the routers (BGP); "
                           "the other directors take the flows"),
        ("undrain-director", "end drain-director: announce again once the gates hold"),
    ):
        socket_option(commands.add_parser(name, help=text))
    overrides = commands.add_parser("overrides", help="list the operator's overrides")
    overrides.add_argument("--json", action="store_true")
    socket_option(overrides)


def _run_import_keepalived(args: argparse.Namespace) -> int:
    from haipvs.importer.command import import_keepalived_command

    return import_keepalived_command(args)


def _run_schema(_args: argparse.Namespace) -> int:
    from haipvs.config.schema import schema_command

    return schema_command()


def _run_completion(args: argparse.Namespace) -> int:
    from haipvs.completion import completion_command

    return completion_command(args.shell, build_parser())


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The whole command line. ``command``: the sub-command about to run, when known; the
    status command's exit-code epilog (its module pulls in urllib and http.client, a tenth
    of `haipvs run`'s imports on a slow CPU) is then built only for ``status`` itself."""
    parser = argparse.ArgumentParser(
        prog="haipvs",
        description="High-availability director for Linux Virtual Server (IPVS).",
    )
    parser.add_argument("--version", action=_VersionAction, nargs=0,
                        help="print the haipvs version and exit")
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
        "--host", action="store_true",
        help="also check this host for the config: IP forwarding (NAT), rp_filter (TUN), "
        "the VRRP interfaces, the firewall letting VRRP in, the IPVS sysctls; each problem "
        "with the command that fixes it (exit 1 on an error)",
    )
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

    epilog = None
    if command in (None, "status"):
        from haipvs.status.command import EXIT_CODES_HELP

        epilog = EXIT_CODES_HELP
    status = commands.add_parser(
        "status", help="show VRRP state and the IPVS table with health", epilog=epilog
    )
    status.add_argument(
        "-c", "--config", default=None,
        help="read director.api and director.api_token from this file "
        "(default: /etc/haipvs/haipvs.yaml, when readable)",
    )
    status.add_argument(
        "--api", default=None,
        help="HOST:PORT of the status API (default: $HAIPVS_API, the config's director.api, "
        "127.0.0.1:9797)",
    )
    status.add_argument(
        "--token", default=None,
        help="API token (default: $HAIPVS_API_TOKEN, the config's director.api_token)",
    )
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

    schema = commands.add_parser(
        "schema", help="print the JSON Schema of the config file (for editors and linters)"
    )
    schema.set_defaults(handler=_run_schema)

    completion = commands.add_parser(
        "completion", help="print the shell completion script (bash or zsh)"
    )
    completion.add_argument("shell", choices=("bash", "zsh"))
    completion.set_defaults(handler=_run_completion)

    _add_admin_commands(commands)

    version = commands.add_parser("version", help="print the haipvs version")
    version.set_defaults(handler=_run_version)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    command = next((word for word in arguments if not word.startswith("-")), None)
    parser = build_parser(command)
    args = parser.parse_args(arguments)
    handler: Handler = args.handler
    return handler(args)


if __name__ == "__main__":
    sys.exit(main())
