"""Benchmark (not a test): freshness under a steady load, event time -> searchable, P50 and P95.

    .venv/bin/python bench/bench_freshness.py [--rate 20] [--listings 500] [--seconds 120] [--warmup 30]
                                              [--trigger "5 seconds"] [--drain-timeout 240] [--out PATH]

Needs the local stack (`vectorlake stack up`: OpenSearch and the mlflow registry). About 4 minutes with
the defaults.

The whole job runs as in production, in this process: ``stream.run(spark, cfg, "files", once=False)``
(the ingest query and the embed + index query side by side) in a thread, on a fresh lake under a temporary
folder and a fresh index alias ``bench-fresh-<pid>``, with ``sources.trigger_interval`` and
``embed.trigger_interval`` set to ``--trigger``. The models are registered first (idempotent).

Once both queries are running, a writer adds one landing file per second to ``<landing>/listing_changes/``
(written hidden, then renamed, so the file source never sees half a file) holding ``--rate`` UPSERT events
for distinct listings drawn from a pool of ``--listings``, every field filled, ``event_ts`` = the epoch ms
at the moment of writing. A listing's first event creates it; each later one changes either its title
(and with it the description: a new text embedding) or only its price (not in the model input: no model
call), half and half. No images: the load is text only. The first ``--warmup`` seconds of writes are the
warm-up; the clock starts at their end and the writer goes on for ``--seconds``. Then it waits (at most
``--drain-timeout`` s) until every listing's last event is indexed (an applied ``gold/index_log`` write
with ``version`` >= its event_ts), stops the job and reads the log.

Reported, over the writes of events from after the warm-up:

- ``vectorlake.ops.freshness.lags`` with basis ``event`` (event_ts -> indexed_at, the brief's measure) and
  ``received`` (bronze received_at -> indexed_at, the pipeline's own share): n, P50, P95, max;
- per event: for each event written after the warm-up, the first applied write of its listing with a
  version >= its event_ts (an event superseded before it was indexed counts as searchable once a newer
  state is), P50, P95, max; this covers every event, where the write view only counts the states written;
- the per-event P50 in each quarter of the measured window (a lag that grows means falling behind);
- events/s offered and indexed (events that became searchable during the measured window, per second:
  the offered rate when the job keeps up), how long after the last write the last event was searchable,
  writes applied, the micro-batch durations of both queries over the measured window (from
  their progress reports), the machine's load average and CPU use (the whole machine's and this job's:
  the Spark JVM and its Python workers; OpenSearch is outside it), and the config (triggers, master).

Prints a summary and writes ``bench/results/freshness.json`` (``--out``). The alias's indexes and the
temporary lake are deleted at the end. Exits 1 if the index did not catch up within ``--drain-timeout``
(the JSON is written all the same), 2 on a bad argument.
"""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import json
import logging
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import benchlib

