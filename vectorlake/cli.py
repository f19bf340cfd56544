"""The `vectorlake` command.

    vectorlake stack up [--with NAME]    start the local servers and wait until they are healthy
    vectorlake stack down                stop them
    vectorlake stack status              print each server's state; exit 0 only when all are healthy

Errors a user can fix are printed as one line (`vectorlake: error: ...`) with exit code 1; argument errors
exit with 2, as argparse does.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence

from vectorlake.config import Config, load_config
from vectorlake.errors import VectorlakeError

log = logging.getLogger("vectorlake")

Command = Callable[[Config, argparse.Namespace], int]


def _stack_up(cfg: Config, args: argparse.Namespace) -> int:
    from vectorlake import stack

    st = stack.up(cfg, args.with_servers)
    _print_status(st)
    return 0


def _stack_down(cfg: Config, args: argparse.Namespace) -> int:
    from vectorlake import stack

    stopped = stack.down(cfg, args.with_servers)
    print(f"stopped: {', '.join(stopped)}" if stopped else "nothing was running")
    return 0


def _stack_status(cfg: Config, args: argparse.Namespace) -> int:
    from vectorlake import stack

    st = stack.status(cfg, args.with_servers)
    _print_status(st)
    return 0 if st.healthy else 1


def _print_status(st: object) -> None:
    from vectorlake.stack import StackStatus

    assert isinstance(st, StackStatus)
    rows = [
        (s.name, "healthy" if s.healthy else "DOWN", s.address, f"pid {s.pid}" if s.pid else "-", s.detail)
        for s in st.servers
    ]
    uri, ready, detail = st.mlflow
    rows.append(("mlflow", "ready" if ready else "DOWN", uri, "-", detail))
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        print("  ".join(c.ljust(w) for c, w in zip(r[:4], widths, strict=True)) + "  " + r[4])
    for s in st.servers:
        if not s.healthy:
            print(f"{s.name} log: {s.log_path}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="vectorlake", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--env", help="config environment: conf/<ENV>.yaml (default: $VECTORLAKE_ENV or local)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    from vectorlake.stack import OPTIONAL_SERVERS

    stack = sub.add_parser("stack", help="start, stop or inspect the local servers")
    stack_sub = stack.add_subparsers(dest="action", required=True, metavar="ACTION")
    for name, func, text in (
        ("up", _stack_up, "start the local servers and wait until they are healthy"),
        ("down", _stack_down, "stop the local servers"),
        ("status", _stack_status, "print each server's state; exit 0 only when all are healthy"),
    ):
        p = stack_sub.add_parser(name, help=text)
        p.add_argument(
            "--with",
            dest="with_servers",
            action="append",
            default=[],
            choices=sorted(OPTIONAL_SERVERS),
            metavar="NAME",
            help=f"also the optional server NAME ({', '.join(sorted(OPTIONAL_SERVERS)) or 'none yet'})",
        )
        p.set_defaults(func=func)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    try:
        cfg = load_config(env=args.env)
        func: Command = args.func
        return func(cfg, args)
    except VectorlakeError as e:
        print(f"vectorlake: error: {e}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("vectorlake: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
