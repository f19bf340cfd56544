"""The ingest streaming job: source -> parse -> dedup -> foreachBatch(quarantine, bronze, silver).

    vectorlake stream --source files|kafka [--once]

One query per source, named ``vectorlake_ingest_<source>``, with its checkpoint at
``<checkpoint root>/ingest_<source>``. ``once`` processes everything available and returns (availableNow);
otherwise micro-batches run every ``sources.trigger_interval`` until SIGTERM or SIGINT, which lets the
running batch finish and then stops the query. Each micro-batch logs one progress line.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from vectorlake import contracts, s3
from vectorlake.config import Config
from vectorlake.errors import ConfigError, VectorlakeError
from vectorlake.lake import sources
from vectorlake.lake.reference import load_reference
from vectorlake.lake.tables import LakeTables, ensure_tables
from vectorlake.pipeline import batch_metrics
from vectorlake.pipeline.ingest_batch import BatchWriter, deduplicate
from vectorlake.pipeline.supervise import check_interval, on_signals, stop_gracefully

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)

Source = Literal["files", "kafka"]
SOURCES: tuple[Source, ...] = ("files", "kafka")


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


def check_settings(cfg: Config, source: str) -> tuple[str, str]:
    """Check what the stream needs from config before a session is built: (watermark, trigger interval)."""
    if source not in SOURCES:
        raise ConfigError(f"unknown source {source!r}; expected one of {', '.join(SOURCES)}")
    return (
        check_interval("sources.dedup_watermark", cfg.sources.dedup_watermark),
        check_interval("sources.trigger_interval", cfg.sources.trigger_interval),
    )


def start(
    spark: SparkSession, cfg: Config, source: Source, once: bool, landing_dir: str | None = None
) -> tuple[StreamingQuery, BatchWriter]:
    """Start the ingest query (tables are created first); returns it with its batch writer."""
    watermark, interval = check_settings(cfg, source)
    tables = LakeTables(cfg.lake.root)
    writer = BatchWriter(tables, load_reference(cfg.reference.categories, cfg.reference.locales))
    writer.storage_options = s3.storage_options(cfg)
    writer.recorder = batch_metrics.Recorder(cfg, f"ingest_{source}")
    ensure_tables(spark, tables, writer.storage_options)
    if source == "kafka":
        sources.ensure_topics(cfg)
        raw = sources.read_kafka(spark, cfg)
    else:
        raw = sources.read_landing(spark, cfg, landing_dir)
    parsed = deduplicate(contracts.parse_events(raw, cfg.contracts), watermark)
    stream = (
        parsed.writeStream.queryName(f"vectorlake_ingest_{source}")
        .option("checkpointLocation", checkpoint_path(cfg, source))
        .foreachBatch(writer)
    )
    stream = stream.trigger(availableNow=True) if once else stream.trigger(processingTime=interval)
    return stream.start(), writer


def progress_line(
    batch_id: int, rows_in: int, counts: batch_metrics.BatchCounts | None, seconds: float
) -> str:
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


def totals(writer: BatchWriter, rows_in: dict[int, int]) -> StreamTotals:
    """The run's totals from the input rows of its batches with data and what the writer counted."""
    counted = [writer.counts[b] for b in rows_in if b in writer.counts]
    # a batch the writer kept no counts for: every record it read is a duplicate
    duplicates = sum(writer.counts[b].duplicates(n) if b in writer.counts else n for b, n in rows_in.items())
    return StreamTotals(
        len(rows_in),
        sum(rows_in.values()),
        sum(c.accepted for c in counted),
        duplicates,
        sum(c.quarantined for c in counted),
        sum(c.erased for c in counted),
    )


def report(query: StreamingQuery, writer: BatchWriter, seen: set[int], rows_in: dict[int, int]) -> None:
    """Log a progress line for each batch not seen yet, and note the input rows of those with data.

    Those batches' metrics rows are recorded too (see `vectorlake.pipeline.batch_metrics`), when the writer
    has a recorder.
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
                batch_metrics.ingest_row(
                    writer.recorder.stream, str(p.id), p.batchId, started, seconds, p.numInputRows, counts
                )
            )
    if rows and writer.recorder is not None:
        writer.recorder.record(rows)
