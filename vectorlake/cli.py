"""The `vectorlake` command.

    vectorlake stack up [--with NAME]    start the local servers and wait until they are healthy
    vectorlake stack down                stop them
    vectorlake stack status              print each server's state; exit 0 only when all are healthy
    vectorlake generate --out DIR | --kafka [--seed N --listings N --events N ... --rate R]
                                         write a synthetic catalog to a landing folder or Kafka
    vectorlake stream --source files|kafka [--once] [--landing-dir DIR] [--only ingest|index]
                                         run the main job: ingest (bronze, quarantine, silver), then
                                         embed + index (gold, OpenSearch); --once returns when done
    vectorlake models register           put the configured encoders in the mlflow registry (idempotent)
    vectorlake models show               the versions the aliases point at
    vectorlake freshness [--since ISO]   lag from event time and from receipt to indexed_at (P50/P95/max)
    vectorlake status                    pipeline progress: batches, offsets, lag, dead letters, documents
    vectorlake metrics [serve [--port N]]
                                         per-batch stream metrics in Prometheus text format (once, or served)
    vectorlake reindex [--text-model V] [--image-model V] [--generation INDEX] [--no-validate]
                                         build a new index generation from silver, then validate it
    vectorlake validate [GEN]            the validation gate (recorded in mlflow and the control table)
    vectorlake cutover [GEN]             make the validated building generation live (atomic)
    vectorlake rollback                  serve the previous generation again
    vectorlake abandon [GEN]             delete the building generation
    vectorlake generations [--adopt INDEX]
                                         list generations: state, models, aliases, gate; --adopt takes
                                         over one this lake did not create
    vectorlake retention                 delete generations retired more than index.retention_hours ago
    vectorlake backfill --from TS --to TS [--target silver|index|both]
                                         replay bronze events of a time range into silver and/or the index
    vectorlake deadletters [--since TS] [--retry]
                                         dead letters by table and reason; --retry writes their listings again
    vectorlake erase --seller ID | --listing ID
                                         record a GDPR/CCPA erasure request
    vectorlake purge [--verify REQUEST_ID] erase pending requests everywhere, vacuum, verify; or only scan
    vectorlake quality [--suite NAME ...] [--write-baseline]
                                         great-expectations suites over bronze, silver and embeddings;
                                         exit 1 when one fails (results in control/quality_results)
    vectorlake canary [--write-baseline] recall@10 and hit@10 of the labelled queries on the live
                                         generation against its baseline; exit 1 on a drop over
                                         gate.max_canary_drop
    vectorlake warehouse build           dbt snapshot + build + test of the history models
    vectorlake warehouse docs [--serve]  dbt docs generate (lineage); --serve browses them
    vectorlake search (--text T | --image FILE | --like ID) [--category C] [--locale L] [--seller S]
                      [--attr KEY=VALUE ...] [--k N] [--exact] [--json] [--local]
                                         k-NN search of the live index, filters inside the query;
                                         through the query service when it is up (--local: never)
    vectorlake serve [--host H] [--port N]
                                         the HTTP query service: POST /search, /healthz, /metrics, /docs

Errors a user can fix are printed as one line (`vectorlake: error: ...`) with exit code 1; argument errors
exit with 2, as argparse does.
"""

from __future__ import annotations

import argparse
import dataclasses
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from vectorlake.argtypes import OneLineParser, iso_time, positive_float, positive_int
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
    from vectorlake.pipeline import ingest_query, stream
    from vectorlake.spark import build_session

    ingest_query.check_settings(cfg, args.source)
    if args.only != "ingest":
        from vectorlake.embed import registry

        registry.resolve(cfg, "text")  # fail fast, before Spark starts, when the models are not registered
        registry.resolve(cfg, "image")
    spark = build_session(cfg, app_name=f"vectorlake-stream-{args.source}")
    totals = stream.run(spark, cfg, args.source, args.once, args.landing_dir, args.only)
    if totals.ingest is not None:
        print(f"ingest: {totals.ingest.line()}")
    if totals.index is not None:
        print(f"index: {totals.index.line()}")
    return 0


