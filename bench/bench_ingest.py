"""Benchmark (not a test): events/s of the ingest's bronze + silver stage, and its cost over a plain upsert.

    .venv/bin/python bench/bench_ingest.py [--sizes 10000,100000,1000000] [--batch-size 100000]
                                           [--repeats 1] [--shuffle-partitions N] [--profile] [--out PATH]

For each size N, the generator makes a catalog (listing changes, media, seller policy, with its duplicates,
late events and poison lines) and the first N raw records in emission order are cut into micro-batches of
``--batch-size`` records. Each batch is read once into a cached DataFrame of raw records (kind, value,
source, received_at), which is not timed. Then, on the same cached batch and in the same run:

- ours: ``BatchWriter(tables, reference, app_id="bench")(parse_events(raw), batch_id)``: parse, quarantine
  and bronze appends, silver/media and silver/seller_policy MERGEs, the register merge of silver/listings,
  the listing_versions append and the silver/listings MERGE;
- baseline: the same parse, the same quarantine and bronze appends and the same tally, then for each kind
  a plain Delta upsert of the latest row per key (``row_number`` over ``event_ts_ms desc, event_id desc``,
  MERGE ``whenMatchedUpdateAll`` when ``s.event_ts_ms > t.event_ts_ms``, ``whenNotMatchedInsertAll``):
  silver/media by (listing_id, image_id), silver/seller_policy by seller_id, and a table of the latest
  listing change row by listing_id (no per-field registers, no media/policy join, no versions).

Ours and the baseline write to separate fresh lakes under a temporary folder (deleted at the end) and take
turns batch by batch (which goes first alternates by batch and repeat). ``received_at`` is a per-batch
literal, as in a stream, and differs by 1 ms between the two so that each compiles its own code.
``--repeats R`` runs every size R times on fresh lakes and reports the median totals. The streaming
dedup (``deduplicate``) is not part of the stage measured: duplicates reach both. The JVM is warmed up
first with a small untimed run of each.

Prints one row per size (events, batches, seconds and events/s of each, ratio = ours / baseline time) and
writes the numbers with the machine's facts to ``bench/results/ingest.json`` (``--out``). ``--profile``
also times the steps of ``BatchWriter`` (Delta appends, MERGEs, collects/counts, the local checkpoint) by
wrapping them, and the baseline's steps, and prints where the time goes.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import functools
import inspect
import json
import os
import shutil
import statistics
import sys
import tempfile
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import benchlib

from vectorlake import contracts
from vectorlake.argtypes import OneLineParser, positive_int
from vectorlake.config import load_config
from vectorlake.generate import GeneratorSpec, generate
from vectorlake.lake import silver
from vectorlake.lake.reference import Reference, load_reference
from vectorlake.lake.tables import LakeTables, ensure_tables, schemas
from vectorlake.pipeline import ingest_batch as ingest
from vectorlake.pipeline.batch_metrics import BatchCounts
from vectorlake.spark import build_session

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "ingest.json"
DEFAULT_SIZES = (10_000, 100_000, 1_000_000)
DEFAULT_BATCH = 100_000
WARMUP_EVENTS, WARMUP_BATCH = 4_000, 2_000
SEED = 7
IMAGE_SIZE = (8, 8)  # media events need images generated; tiny ones keep generation fast
BASELINE_APP = "vectorlake-baseline-bench"
LATEST_LISTINGS = ("baseline", "listing_latest")  # the baseline's listing table: latest row per listing_id
# received_at of batch 0: two days after the generator's start, after every event time it makes (they fall
# in the 24 h after the start; an event more than contracts.max_future_skew_s after its receipt is
# quarantined); batch i is received i seconds later
_T0_MS = int((GeneratorSpec().start + dt.timedelta(days=2)).timestamp() * 1000)


def _sizes(text: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("expected a comma-separated list like 10000,100000")
    return tuple(positive_int(p) for p in parts)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(prog="bench_ingest.py", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--sizes", type=_sizes, default=DEFAULT_SIZES, help="events per run, e.g. 10000,100000")
    p.add_argument("--batch-size", type=positive_int, default=DEFAULT_BATCH, help="records per micro-batch")
    p.add_argument(
        "--shuffle-partitions", type=positive_int, default=None, help="override spark.sql.shuffle.partitions"
    )
    p.add_argument("--repeats", type=positive_int, default=1, help="runs per size, fresh lakes each (median)")
    p.add_argument("--profile", action="store_true", help="also time the steps of each stage")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the JSON results go")
    return p.parse_args(argv)


# --- step timing (--profile) ------------------------------------------------------------------------


class StepTimer:
    """Wall seconds per labelled step; nested steps are not double counted (the outer one wins).

    Steps on different threads (the batch's concurrent commits) are each timed, so their sum can exceed
    the batch's wall time; the profile then shows the overlap."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = defaultdict(float)
        self._local = threading.local()
        self._lock = threading.Lock()

    @contextlib.contextmanager
    def step(self, label: str) -> Iterator[None]:
        depth = getattr(self._local, "depth", 0)
        self._local.depth = depth + 1
        began = time.perf_counter()
        try:
            yield
        finally:
            self._local.depth = depth
            if depth == 0:
                with self._lock:
                    self.seconds[label] += time.perf_counter() - began

    def take(self) -> dict[str, float]:
        out = dict(self.seconds)
        self.seconds.clear()
        return out


def library_state() -> dict[str, Any]:
    """The commit, uncommitted changes under vectorlake/ and conf/, and a hash of each module measured."""
    return benchlib.library_state((contracts, ingest, silver), ("vectorlake", "conf"))


# bound at import, before --profile wraps ingest.txn_append, so the baseline's appends are not timed as ours
_append = ingest.txn_append
_LOADED = library_state()  # as close to the import as possible: the code that runs is the code hashed
_INGEST_LINES = Path(ingest.__file__).read_text().splitlines()  # for step labels, as imported


def _ingest_caller() -> inspect.Traceback | None:
    """The frame in vectorlake/pipeline/ingest_batch.py that called the wrapped method, if any."""
    frame = inspect.currentframe()
    while frame is not None:
        if frame.f_code.co_filename == ingest.__file__:
            return inspect.getframeinfo(frame, context=0)
        frame = frame.f_back
    return None


def instrument_batch_writer(timer: StepTimer, lake_root: Callable[[], str]) -> None:
    """Wrap what BatchWriter calls that runs Spark jobs, so each call is timed under a readable label.

    Only calls made from vectorlake/pipeline/ingest_batch.py are timed. The library is not changed: the
    wrappers live in this process only.
    """
    from delta.tables import DeltaMergeBuilder, DeltaTable
    from pyspark.sql import DataFrame

    def rel(path: str) -> str:
        return path.removeprefix(lake_root().rstrip("/") + "/")

    original_append = ingest.txn_append

    def append(df: Any, path: str, app_id: str, batch_id: int) -> None:
        with timer.step(f"append {rel(path)}"):
            original_append(df, path, app_id, batch_id)

    ingest.txn_append = append

    target = threading.local()  # the table of the MERGE being built, per thread
    original_for_path = DeltaTable.forPath.__func__  # a classmethod

    def for_path(cls: Any, spark: Any, path: str, *args: Any, **kwargs: Any) -> Any:
        if _ingest_caller() is not None:
            target.path = path
        return original_for_path(cls, spark, path, *args, **kwargs)

    DeltaTable.forPath = classmethod(for_path)
    original_execute = DeltaMergeBuilder.execute

    def execute(self: Any) -> Any:
        if _ingest_caller() is None:
            return original_execute(self)
        with timer.step(f"merge {rel(getattr(target, 'path', '?'))}"):
            return original_execute(self)

    DeltaMergeBuilder.execute = execute

    for module, names in (
        (contracts, ("quarantine_rows", "valid_rows")),
        (silver, ("media_deltas", "policy_deltas", "listing_deltas", "merge_registers", "derive")),
    ):
        for fn_name in names:
            fn = getattr(module, fn_name)

            def build(*args: Any, _fn: Any = fn, _label: str = fn_name, **kwargs: Any) -> Any:
                if _ingest_caller() is None:
                    return _fn(*args, **kwargs)
                with timer.step(f"build plan: {_label} (driver, no job)"):
                    return _fn(*args, **kwargs)

            setattr(module, fn_name, build)

    try:  # Spark 4: the DataFrame a classic session makes is a subclass with its own methods
        from pyspark.sql.classic.dataframe import DataFrame as ClassicDataFrame
    except ImportError:
        ClassicDataFrame = DataFrame
    for name in ("collect", "count", "localCheckpoint", "persist", "unpersist"):
        original = getattr(ClassicDataFrame, name)

        def wrapped(self: Any, *args: Any, _name: str = name, _orig: Any = original, **kwargs: Any) -> Any:
            caller = _ingest_caller()
            if caller is None:
                return _orig(self, *args, **kwargs)
            line = _INGEST_LINES[caller.lineno - 1] if caller.lineno <= len(_INGEST_LINES) else ""
            text = line.split("#")[0].strip()
            with timer.step(f"{_name} (ingest_batch.py:{caller.lineno}: {text[:40]})"):
                return _orig(self, *args, **kwargs)

        setattr(ClassicDataFrame, name, wrapped)


# --- the two stages -------------------------------------------------------------------------------


def _upsert(
    spark: SparkSession, events: DataFrame, path: str, keys: Sequence[str], columns: Sequence[str]
) -> None:
    """Plain latest-row-per-key upsert: row_number within the batch, then a MERGE that keeps the newer."""
    from delta.tables import DeltaTable
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    newest = Window.partitionBy(*keys).orderBy(F.col("event_ts_ms").desc(), F.col("event_id").desc())
    latest = events.withColumn("_rn", F.row_number().over(newest)).where("_rn = 1").select(*columns)
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(latest.alias("s"), " AND ".join(f"t.{k} = s.{k}" for k in keys))
        .whenMatchedUpdateAll(condition="s.event_ts_ms > t.event_ts_ms")
        .whenNotMatchedInsertAll()
        .execute()
    )


