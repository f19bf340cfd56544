"""The `vectorlake` command.

    vectorlake stack up [--with NAME]    start the local servers and wait until they are healthy
    vectorlake stack down                stop them
    vectorlake stack status              print each server's state; exit 0 only when all are healthy
    vectorlake generate --out DIR | --kafka [--seed N --listings N --events N ... --rate R]
                                         write a synthetic catalog to a landing folder or Kafka
    vectorlake stream --source files|kafka [--once] [--landing-dir DIR]
                                         run the ingest stream (bronze, quarantine, silver)

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


def _generate(cfg: Config, args: argparse.Namespace) -> int:
    import dataclasses
    from pathlib import Path

    from vectorlake import generate
    from vectorlake.lake import sources

    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(generate.GeneratorSpec)}
    spec = generate.GeneratorSpec(**{k: v for k, v in values.items() if v is not None})
    out = Path(args.out or cfg.sources.landing_dir)
    catalog = generate.generate(spec, image_root=str(out / "images"))
    if args.kafka:
        generate.write_landing(catalog, out, streams=False)
        sources.ensure_topics(cfg)
        topics = dataclasses.asdict(cfg.sources.topics)
        sent = generate.send_kafka(catalog, cfg.kafka_bootstrap_servers, topics, args.rate)
        print(f"sent to Kafka at {cfg.kafka_bootstrap_servers}: {_counts(sent)}; images and queries in {out}")
    else:
        counts = generate.write_landing(catalog, out, args.files_per_kind, rate_per_s=args.rate)
        print(f"wrote {out}: {_counts(counts)}")
    poison = sum(catalog.poison.values())
    print(f"of which {catalog.duplicates} duplicates and {poison} poison lines ({_counts(catalog.poison)})")
    return 0


def _counts(counts: dict[str, int]) -> str:
    return ", ".join(f"{v} {k}" for k, v in counts.items())


def _stream(cfg: Config, args: argparse.Namespace) -> int:
    from vectorlake.lake import stream
    from vectorlake.spark import build_session

    stream.validate(cfg, args.source)
    spark = build_session(cfg, app_name=f"vectorlake-ingest-{args.source}")
    totals = stream.run(spark, cfg, args.source, once=args.once, landing_dir=args.landing_dir)
    print(totals.line())
    return 0


def _positive(kind: type[int] | type[float]) -> Callable[[str], int | float]:
    def parse(text: str) -> int | float:
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a {kind.__name__}, got {text!r}") from None
        if value <= 0:
            raise argparse.ArgumentTypeError(f"must be positive, got {text}")
        return value

    return parse


def _add_generate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    import dataclasses
    from datetime import datetime

    from vectorlake.generate import GeneratorSpec

    p = sub.add_parser("generate", help="write a seeded synthetic catalog to a landing folder or to Kafka")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--out", metavar="DIR", help="landing folder to write (one sub-folder per kind)")
    target.add_argument(
        "--kafka", action="store_true", help="send the events to the configured Kafka topics instead"
    )
    p.add_argument(
        "--images-dir",
        dest="out",
        metavar="DIR",
        help="with --kafka: where images and queries go (default: sources.landing_dir)",
    )
    p.add_argument("--rate", type=_positive(float), metavar="N", help="about N events/s (default: at once)")
    p.add_argument("--files-per-kind", type=_positive(int), default=4, metavar="N", help="(default: 4)")
    for f in dataclasses.fields(GeneratorSpec):
        if f.name in ("start", "image_size"):
            continue
        kind = float if f.name.endswith("_rate") else int
        p.add_argument(
            f"--{f.name.replace('_', '-')}",
            type=float if kind is float else int,
            metavar="X" if kind is float else "N",
            help=f"(default: {f.default})",
        )
    p.add_argument(
        "--start",
        type=datetime.fromisoformat,
        metavar="ISO",
        help="first event time, with a zone (default: 2026-11-01T00:00:00+00:00)",
    )
    p.set_defaults(func=_generate, image_size=None)


def _add_stream(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from vectorlake.lake.stream import SOURCES

    p = sub.add_parser("stream", help="run the ingest stream: source -> bronze, quarantine, silver")
    p.add_argument("--source", required=True, choices=SOURCES, help="the landing folder or Kafka")
    p.add_argument("--once", action="store_true", help="process what is available, then return")
    p.add_argument("--landing-dir", metavar="DIR", help="(files) default: sources.landing_dir")
    p.set_defaults(func=_stream)


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
    _add_generate(sub)
    _add_stream(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("py4j").setLevel(logging.WARNING)
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
