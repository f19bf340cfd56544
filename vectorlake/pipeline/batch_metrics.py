"""Each micro-batch's counts, and its row in ``ops/stream_metrics`` (the Prometheus side reads them).

``ops/stream_metrics`` gets one row per micro-batch with data of each query, keyed by (stream, query id,
batch id); it holds counts only, never a listing or seller id. The counts are the ones the queries already
keep (`BatchCounts` and the source's input rows from the query progress for ingest, `IndexCounts` for the
index query); the only extra Spark work is one aggregation of the index batch's write results for the lag
percentiles.

Rows are written with delta-rs as insert-only MERGEs on the key, like the txn appends they sit beside: a
replayed batch finds its row and leaves it as the first complete run recorded it, so nothing is counted
twice. The index query records its row inside the batch (before the checkpoint commits it); the ingest
query's row is recorded by the driver once the batch's progress is reported, because only the progress
knows how many records the source gave before deduplication. The exposition is `vectorlake.ops.metrics`.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from vectorlake.config import Config
from vectorlake.control import stream_metrics_table
from vectorlake.lake.tables import STREAM_METRIC_COLUMNS

log = logging.getLogger(__name__)

INDEX_STREAM = "index"


@dataclass(frozen=True)
class BatchCounts:
    batch_id: int
    accepted: int
    quarantined: int
    changed_listings: int
    seconds: float
    erased: int = 0  # events of erased subjects (tombstones), dropped before quarantine and bronze

    def duplicates(self, rows_in: int) -> int:
        """Of the ``rows_in`` records the source gave this batch, those dropped as duplicates: every
        record is accepted, quarantined, erased or a duplicate."""
        return rows_in - self.accepted - self.quarantined - self.erased


@dataclass(frozen=True)
class IndexCounts:
    batch_id: int
    listings: int  # keys the change feed touched
    upserts: int
    deletes: int
    applied: int
    stale: int
    rejected: int
    text_model_calls: int
    image_model_calls: int
    image_failures: int
    seconds: float
    cache_hits: int = 0  # text + image vectors the batch needed that gold/embeddings already held
    retries: int = 0  # bulk retry rounds (each a backoff sleep) over every partition and target
    lag_p50_s: float | None = None  # event_ts -> indexed_at over the applied writes (measure_lag only)
    lag_p95_s: float | None = None
    lag_max_s: float | None = None

    def line(self) -> str:
        return (
            f"index batch {self.batch_id}: {self.listings} listings, {self.upserts} upserts, "
            f"{self.deletes} deletes ({self.applied} applied, {self.stale} stale, {self.rejected} rejected), "
            f"model calls: {self.text_model_calls} text, {self.image_model_calls} image, "
            f"{self.image_failures} image failures, {self.seconds:.1f} s"
        )


def ingest_row(
    stream: str,
    query_id: str,
    batch_id: int,
    started_at: datetime,
    duration_s: float,
    rows_in: int,
    counts: BatchCounts | None,
) -> dict[str, Any]:
    """The metrics row of an ingest micro-batch, from its progress and what the batch writer counted."""
    if counts is None:  # the batch writer kept no counts for it: zeros, so every record read is a duplicate
        counts = BatchCounts(batch_id, 0, 0, 0, duration_s)
    return _row(
        stream,
        query_id,
        batch_id,
        started_at,
        duration_s,
        rows=rows_in,
        accepted=counts.accepted,
        duplicates=max(0, counts.duplicates(rows_in)),
        quarantined=counts.quarantined,
        erased=counts.erased,
    )


def index_row(query_id: str, counts: IndexCounts, started_at: datetime) -> dict[str, Any]:
    """The metrics row of an index micro-batch, from its `IndexCounts`."""
    return _row(
        INDEX_STREAM,
        query_id,
        counts.batch_id,
        started_at,
        counts.seconds,
        rows=counts.listings,
        model_calls=counts.text_model_calls + counts.image_model_calls,
        cache_hits=counts.cache_hits,
        index_writes=counts.applied,
        stale_writes=counts.stale,
        retries=counts.retries,
        embed_dead_letters=counts.image_failures,
        index_dead_letters=counts.rejected,
        lag_p50_s=counts.lag_p50_s,
        lag_p95_s=counts.lag_p95_s,
        lag_max_s=counts.lag_max_s,
    )


def _row(
    stream: str, query_id: str, batch_id: int, started_at: datetime, duration_s: float, **values: Any
) -> dict[str, Any]:
    from datetime import timedelta

    row: dict[str, Any] = dict.fromkeys(STREAM_METRIC_COLUMNS, None)
    row.update({c: 0 for c, t in STREAM_METRIC_COLUMNS.items() if t == "bigint"})
    row.update(
        stream=stream,
        query_id=query_id,
        batch_id=batch_id,
        started_at=started_at,
        finished_at=started_at + timedelta(seconds=duration_s),
        duration_s=float(duration_s),
        recorded_at=datetime.now(UTC),
    )
    unknown = set(values) - set(STREAM_METRIC_COLUMNS)
    if unknown:
        raise ValueError(f"not stream metric columns: {sorted(unknown)}")
    row.update(values)
    return row


@dataclass
class Recorder:
    """Writes metrics rows for one streaming query; a failure is logged, never fails the stream."""

    cfg: Config
    stream: str

    def record(self, rows: Sequence[Mapping[str, Any]]) -> None:
        try:
            stream_metrics_table(self.cfg).insert_new(rows)
        except Exception:  # observability must not stop ingestion or indexing
            log.warning("could not record %d %s metrics row(s)", len(rows), self.stream, exc_info=True)