def _models_register(cfg: Config, args: argparse.Namespace) -> int:
    from pathlib import Path

    from vectorlake.embed import registry

    if args.from_folder is not None:
        if args.role is None:
            raise VectorlakeError("models register --from-folder needs --role text|image")
        folder = Path(args.from_folder).resolve()
        refs = [registry.register_folder(cfg, args.role, folder, f"folder:{folder.name}")]
    elif args.role is not None:
        refs = [registry.register(cfg, args.role)]
    else:
        refs = registry.register_all(cfg)
    for ref in refs:
        print(f"{ref.role}: {ref.label} ({ref.source}) at {ref.path}")
    return 0


def _models_show(cfg: Config, args: argparse.Namespace) -> int:
    from vectorlake.embed import registry

    for role in ("text", "image"):
        ref = registry.resolve(cfg, role)
        alias = getattr(cfg.embed, f"{role}_model").alias
        print(f"{role}: {ref.name}@{alias} -> version {ref.version} ({ref.source})")
    return 0


def _search(cfg: Config, args: argparse.Namespace) -> int:
    import json

    from vectorlake.query import Filters, Hit, search
    from vectorlake.serve import remote

    served, why = (False, "--local") if args.local else remote.serves(cfg)
    if served:
        answer = remote.search(cfg, _search_body(args))
        hits = [Hit(**h) for h in answer["hits"]]
        note = f"via the query service at {cfg.serve_url}: {answer['generation']}, {answer['took_ms']} ms"
    else:
        filters = Filters(
            category_id=args.category, locale=args.locale, seller_id=args.seller, attributes=dict(args.attr)
        )
        hits = search(
            cfg, text=args.text, image=args.image, like=args.like, filters=filters, k=args.k, exact=args.exact
        )
        note = f"in this process ({why})"
    print(note, file=sys.stderr)
    if args.json:
        print(json.dumps([dataclasses.asdict(h) for h in hits], ensure_ascii=False, default=str))
        return 0
    print(hit_lines(hits))
    return 0


def _search_body(args: argparse.Namespace) -> dict[str, Any]:
    """The query service's request for `vectorlake search`'s arguments (an image file goes as base64)."""
    import base64
    from pathlib import Path

    body: dict[str, Any] = {"k": args.k, "exact": args.exact}
    if args.image is not None:
        try:
            body["image_b64"] = base64.b64encode(Path(args.image).read_bytes()).decode()
        except OSError as e:
            raise VectorlakeError(f"cannot read the image {args.image}: {e.strerror or e}") from e
    else:
        body |= {"text": args.text} if args.text is not None else {"like": args.like}
    filters = {"category_id": args.category, "locale": args.locale, "seller_id": args.seller}
    body["filters"] = {k: v for k, v in filters.items() if v is not None} | {"attributes": dict(args.attr)}
    return body


def _serve(cfg: Config, args: argparse.Namespace) -> int:
    from vectorlake.serve import app
    from vectorlake.stack.process import port_in_use

    host = args.host or cfg.serve.host
    port = args.port or cfg.serve.port
    if port_in_use(host, port):
        raise VectorlakeError(
            f"port {port} on {host} is already in use; stop what holds it or pick another with --port"
        )
    print(f"query service on http://{host}:{port} (OpenAPI page: /docs; Ctrl-C stops)", flush=True)
    app.run(cfg, host, port)
    return 0


def hit_lines(hits: Sequence[Any]) -> str:
    """Search hits as `vectorlake search` prints them: score, id, title, [category, locale]."""
    if not hits:
        return "no hits"
    return "\n".join(
        f"{h.score:7.4f}  {h.listing_id}  {h.title or ''}  [{h.category_id or '-'}, {h.locale or '-'}]"
        for h in hits
    )