def ours_batch(writer: ingest.BatchWriter, raw: DataFrame, batch_id: int) -> None:
    """Our stage on one batch: parse, then the ingest's foreachBatch function."""
    writer(contracts.parse_events(raw), batch_id)


def baseline_batch(tables: LakeTables, raw: DataFrame, batch_id: int, timer: StepTimer | None) -> None:
    """The baseline stage on one batch: parse, the same appends and tally, then plain upserts."""

    def step(label: str) -> contextlib.AbstractContextManager[None]:
        return timer.step(label) if timer else contextlib.nullcontext()

    spark = raw.sparkSession
    app_id = BASELINE_APP
    batch = contracts.parse_events(raw).persist()
    try:
        with step("append quarantine/events"):
            _append(contracts.quarantine_rows(batch), tables.quarantine, app_id, batch_id)
        events = {}
        for kind in contracts.KINDS:
            events[kind] = contracts.valid_rows(batch, kind)
            with step(f"append bronze/{kind}"):
                _append(events[kind], tables.bronze(kind), app_id, batch_id)
        with step("collect (tally)"):
            (tally,) = batch.selectExpr("count_if(rejection IS NULL) AS accepted").collect()
        if int(tally["accepted"]):
            for kind, path, keys, columns in (
                ("media", tables.media, ("listing_id", "image_id"), tuple(silver.MEDIA_COLUMNS)),
                ("seller_policy", tables.seller_policy, ("seller_id",), tuple(silver.POLICY_COLUMNS)),
                (
                    "listing_changes",
                    tables.path(*LATEST_LISTINGS),
                    ("listing_id",),
                    contracts.bronze_columns("listing_changes"),
                ),
            ):
                with step(f"merge {path.removeprefix(tables.root.rstrip('/') + '/')}"):
                    _upsert(spark, events[kind], path, keys, columns)
    finally:
        batch.unpersist()


