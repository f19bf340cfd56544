"""The ingest streaming job: source -> parse -> dedup -> foreachBatch(quarantine, bronze, silver).

    vectorlake stream --source files|kafka [--once]

One query per source, named ``vectorlake_ingest_<source>``, with its checkpoint at
``<checkpoint root>/ingest_<source>``. ``once`` processes everything available and returns (availableNow);
otherwise micro-batches run every ``sources.trigger_interval`` until SIGTERM or SIGINT, which lets the
running batch finish and then stops the query. Each micro-batch logs one progress line.
"""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from types import FrameType
from typing import TYPE_CHECKING, Literal

from vectorlake import contracts, s3
from vectorlake.config import Config
from vectorlake.errors import ConfigError, VectorlakeError
from vectorlake.lake import ingest, sources
from vectorlake.lake.reference import load_reference
from vectorlake.lake.tables import LakeTables, ensure_tables
from vectorlake.ops import metrics

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)

Source = Literal["files", "kafka"]
SOURCES: tuple[Source, ...] = ("files", "kafka")
_INTERVAL = re.compile(r"^\s*[0-9]+\s+(millisecond|second|minute|hour|day)s?\s*$")
_STOP_GRACE_S = 300.0


@dataclass(frozen=True)
class StreamTotals:
    batches: int
    rows_in: int
    accepted: int
    duplicates: int
    quarantined: int
    erased: int = 0  # events of erased subjects, dropped by their tombstones

    def line(self) -> str:
        return (
            f"{self.batches} micro-batches: {self.rows_in} in, {self.accepted} accepted, "
            f"{self.duplicates} duplicates, {self.quarantined} quarantined, {self.erased} erased"
        )


def checkpoint_path(cfg: Config, source: Source) -> str:
    return f"{cfg.checkpoint_root.rstrip('/')}/ingest_{source}"


def check_interval(name: str, value: str) -> str:
    if not _INTERVAL.match(value):
        raise ConfigError(f"{name}: expected an interval like '2 hours' or '10 seconds', got {value!r}")
    return value.strip()


def validate(cfg: Config, source: str) -> tuple[str, str]:
    """Check what the stream needs from config before a session is built: (watermark, trigger interval)."""
    if source not in SOURCES:
        raise ConfigError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    return (
        check_interval("sources.dedup_watermark", cfg.sources.dedup_watermark),
        check_interval("sources.trigger_interval", cfg.sources.trigger_interval),
    )


def start(
    spark: SparkSession, cfg: Config, source: Source, once: bool, landing_dir: str | None = None
) -> tuple[StreamingQuery, ingest.BatchWriter]:
    """Start the ingest query (tables are created first); returns it with its batch writer."""
    watermark, interval = validate(cfg, source)
    tables = LakeTables(cfg.lake.root)
    writer = ingest.BatchWriter(tables, load_reference(cfg.reference.categories, cfg.reference.locales))
    writer.recorder = metrics.Recorder(cfg, f"ingest_{source}")
    ensure_tables(spark, tables, s3.storage_options(cfg))
    if source == "kafka":
        sources.ensure_topics(cfg)
        raw = sources.read_kafka(spark, cfg)
    else:
        raw = sources.read_landing(spark, cfg, landing_dir)
    parsed = ingest.deduplicate(contracts.parse_events(raw), watermark)
    stream = (
        parsed.writeStream.queryName(f"vectorlake_ingest_{source}")
        .option("checkpointLocation", checkpoint_path(cfg, source))
        .foreachBatch(writer)
    )
    stream = stream.trigger(availableNow=True) if once else stream.trigger(processingTime=interval)
    return stream.start(), writer


def progress_line(batch_id: int, rows_in: int, counts: ingest.BatchCounts | None, seconds: float) -> str:
    if counts is None:
        return f"batch {batch_id}: {rows_in} in, {seconds:.1f} s"
    return (
        f"batch {batch_id}: {rows_in} in, {counts.accepted} accepted, "
        f"{counts.duplicates(rows_in)} duplicates, {counts.quarantined} quarantined, {counts.erased} erased, "
        f"{counts.changed_listings} listings changed, {seconds:.1f} s"
    )