from vectorlake.argtypes import OneLineParser, positive_int
from vectorlake.config import Config, load_config
from vectorlake.embed import registry
from vectorlake.embed import stage as embed_stage
from vectorlake.errors import ConfigError
from vectorlake.lake.tables import LakeTables
from vectorlake.ops import freshness
from vectorlake.pipeline import index_query, ingest_query, stream, supervise
from vectorlake.spark import build_session

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "freshness.json"
SEED = 13
SELLERS = 50
LOCALES = ("en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "it-IT")
ADJECTIVES = ("red", "blue", "vintage", "compact", "leather", "wooden", "silver", "oversized", "classic")
NOUNS = ("bag", "lamp", "chair", "jacket", "watch", "kettle", "scarf", "bicycle", "camera", "desk")
BRANDS = ("Acme", "Globex", "Initech", "Umbrella", "Hooli")
COLORS = ("red", "blue", "black", "white", "green")
MATERIALS = ("leather", "wood", "steel", "cotton", "wool")
CONDITIONS = ("new", "like new", "good", "fair")


def _interval(text: str) -> str:
    try:
        return supervise.check_interval("interval", text)
    except ConfigError as e:
        raise argparse.ArgumentTypeError(str(e)) from None


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(prog="bench_freshness.py", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--rate", type=positive_int, default=20, help="listing events per second (one file/s)")
    p.add_argument("--listings", type=positive_int, default=500, help="pool of listing ids")
    p.add_argument("--seconds", type=positive_int, default=120, help="measured seconds of load")
    p.add_argument("--warmup", type=positive_int, default=30, help="seconds of load before the clock starts")
    p.add_argument("--trigger", type=_interval, default="5 seconds", help="both queries' trigger interval")
    p.add_argument(
        "--drain-timeout", type=positive_int, default=240, help="max seconds to wait for the index"
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the JSON results go")
    args = p.parse_args(argv)
    if args.rate > args.listings:
        p.error(
            f"--rate ({args.rate}) must not exceed --listings ({args.listings}): one event per listing a file"
        )
    return args


def library_state() -> dict[str, Any]:
    """The commit, uncommitted changes under vectorlake/ and conf/, and a hash of each module measured."""
    return benchlib.library_state(
        (stream, ingest_query, index_query, embed_stage, freshness), ("vectorlake", "conf")
    )


_LOADED = library_state()  # as close to the import as possible: the code that runs is the code hashed


# --- the load ---------------------------------------------------------------------------------------


@dataclass
class _Listing:
    seller_id: str
    locale: str
    category_id: str
    title: str
    price: float
    attributes: dict[str, str]


@dataclass
class Writer:
    """Writes one landing file per tick; remembers what it wrote (event time per listing and event)."""

    folder: Path
    listing_ids: list[str]
    categories: list[str]
    rng: random.Random
    state: dict[str, _Listing] = field(default_factory=dict)
    written: list[tuple[str, int, int]] = field(default_factory=list)  # (listing_id, event_ts ms, file no.)
    last_ts: dict[str, int] = field(default_factory=dict)
    title_changes: int = 0
    price_changes: int = 0
    creates: int = 0
    files: int = 0
    write_s: list[float] = field(default_factory=list)

    def _title(self, other: str | None = None) -> str:
        while True:
            title = f"{self.rng.choice(ADJECTIVES).title()} {self.rng.choice(NOUNS)}"
            if title != other:
                return title

    def _event(self, lid: str, ts: int) -> dict[str, Any]:
        cur = self.state.get(lid)
        if cur is None:
            cur = _Listing(
                seller_id=f"bench-seller-{self.rng.randrange(SELLERS):03d}",
                locale=self.rng.choice(LOCALES),
                category_id=self.rng.choice(self.categories),
                title=self._title(),
                price=round(self.rng.uniform(5, 500), 2),
                attributes={
                    "brand": self.rng.choice(BRANDS),
                    "color": self.rng.choice(COLORS),
                    "material": self.rng.choice(MATERIALS),
                    "condition": self.rng.choice(CONDITIONS),
                },
            )
            self.state[lid] = cur
            self.creates += 1
        elif self.rng.random() < 0.5:
            cur.title = self._title(cur.title)  # changes the text model input
            self.title_changes += 1
        else:
            old = cur.price
            while cur.price == old:  # a price-only change: the state changes, the model input does not
                cur.price = round(self.rng.uniform(5, 500), 2)
            self.price_changes += 1
        return {
            "event_id": f"{lid}-{ts}",
            "listing_id": lid,
            "event_ts": ts,
            "op": "UPSERT",
            "title": cur.title,
            "description": f"A {cur.title.lower()} from {cur.attributes['brand']}, in "
            f"{cur.attributes['condition']} condition. Ships from the seller within two days.",
            "attributes": {**cur.attributes, "price": cur.price},
            "image_ids": [],
            "seller_id": cur.seller_id,
            "locale": cur.locale,
            "category_id": cur.category_id,
        }

    def tick(self, rate: int) -> None:
        """One file of `rate` events for distinct listings, all stamped with now (ms)."""
        began = time.perf_counter()
        ts = int(time.time() * 1000)
        lids = self.rng.sample(self.listing_ids, rate)
        data = b"".join(json.dumps(self._event(lid, ts)).encode() + b"\n" for lid in lids)
        self.files += 1
        tmp = self.folder / f".part-{self.files:06d}.jsonl"
        tmp.write_bytes(data)
        tmp.rename(self.folder / f"part-{self.files:06d}.jsonl")
        for lid in lids:
            self.written.append((lid, ts, self.files - 1))
            self.last_ts[lid] = ts
        self.write_s.append(time.perf_counter() - began)


def category_ids(cfg: Config) -> list[str]:
    with Path(cfg.reference.categories).open(newline="") as f:
        return [row["category_id"] for row in csv.DictReader(f)]


# --- measuring --------------------------------------------------------------------------------------


def _pct(values: Sequence[float], q: float) -> float | None:
    """Percentile with linear interpolation (as Spark's `percentile`)."""
    if not values:
        return None
    s = sorted(values)
    pos = q * (len(s) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(s) - 1)
    return s[lo] + (s[hi] - s[lo]) * (pos - lo)


def summary(values: Sequence[float]) -> dict[str, Any]:
    def r(v: float | None) -> float | None:
        return None if v is None else round(v, 2)

    return {
        "n": len(values),
        "p50_s": r(_pct(values, 0.5)),
        "p95_s": r(_pct(values, 0.95)),
        "max_s": r(max(values) if values else None),
        "mean_s": r(statistics.fmean(values) if values else None),
    }


def applied_writes(spark: SparkSession, tables: LakeTables) -> list[tuple[str, int, float]]:
    """(listing_id, version, indexed_at as epoch seconds) of every applied index write."""
    from pyspark.sql import functions as F

    rows = (
        spark.read.format("delta")
        .load(tables.index_log)
        .where(F.col("outcome") == "applied")
        .select("listing_id", "version", F.col("indexed_at").cast("double").alias("at"))
        .collect()
    )
    return [(r["listing_id"], int(r["version"]), float(r["at"])) for r in rows]


def wait_indexed(
    spark: SparkSession, tables: LakeTables, last_ts: dict[str, int], timeout_s: float, job: threading.Thread
) -> tuple[bool, int, float]:
    """Poll gold/index_log until every listing's last event is indexed; (all done, missing, seconds)."""
    began = time.monotonic()
    missing = len(last_ts)
    while True:
        try:
            newest: dict[str, int] = {}
            for lid, version, _ in applied_writes(spark, tables):
                newest[lid] = max(version, newest.get(lid, version))
            missing = sum(1 for lid, ts in last_ts.items() if newest.get(lid, -1) < ts)
        except Exception as e:  # the log may not exist yet
            logging.getLogger(__name__).debug("index_log not readable yet: %s", e)
        waited = time.monotonic() - began
        if missing == 0 or waited > timeout_s or not job.is_alive():
            return missing == 0, missing, waited
        time.sleep(5)


def per_event_lags(
    written: Sequence[tuple[str, int, int]], writes: Sequence[tuple[str, int, float]]
) -> list[tuple[int, float, float]]:
    """(file no., lag s, indexed_at epoch s) for each written event that an applied write covers: the
    first applied write of its listing with a version >= its event time."""
    by_listing: dict[str, list[tuple[int, float]]] = {}
    for lid, version, at in writes:
        by_listing.setdefault(lid, []).append((version, at))
    out: list[tuple[int, float, float]] = []
    for lid, ts, file_no in written:
        covering = [at for version, at in by_listing.get(lid, []) if version >= ts]
        if covering:
            first = min(covering)
            out.append((file_no, first - ts / 1000, first))
    return out


def batch_durations(spark: SparkSession, since_s: float, until_s: float) -> dict[str, dict[str, Any]]:
    """Per active query: the micro-batches that started in [since_s, until_s] and had input."""
    out: dict[str, dict[str, Any]] = {}
    for q in spark.streams.active:
        seconds: list[float] = []
        rows = 0
        for p in q.recentProgress:
            started = dt.datetime.fromisoformat(p.timestamp.replace("Z", "+00:00")).timestamp()
            if since_s <= started <= until_s and p.numInputRows > 0:
                seconds.append(p.durationMs.get("triggerExecution", 0) / 1000)
                rows += p.numInputRows
        out[q.name or str(q.id)] = {
            "batches": len(seconds),
            "input_rows": rows,
            "median_s": round(statistics.median(seconds), 2) if seconds else None,
            "p95_s": round(_pct(seconds, 0.95) or 0.0, 2) if seconds else None,
            "max_s": round(max(seconds), 2) if seconds else None,
        }
    return out


def machine_facts(spark: SparkSession) -> dict[str, Any]:
    return {
        **benchlib.machine("pyspark", "delta-spark", "torch", "opensearch-py"),
        "spark_master": spark.sparkContext.master,
        "default_parallelism": spark.sparkContext.defaultParallelism,
        "shuffle_partitions": int(spark.conf.get("spark.sql.shuffle.partitions")),
        "driver_memory": spark.conf.get("spark.driver.memory", "default"),
    }


def uptime() -> str:
    try:
        return subprocess.run(["uptime"], capture_output=True, text=True, check=False).stdout.strip()
    except OSError:
        return ""


def cpu_counters() -> tuple[float, float, float]:
    """(machine busy CPU s, machine total CPU s, CPU s of this process and its descendants) so far.

    The descendants are the Spark JVM and its Python workers; OpenSearch is not one (its indexing shows in
    the machine's share). Children that already exited count through their parents' cutime/cstime.
    """
    tick = os.sysconf("SC_CLK_TCK")
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    total = sum(fields) / tick
    busy = total - (fields[3] + fields[4]) / tick  # less idle and iowait
    parent: dict[int, int] = {}
    used: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        parent[int(entry.name)] = int(stat[1])
        used[int(entry.name)] = sum(int(x) for x in stat[11:15])  # utime stime cutime cstime
    tree = {os.getpid()}
    grew = True
    while grew:
        more = {pid for pid, ppid in parent.items() if ppid in tree} - tree
        grew = bool(more)
        tree |= more
    return busy, total, sum(used.get(pid, 0) for pid in tree) / tick


def drop_alias(cfg: Config) -> list[str]:
    """Delete every index behind the alias; returns their names."""
    from vectorlake.index.client import make_client

    client = make_client(cfg)
    try:
        if not client.indices.exists_alias(name=cfg.index.alias):
            return []
        names = list(client.indices.get_alias(name=cfg.index.alias))
        for name in names:
            client.indices.delete(index=name)
        return names
    finally:
        client.close()


# --- the run ----------------------------------------------------------------------------------------


def bench_config(work: Path, alias: str, trigger: str) -> Config:
    env = dict(os.environ) | {
        "VECTORLAKE__LAKE__ROOT": str(work / "lake"),
        "VECTORLAKE__INDEX__ALIAS": alias,
        "VECTORLAKE__SOURCES__TRIGGER_INTERVAL": trigger,
        "VECTORLAKE__EMBED__TRIGGER_INTERVAL": trigger,
    }
    env.pop("VECTORLAKE__LAKE__CHECKPOINT_ROOT", None)  # checkpoints inside the fresh lake
    return load_config(environ=env)


def _fmt(s: dict[str, Any]) -> str:
    if not s["n"]:
        return "n 0"
    return f"n {s['n']:>5}  P50 {s['p50_s']:6.1f} s  P95 {s['p95_s']:6.1f} s  max {s['max_s']:6.1f} s"


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("opensearch").setLevel(logging.ERROR)  # its 404s on alias lookups are expected
    began = time.perf_counter()
    alias = f"bench-fresh-{os.getpid()}"
    work = Path(tempfile.mkdtemp(prefix="vectorlake-bench-fresh-", dir="/tmp"))
    cfg = bench_config(work, alias, args.trigger)
    landing = work / "landing"
    folder = landing / "listing_changes"
    folder.mkdir(parents=True)
    spark = build_session(cfg, "bench-freshness")
    spark.conf.set("spark.sql.streaming.numRecentProgressUpdates", "1000")  # keep every batch's progress
    tables = LakeTables(cfg.lake.root)
    stop = threading.Event()
    result: dict[str, Any] = {}
    job: threading.Thread | None = None
    try:
        print("registering the models (idempotent)", flush=True)
        models = [m.label for m in registry.register_all(cfg)]

        def run_job() -> None:
            try:
                result["totals"] = stream.run(
                    spark, cfg, "files", once=False, landing_dir=str(landing), stop=stop
                )
            except BaseException as e:  # reported by the main thread
                result["error"] = e

        job = threading.Thread(target=run_job, name="pipeline", daemon=True)
        job.start()
        started = time.monotonic()
        wanted = {"vectorlake_ingest_files", index_query.QUERY_NAME}
        while {q.name for q in spark.streams.active} < wanted:
            if not job.is_alive() or time.monotonic() - started > 300:
                raise RuntimeError(f"the pipeline did not start: {result.get('error', 'timed out')}")
            time.sleep(0.5)
        print(
            f"pipeline running after {time.monotonic() - started:.1f} s; writing {args.rate} events/s",
            flush=True,
        )

        writer = Writer(
            folder, [f"bench-L{i:05d}" for i in range(args.listings)], category_ids(cfg), random.Random(SEED)
        )
        t0 = time.monotonic()  # the schedule; event times are wall-clock (time.time) at each write
        load_at_start: tuple[float, ...] | None = None
        cpu_at_start = cpu_counters()
        ticks = args.warmup + args.seconds
        behind_s = 0.0  # how late the writer got against its one-file-a-second schedule
        for k in range(ticks):
            delay = t0 + k - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            behind_s = max(behind_s, -delay)
            if k == args.warmup:
                load_at_start = tuple(round(x, 2) for x in os.getloadavg())
                cpu_at_start = cpu_counters()
                print(f"warm-up done ({writer.files} files); measuring for {args.seconds} s", flush=True)
            if not job.is_alive():
                raise RuntimeError(f"the pipeline stopped during the load: {result.get('error')}")
            writer.tick(args.rate)
            if k % 30 == 29:
                print(f"  {k + 1 - args.warmup:>4} s measured, load {os.getloadavg()[0]:.1f}", flush=True)
        load_at_end = tuple(round(x, 2) for x in os.getloadavg())
        cpu_at_end = cpu_counters()
        uptime_at_end = uptime()
        # the clock starts with the first file after the warm-up: its event time
        since_ms = min(ts for _, ts, file_no in writer.written if file_no >= args.warmup)
        warmup_end = since_ms / 1000
        since = dt.datetime.fromtimestamp(warmup_end, tz=dt.UTC)
        print(
            f"load done ({writer.files} files); waiting for the index (at most {args.drain_timeout} s)",
            flush=True,
        )
        done, missing, drain_s = wait_indexed(spark, tables, writer.last_ts, args.drain_timeout, job)
        print(
            f"  {'all indexed' if done else f'{missing} listings not indexed'} after {drain_s:.1f} s",
            flush=True,
        )
        batches = batch_durations(spark, warmup_end, time.time())
        stop.set()
        job.join(timeout=300)
        if "error" in result:
            raise RuntimeError(f"the pipeline failed: {result['error']}")

        by_basis: dict[str, dict[str, Any]] = {}
        bases: tuple[freshness.Basis, ...] = ("event", "received")
        for basis in bases:
            lag = freshness.lags(cfg, basis, since).to_pylist()
            by_basis[basis] = summary([float(r["lag_s"]) for r in lag if r["version"] >= since_ms])
        every_event = per_event_lags(writer.written, applied_writes(spark, tables))
        per_event = [e for e in every_event if e[0] >= args.warmup]
        event_lags = [lag_s for _, lag_s, _ in per_event]
        measured = [ts for _, ts, file_no in writer.written if file_no >= args.warmup]
        # events (warm-up ones too) that became searchable while the load was on, per second: equal to the
        # offered rate when the job keeps up, below it when it falls behind, above when it drains a backlog
        in_window = sum(1 for _, _, at in every_event if warmup_end <= at < warmup_end + args.seconds)
        last_at = max((at for _, _, at in per_event), default=None)
        last_write = max(ts for _, ts, _ in writer.written) / 1000
        last_searchable_s = None if last_at is None else round(last_at - last_write, 1)
        # the lag per quarter of the measured window (by file): growing means falling behind
        quarters: list[list[float]] = [[], [], [], []]
        for file_no, lag_s, _ in per_event:
            quarters[4 * (file_no - args.warmup) // args.seconds].append(lag_s)
        totals = result.get("totals")
        index_totals = totals.index if totals is not None else None
    finally:
        stop.set()
        if job is not None:
            job.join(timeout=300)
        try:
            dropped = drop_alias(cfg)
        except Exception as e:  # OpenSearch down: say so, do not hide the run's own error
            print(f"warning: could not delete the indexes of {alias}: {e}", file=sys.stderr)
            dropped = []
        shutil.rmtree(work, ignore_errors=True)

    changed = library_state()["sha256"] != _LOADED["sha256"]
    if changed:
        print("warning: vectorlake's source changed on disk during the run; the JSON records the hashes")
    offered = len(measured) / args.seconds
    indexed = in_window / args.seconds
    by_quarter = [summary(q) for q in quarters]
    window_s = cpu_at_end[1] - cpu_at_start[1]  # machine CPU seconds (all cores) over the measured window
    cpu = {
        "window_s": round(window_s / (os.cpu_count() or 1), 1),
        "machine_busy_share": round((cpu_at_end[0] - cpu_at_start[0]) / window_s, 3),
        "this_job_share": round((cpu_at_end[2] - cpu_at_start[2]) / window_s, 3),  # JVM + Python workers
    }
    out = {
        "bench": "freshness",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "bench/bench_freshness.py", *sys.argv[1:]]),
        "wall_s": round(time.perf_counter() - began, 1),
        "machine": machine_facts(spark)
        | {
            "loadavg_at_measure_start": load_at_start,
            "loadavg_at_load_end": load_at_end,
            "uptime_at_load_end": uptime_at_end,
            "cpu_in_measured_window": cpu,
        },
        "library": _LOADED,
        "library_changed_during_run": changed,
        "config": {
            "sources.trigger_interval": cfg.sources.trigger_interval,
            "embed.trigger_interval": cfg.embed.trigger_interval,
            "spark.master": cfg.spark.master,
            "shuffle_partitions": cfg.spark.shuffle_partitions,
            "embed.batch_size": cfg.embed.batch_size,
            "embed.torch_threads": cfg.embed.torch_threads,
            "models": models,
            "index_alias": alias,
            "indexes_deleted": dropped,
        },
        "load": {
            "rate_per_s": args.rate,
            "listings": args.listings,
            "warmup_s": args.warmup,
            "measured_s": args.seconds,
            "files": writer.files,
            "events": len(writer.written),
            "measured_events": len(measured),
            "creates": writer.creates,
            "title_changes": writer.title_changes,
            "price_only_changes": writer.price_changes,
            "file_write_ms_max": round(1000 * max(writer.write_s), 1),
            "writer_behind_max_s": round(behind_s, 3),  # the latest a file was written against schedule
            "seed": SEED,
        },
        "drain": {"all_indexed": done, "listings_missing": missing, "waited_s": round(drain_s, 1)},
        "freshness": {
            "writes_event_basis": by_basis["event"],
            "writes_received_basis": by_basis["received"],
            "per_event": summary(event_lags),
            "per_event_by_quarter": by_quarter,
        },
        "throughput": {
            "offered_events_per_s": round(offered, 2),
            "indexed_events_per_s": round(indexed, 2),  # events made searchable during the measured window
            "last_event_searchable_after_last_write_s": last_searchable_s,
            "measured_events_indexed": len(event_lags),
            "applied_writes_measured": by_basis["event"]["n"],
        },
        "micro_batches_measured": batches,
        "index_totals": None if index_totals is None else asdict(index_totals),
    }
    print()
    print(
        f"vectorlake at {_LOADED['commit'][:12]}, uncommitted changes: {len(_LOADED['uncommitted'])} file(s)"
    )
    print(
        f"load: {args.rate} events/s over {args.listings} listings, {args.warmup} s warm-up + "
        f"{args.seconds} s measured; trigger {args.trigger} (both queries), {spark.sparkContext.master}"
    )
    print(f"freshness of applied writes, event   -> indexed: {_fmt(by_basis['event'])}")
    print(f"freshness of applied writes, received -> indexed: {_fmt(by_basis['received'])}")
    print(f"freshness per event,         event   -> indexed: {_fmt(out['freshness']['per_event'])}")
    print(
        f"events/s offered {offered:.1f}, indexed {indexed:.1f} (during the measured window); "
        f"last event searchable {last_searchable_s} s after the last write; all indexed: {done}"
    )
    for name, b in batches.items():
        print(f"  {name}: {b['batches']} batches with input, median {b['median_s']} s, max {b['max_s']} s")
    trend = ", ".join(str(q["p50_s"]) for q in by_quarter)
    print(f"per-event P50 by quarter of the measured window (s): {trend}")
    print(
        f"load average at start / end of the measured window: {load_at_start} / {load_at_end}; CPU busy "
        f"{100 * cpu['machine_busy_share']:.0f}% of the machine, this job {100 * cpu['this_job_share']:.0f}%"
    )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    spark.stop()
    return 0 if done else 1


if __name__ == "__main__":
    sys.exit(main())