def _freshness(cfg: Config, args: argparse.Namespace) -> int:
    from vectorlake.ops.freshness import freshness

    for basis in ("event", "received"):
        print(freshness(cfg, basis, args.since).line())  # type: ignore[arg-type]
    return 0


def _status(cfg: Config, args: argparse.Namespace) -> int:
    from vectorlake.ops import status

    for line in status.gather(cfg).lines():
        print(line)
    return 0


def _metrics(cfg: Config, args: argparse.Namespace) -> int:
    from vectorlake.ops import metrics

    print(metrics.exposition(cfg), end="")
    return 0


def _metrics_serve(cfg: Config, args: argparse.Namespace) -> int:
    import threading

    from vectorlake.ops import metrics

    host = args.host or cfg.metrics.host
    port = args.port or cfg.metrics.port
    try:
        server, _ = metrics.serve(cfg, host, port)
    except OSError as e:
        raise VectorlakeError(f"cannot serve metrics on {host}:{port}: {e}; pick another --port") from e
    print(f"serving metrics at http://{host}:{port}/metrics (Ctrl-C stops)", flush=True)
    try:
        threading.Event().wait()
    finally:
        server.shutdown()
    return 0


def _add_metrics(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    sub.add_parser("status", help="pipeline progress, lag, dead letters and generations").set_defaults(
        func=_status
    )
    p = sub.add_parser("metrics", help="stream metrics in Prometheus text format (print once, or serve)")
    p.set_defaults(func=_metrics)
    msub = p.add_subparsers(dest="action", required=False, metavar="ACTION")
    serve = msub.add_parser("serve", help="serve /metrics until Ctrl-C (default: metrics.host:metrics.port)")
    serve.add_argument("--port", type=positive_int, metavar="N", help="default: metrics.port")
    serve.add_argument("--host", metavar="ADDR", help="bind address (default: metrics.host, 127.0.0.1)")
    serve.set_defaults(func=_metrics_serve)


def _warehouse_build(cfg: Config, args: argparse.Namespace) -> int:
    from vectorlake import warehouse

    print(warehouse.build(cfg).line())
    return 0


def _warehouse_docs(cfg: Config, args: argparse.Namespace) -> int:
    from vectorlake import warehouse

    target = warehouse.docs(cfg)
    print(f"docs in {target} (index.html, manifest.json, catalog.json)")
    if args.serve:
        print(f"serving them at http://{cfg.stack.host}:{args.port} (Ctrl-C stops)")
        warehouse.serve_docs(cfg, args.port)
    return 0


def _reindex(cfg: Config, args: argparse.Namespace) -> int:
    from vectorlake.ops import gate, lifecycle, reindex
    from vectorlake.spark import build_session

    if args.generation is None:
        gen = lifecycle.create_generation(cfg, args.text_model, args.image_model)
        print(f"building {gen.index} with {gen.text_model} + {gen.image_model}")
        index = gen.index
    else:
        index = args.generation
    spark = build_session(cfg, app_name=f"vectorlake-reindex-{index}")
    print(reindex.load(spark, cfg, index).line())
    if args.no_validate:
        print(f"not validated: run `vectorlake validate {index}`, then `vectorlake cutover {index}`")
        return 0
    report = gate.validate(cfg, index)
    print(report.text(), end="")
    if not report.passed:
        return 1
    print(f"cut it over with `vectorlake cutover {index}`")
    return 0


def _validate(cfg: Config, args: argparse.Namespace) -> int:
    from vectorlake.ops import gate

    report = gate.validate(cfg, args.generation)
    print(report.text(), end="")
    return 0 if report.passed else 1


def _cutover(cfg: Config, args: argparse.Namespace) -> int:
    from vectorlake.ops import lifecycle

    print(lifecycle.cutover(cfg, args.generation).line())
    return 0


def _rollback(cfg: Config, args: argparse.Namespace) -> int:
    from vectorlake.ops import lifecycle

    print(lifecycle.rollback(cfg).line())
    return 0


def _abandon(cfg: Config, args: argparse.Namespace) -> int:
    from vectorlake.ops import lifecycle

    print(f"deleted {lifecycle.abandon(cfg, args.generation)}")
    return 0


def _generations(cfg: Config, args: argparse.Namespace) -> int:
    from vectorlake.ops import lifecycle

    if args.adopt:
        print(f"adopted {lifecycle.adopt(cfg, args.adopt).line()}")
        return 0
    found = lifecycle.list_generations(cfg)
    if not found:
        print(f"no generations behind '{cfg.index.alias}' yet")
    for gen in found:
        print(gen.line())
    return 0


def _retention(cfg: Config, args: argparse.Namespace) -> int:
    from vectorlake.ops import lifecycle

    deleted = lifecycle.retention(cfg)
    print(f"deleted {', '.join(deleted)}" if deleted else "nothing to delete")
    return 0


def _backfill(cfg: Config, args: argparse.Namespace) -> int:
    from vectorlake.ops import backfill
    from vectorlake.spark import build_session

    backfill.check_range(args.start, args.end)
    spark = build_session(cfg, app_name="vectorlake-backfill")
    print(backfill.run(spark, cfg, args.start, args.end, args.target).line())
    return 0


def _key_value(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key.strip() or not value.strip():
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key.strip(), value.strip()


def _k(text: str) -> int:
    from vectorlake.query import MAX_K

    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if not 1 <= value <= MAX_K:
        raise argparse.ArgumentTypeError(f"must be between 1 and {MAX_K}, got {value}")
    return value


def _add_generate(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:

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
    p.add_argument("--rate", type=positive_float, metavar="N", help="about N events/s (default: at once)")
    p.add_argument("--files-per-kind", type=positive_int, default=4, metavar="N", help="(default: 4)")
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
        type=iso_time,
        metavar="ISO",
        help=(
            "first event time, with a zone (default: 2026-11-01T00:00:00+00:00); events fall in the 24 h "
            "after it, and one more than contracts.max_future_skew_s ahead of its receipt is quarantined"
        ),
    )
    p.set_defaults(func=_generate, image_size=None)


def _add_stream(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from vectorlake.pipeline.ingest_query import SOURCES
    from vectorlake.pipeline.stream import ONLY

    p = sub.add_parser("stream", help="run the main job: ingest to silver, then embed and index")
    p.add_argument("--source", required=True, choices=SOURCES, help="the landing folder or Kafka")
    p.add_argument("--once", action="store_true", help="process what is available, then return")
    p.add_argument("--landing-dir", metavar="DIR", help="(files) default: sources.landing_dir")
    p.add_argument("--only", choices=ONLY, default="all", help="run one of the two queries (default: both)")
    p.set_defaults(func=_stream)


def _job(text: str) -> str:
    from vectorlake.spark import job_script

    try:
        job_script(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(str(e)) from None
    return text


def _add_submit(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from vectorlake.spark import JOBS

    p = sub.add_parser(
        "submit",
        help=f"spark-submit a job ({', '.join(JOBS)}) with master, memory, jars and Python from config",
        usage="vectorlake submit [--master M] [--deploy-mode D] [--print] JOB [ARGS...]",
    )
    p.add_argument("job", type=_job, metavar="JOB", help=f"{', '.join(JOBS)} (or jobs/<name>.py)")
    p.add_argument("job_args", nargs=argparse.REMAINDER, metavar="ARGS", help="the job's own arguments")
    p.add_argument("--master", help="e.g. spark://host:7077, yarn, k8s://... (default: spark.master)")
    p.add_argument("--deploy-mode", choices=("client", "cluster"), help="default: spark.deploy_mode")
    p.add_argument("--print", dest="dry_run", action="store_true", help="print the command, run nothing")
    p.set_defaults(func=_submit)


def _submit(cfg: Config, args: argparse.Namespace) -> int:
    import shlex

    from vectorlake.spark import submit_command

    job_args = args.job_args[1:] if args.job_args[:1] == ["--"] else args.job_args
    command = submit_command(cfg, args.job, job_args, args.master, args.deploy_mode)
    if args.dry_run:
        print(shlex.join(command))
        return 0
    print(
        f"vectorlake: {shlex.join(command[:3])} ... {shlex.join(command[-1 - len(job_args) :])}",
        file=sys.stderr,
    )
    env = {
        **os.environ,
        "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYSPARK_PYTHON": sys.executable,
        "PYSPARK_DRIVER_PYTHON": sys.executable,
    }
    if cfg.stack.local:  # the driver listens where the local stack's executors reach it
        env.setdefault("SPARK_LOCAL_IP", cfg.stack.host)
    os.execve(command[0], command, env)  # noqa: S606 - this venv's spark-submit; signals reach it directly


def _add_models(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("models", help="the embedding models in the mlflow registry")
    models_sub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    reg = models_sub.add_parser("register", help="register the configured encoders (idempotent)")
    reg.add_argument("--role", choices=("text", "image"), help="only this role's model")
    reg.add_argument("--from-folder", metavar="DIR", help="register this model folder (with --role) instead")
    reg.set_defaults(func=_models_register)
    models_sub.add_parser("show", help="the versions the aliases point at").set_defaults(func=_models_show)


def _add_freshness(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("freshness", help="how long changes took to become searchable (gold/index_log)")
    p.add_argument("--since", type=iso_time, metavar="ISO", help="only index writes at or after this time")
    p.set_defaults(func=_freshness)


def _add_search(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("search", help="k-NN search of the live index")
    query = p.add_mutually_exclusive_group(required=True)
    query.add_argument("--text", metavar="TEXT", help="a text query")
    query.add_argument("--image", metavar="FILE", help="an image file as the query")
    query.add_argument("--like", metavar="LISTING_ID", help="listings like this one (its fused vector)")
    p.add_argument("--category", metavar="ID", help="only this category_id")
    p.add_argument("--locale", metavar="LOCALE", help="only this locale (normalized, e.g. en-US)")
    p.add_argument("--seller", metavar="ID", help="only this seller_id")
    p.add_argument(
        "--attr", type=_key_value, action="append", default=[], metavar="KEY=VALUE", help="attribute filter"
    )
    p.add_argument("--k", type=_k, default=10, metavar="N", help="number of hits (default: 10)")
    p.add_argument("--exact", action="store_true", help="exact scoring over the same vectors, for checking")
    p.add_argument("--json", action="store_true", help="print a JSON list of hits")
    p.add_argument(
        "--local", action="store_true", help="search in this process even when the query service is up"
    )
    p.set_defaults(func=_search)
    p = sub.add_parser("serve", help="the HTTP query service (models loaded once; POST /search)")
    p.add_argument("--host", metavar="HOST", help="bind address (default: serve.host)")
    p.add_argument("--port", type=positive_int, metavar="N", help="port (default: serve.port)")
    p.set_defaults(func=_serve)


def _add_generations(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("reindex", help="build a new index generation from silver (then validate it)")
    p.add_argument("--text-model", metavar="V", help="text model version (default: the champion alias)")
    p.add_argument("--image-model", metavar="V", help="image model version (default: the champion alias)")
    p.add_argument("--generation", metavar="INDEX", help="load this building generation (resume it)")
    p.add_argument("--no-validate", action="store_true", help="load only; validate later")
    p.set_defaults(func=_reindex)
    for name, func, text in (
        ("validate", _validate, "run the validation gate on the building generation"),
        ("cutover", _cutover, "make the validated building generation live (one _aliases request)"),
        ("abandon", _abandon, "delete the building generation (e.g. after its gate failed)"),
    ):
        p = sub.add_parser(name, help=text)
        p.add_argument("generation", nargs="?", metavar="GENERATION", help="default: the building one")
        p.set_defaults(func=func)
    sub.add_parser("rollback", help="serve the previous generation again").set_defaults(func=_rollback)
    p = sub.add_parser("generations", help="list the index generations and their state")
    p.add_argument(
        "--adopt",
        metavar="INDEX",
        help="take over a generation of this family that this lake did not create (record it; make it live "
        "if the live alias points nowhere)",
    )
    p.set_defaults(func=_generations)
    sub.add_parser("retention", help="delete retired generations past index.retention_hours").set_defaults(
        func=_retention
    )
    p = sub.add_parser("backfill", help="replay a time range of bronze events into silver and/or the index")
    for flag, dest, text in (("--from", "start", "inclusive"), ("--to", "end", "exclusive")):
        p.add_argument(flag, dest=dest, required=True, type=iso_time, metavar="TS", help=f"ISO-8601 {text}")
    p.add_argument("--target", choices=("silver", "index", "both"), default="both", help="default: both")
    p.set_defaults(func=_backfill)
    p = sub.add_parser("deadletters", help="count embed and index dead letters; --retry writes them again")
    p.add_argument("--since", type=iso_time, metavar="TS", help="only dead letters recorded at or after TS")
    p.add_argument("--retry", action="store_true", help="write their listings again from current silver")
    p.set_defaults(func=_dead_letters)


def _dead_letters(cfg: Config, args: argparse.Namespace) -> int:
    from vectorlake.ops import backfill
    from vectorlake.spark import build_session

    spark = build_session(cfg, app_name="vectorlake-deadletters") if args.retry else None
    result = backfill.dead_letters(spark, cfg, args.since, args.retry)
    print("\n".join(result.lines()))
    return 1 if args.retry and result.rejected else 0


def _erase(cfg: Config, args: argparse.Namespace) -> int:
    from vectorlake.ops import erasure

    subject_type, subject_id = (
        ("seller", args.seller) if args.seller is not None else ("listing", args.listing)
    )
    req = erasure.record_request(cfg, subject_type, subject_id)
    print(
        f"erasure request {req.request_id} ({req.subject_type}) is {req.status}: `vectorlake purge` erases it"
    )
    return 0


def _purge(cfg: Config, args: argparse.Namespace) -> int:
    from vectorlake.ops import erasure
    from vectorlake.spark import build_session

    if args.snowflake_sql is not None:
        for statement in erasure.snowflake_sql(cfg, args.snowflake_sql):
            print(statement)
        return 0
    from vectorlake import s3

    s3.require_credentials(cfg)  # no S3 credentials: one line, before Spark starts or anything is erased
    spark = build_session(cfg, app_name="vectorlake-purge")
    if args.verify is not None:
        checks = erasure.verify(spark, cfg, args.verify)
        for check in checks:
            print(check.line())
        return 1 if any(c.found for c in checks) else 0
    report = erasure.purge(spark, cfg)
    for line in report.lines():
        print(line)
    if report.unverified:
        raise erasure.ErasureError(
            f"{len(report.unverified)} erasure(s) not verified ({', '.join(report.unverified)}): "
            "see `vectorlake purge --verify ID`"
        )
    if not args.no_deadline_check:
        erasure.check_deadline(cfg)
    return 0


def _add_erasure(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("erase", help="record a GDPR/CCPA erasure request for a seller or a listing")
    who = p.add_mutually_exclusive_group(required=True)
    who.add_argument("--seller", metavar="ID", help="erase a seller and every listing it ever named")
    who.add_argument("--listing", metavar="ID", help="erase one listing")
    p.set_defaults(func=_erase)
    p = sub.add_parser("purge", help="carry out pending erasure requests in every store, then verify them")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--verify", metavar="REQUEST_ID", help="only scan every store for the subject")
    mode.add_argument(
        "--snowflake-sql",
        metavar="REQUEST_ID",
        help="print the Snowflake DELETEs for a request (hashes only)",
    )
    p.add_argument(
        "--no-deadline-check",
        action="store_true",
        help="do not fail on requests older than erasure.deadline_hours (the DAG checks in its own task)",
    )
    p.set_defaults(func=_purge)


def _add_warehouse(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("warehouse", help="the dbt history models (DuckDB locally, Snowflake in prod)")
    wsub = p.add_subparsers(dest="action", required=True, metavar="ACTION")
    wsub.add_parser("build", help="dbt snapshot, build and test over the lake tables").set_defaults(
        func=_warehouse_build
    )
    docs = wsub.add_parser("docs", help="dbt docs generate (lineage); --serve to browse them")
    docs.add_argument("--serve", action="store_true", help="serve the docs on 127.0.0.1 until Ctrl-C")
    docs.add_argument("--port", type=positive_int, default=8081, help="port for --serve (default: 8081)")
    docs.set_defaults(func=_warehouse_docs)


def _quality(cfg: Config, args: argparse.Namespace) -> int:
    from vectorlake.ops import quality

    report = quality.run(cfg, args.suites or None, write_baseline=args.write_baseline)
    for line in report.lines():
        print(line)
    return 0 if report.success else 1


def _add_quality(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    from vectorlake.ops.quality import SUITES

    p = sub.add_parser("quality", help="run the data-quality suites (expectations/) over the lake tables")
    p.add_argument(
        "--suite",
        dest="suites",
        action="append",
        choices=SUITES,
        metavar="NAME",
        help=f"only this suite (repeatable; default: all of {', '.join(SUITES)})",
    )
    p.add_argument(
        "--write-baseline",
        action="store_true",
        help="store the current embedding distribution per model version as the drift baseline",
    )
    p.set_defaults(func=_quality)
    p = sub.add_parser("canary", help="labelled queries on the live generation against its baseline")
    p.add_argument(
        "--write-baseline", action="store_true", help="record this run as the live generation's baseline"
    )
    p.set_defaults(func=_canary)


def _canary(cfg: Config, args: argparse.Namespace) -> int:
    from vectorlake.ops import canary

    report = canary.run(cfg, write_baseline=args.write_baseline)
    for line in report.lines():
        print(line)
    return 0 if report.passed else 1


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
    login = st.airflow_login
    if login is not None:
        password = login.password or f"not generated yet (the api-server writes it to {login.password_file})"
        print(f"airflow login: {login.url}  user {login.user}  password {password}")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(prog="vectorlake", description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--env", help="config environment: conf/<ENV>.yaml (default: $VECTORLAKE_ENV or local)"
    )
    parser.add_argument("-v", "--verbose", action="store_true", help="log at DEBUG level")
    sub: argparse._SubParsersAction[argparse.ArgumentParser] = parser.add_subparsers(  # type: ignore[assignment]
        dest="command", required=True, metavar="COMMAND"
    )

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
    _add_submit(sub)
    _add_models(sub)
    _add_search(sub)
    _add_freshness(sub)
    _add_metrics(sub)
    _add_generations(sub)
    _add_erasure(sub)
    _add_warehouse(sub)
    _add_quality(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    # vectorlake's own progress at INFO; libraries (opensearch-py's request log, open_clip's and
    # sentence-transformers' loading chatter, py4j) only when they warn, unless --verbose
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("vectorlake").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    logging.getLogger("py4j").setLevel(logging.WARNING)
    # opensearch-py logs every 404 as a warning; an absent alias is an answer here, not a problem
    logging.getLogger("opensearch").setLevel(logging.DEBUG if args.verbose else logging.ERROR)
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")  # no weight-loading bars in command output
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