def run(
    spark: SparkSession,
    cfg: Config,
    source: Source,
    once: bool,
    landing_dir: str | None = None,
    stop: threading.Event | None = None,
) -> StreamTotals:
    """Run the ingest query until it finishes (``once``) or `stop` is set / SIGTERM arrives."""
    stop = stop or threading.Event()
    query, writer = start(spark, cfg, source, once, landing_dir)
    log.info(
        "ingest from %s started (query %s, checkpoint %s)", source, query.id, checkpoint_path(cfg, source)
    )
    restore = on_signals(stop)
    rows_in: dict[int, int] = {}  # batch id -> input rows, for every batch with data
    seen: set[int] = set()
    try:
        while query.isActive:
            query.awaitTermination(0.5)
            report(query, writer, seen, rows_in)
            if stop.is_set() and query.isActive:
                stop_gracefully(query)
        report(query, writer, seen, rows_in)
        error = query.exception()
        if error is not None:
            raise VectorlakeError(f"the ingest stream failed: {str(error).splitlines()[0]}") from None
    finally:
        restore()
        if query.isActive:
            query.stop()
    result = totals(writer, rows_in)
    log.info("ingest from %s done: %s", source, result.line())
    return result


def totals(writer: ingest.BatchWriter, rows_in: dict[int, int]) -> StreamTotals:
    """The run's totals from the input rows of its batches with data and what the writer counted."""
    counted = [writer.counts[b] for b in rows_in if b in writer.counts]
    accepted = sum(c.accepted for c in counted)
    quarantined = sum(c.quarantined for c in counted)
    erased = sum(c.erased for c in counted)
    total_in = sum(rows_in.values())
    duplicates = total_in - accepted - quarantined - erased
    return StreamTotals(len(rows_in), total_in, accepted, duplicates, quarantined, erased)


def report(
    query: StreamingQuery, writer: ingest.BatchWriter, seen: set[int], rows_in: dict[int, int]
) -> None:
    """Log a progress line for each batch not seen yet, and note the input rows of those with data.

    Those batches' metrics rows are recorded too (see `vectorlake.ops.metrics`), when the writer has a
    recorder.
    """
    rows = []
    for p in query.recentProgress:
        if p.batchId in seen:
            continue
        seen.add(p.batchId)
        counts = writer.counts.get(p.batchId)
        if p.numInputRows == 0 and (counts is None or counts.accepted + counts.quarantined == 0):
            continue  # the no-data batches Spark runs to advance the watermark
        seconds = p.durationMs.get("triggerExecution", 0) / 1000
        log.info("%s", progress_line(p.batchId, p.numInputRows, counts, seconds))
        rows_in[p.batchId] = p.numInputRows
        if writer.recorder is not None:
            started = datetime.fromisoformat(p.timestamp.replace("Z", "+00:00"))
            rows.append(
                metrics.ingest_row(
                    writer.recorder.stream, str(p.id), p.batchId, started, seconds, p.numInputRows, counts
                )
            )
    if rows and writer.recorder is not None:
        writer.recorder.record(rows)


def stop_gracefully(query: StreamingQuery) -> None:
    """Let the running micro-batch commit, then stop; the next batch, if it has begun, is cut short.

    Spark has no "stop after this batch", so this is the closest: a batch cut short is replayed from the
    checkpoint on restart, and every write being idempotent makes that safe either way.
    """
    last = query.lastProgress
    done = last.batchId if last is not None else -1
    log.info("stopping: waiting for the running micro-batch to commit")
    deadline = time.monotonic() + _STOP_GRACE_S
    while query.isActive and time.monotonic() < deadline:
        last = query.lastProgress
        if last is not None and last.batchId > done:
            break  # the batch that was running has committed
        if not query.status["isTriggerActive"]:
            break  # idle between triggers
        time.sleep(0.1)
    query.stop()
    log.info("stopped after batch %s", query.lastProgress.batchId if query.lastProgress else "none")


def on_signals(stop: threading.Event) -> Callable[[], None]:
    """Route SIGTERM and SIGINT to `stop` (main thread only); returns what restores the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for s, h in old.items():
            signal.signal(s, h)

    return restore
