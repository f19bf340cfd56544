"""The main job: the ingest query and the embed + index query, run together and supervised.

    vectorlake stream --source files|kafka [--once] [--only ingest|index]

``once``: ingest processes everything available (availableNow), then the index query does the same over
the silver change feed, then both return. Otherwise both run side by side until SIGTERM or SIGINT. The
two queries are independent: if OpenSearch is down, the index query fails after the sink's retries while
ingest goes on filling silver; the index query is restarted from its checkpoint after
``sink.restart_delay_s``, doubled for each failure in a row up to ``sink.restart_max_delay_s`` (a batch
that completes resets it), each failure recorded in ``ops/stream_failures``, and it catches up once
OpenSearch is back. An ingest failure stops the job.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from vectorlake.config import Config
from vectorlake.errors import VectorlakeError
from vectorlake.pipeline import ingest_query
from vectorlake.pipeline.supervise import (
    failure,
    on_signals,
    record_failure,
    restart_delay,
    stop_gracefully,
)

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming import StreamingQuery

    from vectorlake.pipeline.publish import IndexWriter

log = logging.getLogger(__name__)

Only = Literal["all", "ingest", "index"]
ONLY: tuple[Only, ...] = ("all", "ingest", "index")


@dataclass(frozen=True)
class IndexTotals:
    batches: int
    listings: int
    upserts: int
    deletes: int
    rejected: int
    text_model_calls: int
    image_model_calls: int
    image_failures: int
    restarts: int

    def line(self) -> str:
        return (
            f"{self.batches} index batches: {self.listings} listings, {self.upserts} upserts, "
            f"{self.deletes} deletes, {self.rejected} rejected; model calls: {self.text_model_calls} text, "
            f"{self.image_model_calls} image ({self.image_failures} image failures); "
            f"{self.restarts} restarts"
        )


@dataclass(frozen=True)
class PipelineTotals:
    ingest: ingest_query.StreamTotals | None
    index: IndexTotals | None


def _index_totals(writers: list[IndexWriter], restarts: int) -> IndexTotals:
    counts = [c for w in writers for c in w.counts.values()]
    return IndexTotals(
        batches=len(counts),
        listings=sum(c.listings for c in counts),
        upserts=sum(c.upserts for c in counts),
        deletes=sum(c.deletes for c in counts),
        rejected=sum(c.rejected for c in counts),
        text_model_calls=sum(c.text_model_calls for c in counts),
        image_model_calls=sum(c.image_model_calls for c in counts),
        image_failures=sum(c.image_failures for c in counts),
        restarts=restarts,
    )


def run_index_once(spark: SparkSession, cfg: Config) -> IndexTotals:
    """Embed and index everything in the silver change feed not yet indexed, then return."""
    from vectorlake.pipeline import index_query  # the embedding stage: pandas, models

    query, writer = index_query.start(spark, cfg, once=True)
    try:
        query.awaitTermination()
    except Exception:  # the reason is reported from query.exception() below
        log.debug("index query ended with an error", exc_info=True)
    finally:
        if query.isActive:
            query.stop()
    if query.exception() is not None:
        raise VectorlakeError(
            failure(query, "index") + "; silver is up to date, run the stream again to index it"
        ) from None
    totals = _index_totals([writer], 0)
    log.info("index done: %s", totals.line())
    return totals


def run(
    spark: SparkSession,
    cfg: Config,
    source: ingest_query.Source,
    once: bool,
    landing_dir: str | None = None,
    only: Only = "all",
    stop: threading.Event | None = None,
) -> PipelineTotals:
    """Run the job: see the module docstring."""
    if only == "index":
        if once:
            return PipelineTotals(None, run_index_once(spark, cfg))
        return _run_continuous(spark, cfg, source, landing_dir, stop, ingest=False)
    if only == "ingest":
        return PipelineTotals(ingest_query.run(spark, cfg, source, once, landing_dir, stop), None)
    if once:
        totals = ingest_query.run(spark, cfg, source, True, landing_dir, stop)
        if stop is not None and stop.is_set():
            return PipelineTotals(totals, None)
        return PipelineTotals(totals, run_index_once(spark, cfg))
    return _run_continuous(spark, cfg, source, landing_dir, stop, ingest=True)


class _Backoff:
    """The index query's restarts: the delay doubles per failure in a row (reset when a batch completes),
    and every failure is recorded in ``ops/stream_failures``."""

    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.in_a_row = 0
        self.completed = 0

    def failed(self, query_id: str, error: str) -> float:
        """Record a failure; returns when (``time.monotonic()``) to start the query again."""
        self.in_a_row += 1
        sink = self.cfg.sink
        delay = restart_delay(sink.restart_delay_s, sink.restart_max_delay_s, self.in_a_row)
        record_failure(self.cfg, "index", query_id, self.in_a_row, delay, error)
        return time.monotonic() + delay

    def progress(self, writers: list[IndexWriter]) -> None:
        done = sum(len(w.counts) for w in writers)
        if done > self.completed:  # a batch completed: the next failure starts the backoff again
            self.completed, self.in_a_row = done, 0


def _run_continuous(
    spark: SparkSession,
    cfg: Config,
    source: ingest_query.Source,
    landing_dir: str | None,
    stop: threading.Event | None,
    ingest: bool,
) -> PipelineTotals:
    from vectorlake.pipeline import index_query

    stop = stop or threading.Event()
    restore = on_signals(stop)
    ingesting = ingest_writer = None
    if ingest:
        ingesting, ingest_writer = ingest_query.start(spark, cfg, source, False, landing_dir)
        log.info("ingest from %s started (query %s)", source, ingesting.id)
    writers: list[IndexWriter] = []
    indexing: StreamingQuery | None = None
    restart_at = 0.0
    restarts = 0
    backoff = _Backoff(cfg)
    seen: set[int] = set()
    rows_in: dict[int, int] = {}
    try:
        while not stop.is_set():
            if indexing is None and time.monotonic() >= restart_at:
                try:
                    indexing, writer = index_query.start(spark, cfg, once=False)
                    writers.append(writer)
                    log.info("index query started (query %s)", indexing.id)
                except VectorlakeError as e:  # e.g. OpenSearch unreachable while resolving the generation
                    restart_at = backoff.failed("", f"cannot start the index query: {e}")
                    log.warning(
                        "cannot start the index query: %s; retrying in %.0f s (failure %d in a row)",
                        e,
                        restart_at - time.monotonic(),
                        backoff.in_a_row,
                    )
            time.sleep(0.5)
            backoff.progress(writers)
            if ingesting is not None and ingest_writer is not None:
                ingest_query.report(ingesting, ingest_writer, seen, rows_in)
                if not ingesting.isActive:
                    raise VectorlakeError(failure(ingesting, "ingest")) from None
            if indexing is not None and not indexing.isActive:
                why = failure(indexing, "index")
                restart_at = backoff.failed(str(indexing.id), why)
                log.warning(
                    "%s; restarting it from its checkpoint in %.0f s (failure %d in a row)",
                    why,
                    restart_at - time.monotonic(),
                    backoff.in_a_row,
                )
                indexing = None
                restarts += 1
        for q in (ingesting, indexing):
            if q is not None and q.isActive:
                stop_gracefully(q)
        if ingesting is not None and ingest_writer is not None:
            ingest_query.report(ingesting, ingest_writer, seen, rows_in)
    finally:
        restore()
        for q in (ingesting, indexing):
            if q is not None and q.isActive:
                q.stop()
    ingest_totals = None
    if ingest_writer is not None:
        ingest_totals = ingest_query.totals(ingest_writer, rows_in)
        log.info("ingest done: %s", ingest_totals.line())
    totals = _index_totals(writers, restarts)
    log.info("index done: %s", totals.line())
    return PipelineTotals(ingest_totals, totals)