def ensure_baseline_tables(spark: SparkSession, tables: LakeTables) -> None:
    """The ingest tables, plus the baseline's latest-listing table (the bronze listing_changes columns)."""
    from delta.tables import DeltaTable
    from pyspark.sql.types import StructType, _parse_datatype_string

    ensure_tables(spark, tables)
    columns, _ = schemas(tables)[tables.bronze("listing_changes")]
    schema = _parse_datatype_string("struct<" + ", ".join(f"`{c}`: {t}" for c, t in columns.items()) + ">")
    assert isinstance(schema, StructType)
    DeltaTable.createIfNotExists(spark).location(tables.path(*LATEST_LISTINGS)).addColumns(schema).execute()


# --- data -----------------------------------------------------------------------------------------


@dataclass
class Dataset:
    events: int  # raw records in all batches
    batch_dirs: list[Path]
    by_kind: dict[str, int]
    generate_s: float
    spec: dict[str, Any]


def make_dataset(events: int, batch_size: int, folder: Path) -> Dataset:
    """Generate a catalog, keep its first `events` records in emission order, write one folder per batch."""
    listings = max(100, events // 10)
    spec = GeneratorSpec(
        seed=SEED, events=events, listings=listings, sellers=max(20, listings // 10), image_size=IMAGE_SIZE
    )
    began = time.perf_counter()
    catalog = generate(spec, image_root=str(folder / "images"))
    generate_s = time.perf_counter() - began
    streams = catalog.streams()
    order = catalog.emission_order[:events]
    del catalog
    batch_dirs: list[Path] = []
    by_kind: dict[str, int] = dict.fromkeys(contracts.KINDS, 0)
    for start in range(0, len(order), batch_size):
        lines: dict[str, list[bytes]] = {kind: [] for kind in contracts.KINDS}
        for kind, i in order[start : start + batch_size]:
            lines[kind].append(streams[kind][i])
            by_kind[kind] += 1
        batch_dir = folder / f"batch-{len(batch_dirs):05d}"
        for kind, chunk in lines.items():
            (batch_dir / kind).mkdir(parents=True)
            (batch_dir / kind / "part-00000.jsonl").write_bytes(b"".join(line + b"\n" for line in chunk))
        batch_dirs.append(batch_dir)
    spec_json = {k: (v.isoformat() if isinstance(v, dt.datetime) else v) for k, v in asdict(spec).items()}
    return Dataset(len(order), batch_dirs, by_kind, generate_s, spec_json)


def load_batch(spark: SparkSession, batch_dir: Path) -> DataFrame:
    """One batch as cached raw records (kind, value, source), read the way read_landing reads them."""
    from pyspark.sql import functions as F

    parts = []
    for kind in contracts.KINDS:
        lines = spark.read.format("text").load(str(batch_dir / kind)).where(F.length(F.trim("value")) > 0)
        parts.append(
            lines.select(
                F.lit(kind).alias("kind"),
                F.col("value").cast("binary").alias("value"),
                F.col("_metadata.file_path").alias("source"),
            )
        )
    raw = parts[0].unionByName(parts[1]).unionByName(parts[2])
    raw = raw.repartition(spark.sparkContext.defaultParallelism).persist()
    raw.count()
    return raw


def with_received_at(cached: DataFrame, batch_id: int, skew_ms: int) -> DataFrame:
    """The raw records with received_at, the batch's time: a literal, as in a streaming micro-batch.

    Spark inlines the literal into generated code, so each batch compiles its parse anew, as a stream
    does. The two stages get times `skew_ms` apart so that neither reuses the other's compiled code.
    """
    from pyspark.sql import functions as F

    ts = F.expr(f"timestamp_millis({_T0_MS + 1000 * batch_id + skew_ms})").alias("received_at")
    return cached.select(*contracts.RAW_COLUMNS[:-1], ts)


def jvm_cpu_s(spark: SparkSession) -> float:
    """CPU seconds (user + system) used so far by the Spark JVM and this Python process."""
    pid = spark.sparkContext._jvm.ProcessHandle.current().pid()
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    jvm = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    own = os.times()
    return float(jvm + own.user + own.system)


# --- running ----------------------------------------------------------------------------------------


@dataclass
class SizeResult:
    events: int
    batches: int
    batch_size: int
    repeats: int  # seconds below are medians over the repeats (each on fresh lakes)
    ours_s: float
    ours_eps: float
    baseline_s: float
    baseline_eps: float
    ratio: float
    ours_cpu_s: float  # CPU seconds of the Spark JVM and this process while ours ran
    baseline_cpu_s: float
    cpu_ratio: float
    loadavg_1m: tuple[float, float]  # the machine's 1-minute load average before and after this size
    generate_s: float
    by_kind: dict[str, int]
    accepted: int
    quarantined: int
    changed_listings: int
    ours_repeat_s: list[float]
    baseline_repeat_s: list[float]
    ours_batch_s: list[list[float]]  # per repeat, per batch
    baseline_batch_s: list[list[float]]
    spec: dict[str, Any]
    profile: dict[str, dict[str, float]] = field(default_factory=dict)


def run_size(
    spark: SparkSession,
    reference: Reference,
    events: int,
    batch_size: int,
    repeats: int,
    work: Path,
    timer: StepTimer | None,
    lake_root: dict[str, str],
    quiet: bool = False,
) -> SizeResult:
    """Generate one data set, then run ours and the baseline over its batches `repeats` times."""
    folder = Path(tempfile.mkdtemp(prefix=f"n{events}-", dir=work))
    try:
        data = make_dataset(events, batch_size, folder)
        if not quiet:
            print(
                f"  {events}: generated in {data.generate_s:.1f} s, {data.events} records "
                f"{data.by_kind}, {len(data.batch_dirs)} batch(es)",
                flush=True,
            )
        seconds: dict[str, list[list[float]]] = {"ours": [], "baseline": []}  # per repeat, per batch
        cpu = {"ours": 0.0, "baseline": 0.0}
        profile: dict[str, dict[str, float]] = {"ours": defaultdict(float), "baseline": defaultdict(float)}
        load_before = os.getloadavg()[0]
        counts: list[BatchCounts] = []
        for repeat in range(repeats):
            lakes = folder / f"lakes-{repeat}"
            ours_tables, base_tables = LakeTables(str(lakes / "ours")), LakeTables(str(lakes / "baseline"))
            ensure_tables(spark, ours_tables)
            ensure_baseline_tables(spark, base_tables)
            writer = ingest.BatchWriter(ours_tables, reference, app_id="bench")
            stages: dict[str, tuple[LakeTables, int, Callable[[DataFrame, int], None]]] = {
                "ours": (ours_tables, 0, functools.partial(ours_batch, writer)),
                "baseline": (base_tables, 1, functools.partial(baseline_batch, base_tables, timer=timer)),
            }
            for name in seconds:
                seconds[name].append([])
            for batch_id, batch_dir in enumerate(data.batch_dirs):
                cached = load_batch(spark, batch_dir)
                try:
                    names = ["ours", "baseline"] if (repeat + batch_id) % 2 == 0 else ["baseline", "ours"]
                    for name in names:
                        tables, skew_ms, stage = stages[name]
                        raw = with_received_at(cached, batch_id, skew_ms)
                        lake_root["root"] = tables.root
                        cpu0, began = jvm_cpu_s(spark), time.perf_counter()
                        stage(raw, batch_id)
                        seconds[name][-1].append(time.perf_counter() - began)
                        cpu[name] += jvm_cpu_s(spark) - cpu0
                        if timer:
                            for label, s in timer.take().items():
                                profile[name][label] += s
                finally:
                    cached.unpersist()
                if not quiet:
                    print(
                        f"    repeat {repeat} batch {batch_id} ({names[0]} first): "
                        f"ours {seconds['ours'][-1][-1]:.2f} s, baseline {seconds['baseline'][-1][-1]:.2f} s "
                        f"(load {os.getloadavg()[0]:.1f})",
                        flush=True,
                    )
            counts = list(writer.counts.values())
        totals = {name: [sum(run) for run in runs] for name, runs in seconds.items()}
        if timer:
            for name in profile:
                other = sum(totals[name]) - sum(profile[name].values())
                if other >= 0:
                    profile[name]["(other: planning, persist, driver)"] = other
                else:  # concurrent steps: their seconds add up to more than the wall time
                    profile[name]["(steps that ran at the same time: minus their overlap)"] = other
        ours_s, base_s = statistics.median(totals["ours"]), statistics.median(totals["baseline"])
        return SizeResult(
            events=data.events,
            batches=len(data.batch_dirs),
            batch_size=min(batch_size, data.events),
            repeats=repeats,
            ours_s=round(ours_s, 3),
            ours_eps=round(data.events / ours_s, 1),
            baseline_s=round(base_s, 3),
            baseline_eps=round(data.events / base_s, 1),
            ratio=round(ours_s / base_s, 3),
            ours_cpu_s=round(cpu["ours"] / repeats, 2),
            baseline_cpu_s=round(cpu["baseline"] / repeats, 2),
            cpu_ratio=round(cpu["ours"] / cpu["baseline"], 3),
            loadavg_1m=(round(load_before, 2), round(os.getloadavg()[0], 2)),
            generate_s=round(data.generate_s, 2),
            by_kind=data.by_kind,
            accepted=sum(c.accepted for c in counts),
            quarantined=sum(c.quarantined for c in counts),
            changed_listings=sum(c.changed_listings for c in counts),
            ours_repeat_s=[round(s, 3) for s in totals["ours"]],
            baseline_repeat_s=[round(s, 3) for s in totals["baseline"]],
            ours_batch_s=[[round(s, 3) for s in run] for run in seconds["ours"]],
            baseline_batch_s=[[round(s, 3) for s in run] for run in seconds["baseline"]],
            spec=data.spec,
            profile={k: {label: round(s / repeats, 3) for label, s in v.items()} for k, v in profile.items()}
            if timer
            else {},
        )
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def machine_facts(spark: SparkSession) -> dict[str, Any]:
    conf = spark.conf
    return {
        **benchlib.machine("pyspark", "delta-spark"),
        "java": spark.sparkContext._jvm.System.getProperty("java.version"),
        "spark_master": spark.sparkContext.master,
        "default_parallelism": spark.sparkContext.defaultParallelism,
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        "shuffle_partitions": int(conf.get("spark.sql.shuffle.partitions")),
        "adaptive": conf.get("spark.sql.adaptive.enabled"),
        "driver_memory": conf.get("spark.driver.memory", "default"),
    }


def print_table(results: Sequence[SizeResult]) -> None:
    head = [
        "events",
        "batches",
        "batch",
        "repeats",
        "ours_s",
        "ours_ev/s",
        "base_s",
        "base_ev/s",
        "ratio",
        "cpu_ratio",
    ]
    print(" ".join(f"{h:>10}" for h in head))
    for r in results:
        row = (
            r.events,
            r.batches,
            r.batch_size,
            r.repeats,
            f"{r.ours_s:.2f}",
            f"{r.ours_eps:,.0f}",
            f"{r.baseline_s:.2f}",
            f"{r.baseline_eps:,.0f}",
            f"{r.ratio:.2f}",
            f"{r.cpu_ratio:.2f}",
        )
        print(" ".join(f"{v:>10}" for v in row))


def print_profile(results: Sequence[SizeResult]) -> None:
    for r in results:
        for name, steps in r.profile.items():
            total = r.ours_s if name == "ours" else r.baseline_s
            print(f"\nwhere the time goes: {name}, {r.events} events ({total:.2f} s)")
            for label, s in sorted(steps.items(), key=lambda kv: -kv[1]):
                print(f"  {s:8.2f} s {100 * s / total:5.1f}%  {label}")


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = load_config()
    spark = build_session(cfg, "bench-ingest")
    if args.shuffle_partitions:
        spark.conf.set("spark.sql.shuffle.partitions", str(args.shuffle_partitions))
    reference = load_reference(cfg.reference.categories, cfg.reference.locales)
    lake_root = {"root": ""}
    timer = StepTimer() if args.profile else None
    if timer:
        instrument_batch_writer(timer, lambda: lake_root["root"])
    work = Path(tempfile.mkdtemp(prefix="vectorlake-bench-", dir="/tmp"))
    began = time.perf_counter()
    try:
        print(f"warm-up: {WARMUP_EVENTS} events in batches of {WARMUP_BATCH}, not timed", flush=True)
        run_size(spark, reference, WARMUP_EVENTS, WARMUP_BATCH, 1, work, timer, lake_root, quiet=True)
        if timer:
            timer.take()
        results = []
        for size in args.sizes:
            results.append(
                run_size(spark, reference, size, args.batch_size, args.repeats, work, timer, lake_root)
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)
    changed = library_state()["sha256"] != _LOADED["sha256"]
    if changed:
        print("warning: vectorlake's source changed on disk during the run; the JSON records the hashes")
    print()
    print(f"vectorlake at {_LOADED['commit'][:12]}, uncommitted changes: {_LOADED['uncommitted'] or 'none'}")
    print_table(results)
    if timer:
        print_profile(results)
    out = {
        "bench": "ingest",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "bench/bench_ingest.py", *sys.argv[1:]]),
        "wall_s": round(time.perf_counter() - began, 1),
        "machine": machine_facts(spark),
        "library": _LOADED,
        "library_changed_during_run": changed,
        "design": {
            "batch_size": args.batch_size,
            "input_partitions_per_batch": spark.sparkContext.defaultParallelism,
            "warmup": f"{WARMUP_EVENTS} events in batches of {WARMUP_BATCH}, ours and baseline, untimed",
            "generator": f"seed {SEED}, listings=max(100, N/10), sellers=max(20, listings/10), "
            f"{IMAGE_SIZE[0]}x{IMAGE_SIZE[1]} images; the first N records in emission order",
            "ratio": "ours seconds / baseline seconds over all batches",
        },
        "results": [asdict(r) for r in results],
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.out}")
    spark.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
