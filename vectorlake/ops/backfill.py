"""Replay a time range of bronze events into silver and/or re-index the listings it touched.

    vectorlake backfill --from 2026-11-01T00:00:00Z --to 2026-11-02T00:00:00Z --target both
    scripts/submit.sh jobs/backfill.py --from ... --to ... --target index

- ``silver``: the bronze events with ``from <= event_ts < to`` go through the ingest's own silver merge.
  Silver is a per-field last-writer-wins register, so replaying events it has already seen changes
  nothing (no new state version), and a silver that lost them gets them back: idempotent.
- ``index``: the listings those events touched (listing and media events, and every listing of a seller
  with a policy event) are written from their current silver state to every generation the stream
  writes (live, building, rollback target), with external versions: a re-run converges.
- ``both``: silver, then index.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from vectorlake import s3
from vectorlake.config import Config
from vectorlake.errors import VectorlakeError
from vectorlake.lake.tables import LakeTables

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

BackfillTarget = Literal["silver", "index", "both"]
TARGETS: tuple[BackfillTarget, ...] = ("silver", "index", "both")


@dataclass(frozen=True)
class BackfillResult:
    start: datetime
    end: datetime
    target: BackfillTarget
    events: dict[str, int]  # bronze events in the range, per kind
    silver_changed: int | None  # listings whose silver state changed (None: silver not replayed)
    indexed: int | None  # listings written to the index (None: not re-indexed)
    index_rejected: int
    seconds: float

    def line(self) -> str:
        parts = [
            f"backfill {self.start.isoformat()} .. {self.end.isoformat()} ({self.target}): "
            + ", ".join(f"{n} {k}" for k, n in self.events.items())
        ]
        if self.silver_changed is not None:
            parts.append(f"{self.silver_changed} listings changed in silver")
        if self.indexed is not None:
            parts.append(f"{self.indexed} listings re-indexed ({self.index_rejected} rejected)")
        return "; ".join(parts) + f"; {self.seconds:.1f} s"


def check_range(start: datetime, end: datetime) -> None:
    if start.tzinfo is None or end.tzinfo is None:
        raise VectorlakeError("backfill: --from and --to need a time zone (e.g. 2026-11-01T00:00:00Z)")
    if start >= end:
        raise VectorlakeError(
            f"backfill: --from ({start.isoformat()}) must be before --to ({end.isoformat()})"
        )


def events_in_range(
    spark: SparkSession, tables: LakeTables, start: datetime, end: datetime
) -> dict[str, DataFrame]:
    """Bronze events per kind with ``start <= event_ts < end`` (bronze columns, as the ingest hands them)."""
    from pyspark.sql import functions as F

    from vectorlake import contracts

    return {
        kind: spark.read.format("delta")
        .load(tables.bronze(kind))
        .where((F.col("event_ts") >= F.lit(start)) & (F.col("event_ts") < F.lit(end)))
        for kind in contracts.KINDS
    }


def touched_listings(spark: SparkSession, tables: LakeTables, events: dict[str, DataFrame]) -> DataFrame:
    """listing_id of every listing the events touch: their own, and those of sellers with policy events."""
    from pyspark.sql import functions as F

    sellers = events["seller_policy"].select("seller_id").distinct()
    by_seller = (
        spark.read.format("delta")
        .load(tables.listings)
        .select("listing_id", F.explode("registers.sellers").alias("seller_id"))
        .join(sellers, "seller_id", "left_semi")
        .select("listing_id")
    )
    return (
        events["listing_changes"]
        .select("listing_id")
        .union(events["media"].select("listing_id"))
        .union(by_seller)
        .distinct()
    )


def run(
    spark: SparkSession, cfg: Config, start: datetime, end: datetime, target: BackfillTarget
) -> BackfillResult:
    """Replay [start, end) into silver and/or the index: see the module docstring."""
    from delta.tables import DeltaTable

    from vectorlake.lake.reference import load_reference
    from vectorlake.lake.tables import ensure_tables
    from vectorlake.pipeline.ingest_batch import BatchWriter
    from vectorlake.pipeline.publish import IndexWriter
    from vectorlake.pipeline.targets import resolve_targets

    check_range(start, end)
    if target not in TARGETS:
        raise VectorlakeError(f"backfill: --target must be one of {', '.join(TARGETS)}, got {target!r}")
    began = time.monotonic()
    tables = LakeTables(cfg.lake.root)
    ensure_tables(spark, tables, s3.storage_options(cfg))
    found = events_in_range(spark, tables, start, end)
    events = {kind: df.localCheckpoint(eager=True) for kind, df in found.items()}
    counts = {kind: int(df.count()) for kind, df in events.items()}
    app_id = f"vectorlake-backfill-{start.isoformat()}-{end.isoformat()}"
    # txnVersion: the silver table's version grows with every change, so a run that changes silver
    # appends its state versions once, and a repeated run (which changes nothing) appends nothing
    run_id = int(DeltaTable.forPath(spark, tables.listings).history(1).collect()[0]["version"]) + 1
    changed = None
    if target in ("silver", "both"):
        present = {kind for kind, n in counts.items() if n}
        writer = BatchWriter(tables, load_reference(cfg.reference.categories, cfg.reference.locales))
        changed = writer.merge_silver(spark, events, present, run_id, app_id) if present else 0
    indexed, rejected = None, 0
    if target in ("index", "both"):
        keys = touched_listings(spark, tables, events)
        index_writer = IndexWriter(cfg, tables)
        published = index_writer.publish(spark, keys, int(time.time()), app_id, resolve_targets(cfg))
        indexed = published.listings if published else 0
        rejected = published.rejected if published else 0
    result = BackfillResult(start, end, target, counts, changed, indexed, rejected, time.monotonic() - began)
    log.info("%s", result.line())
    return result


# --- dead letters ---------------------------------------------------------------------------------------

DEAD_LETTER_TABLES = ("embed_dead_letters", "index_dead_letters")


@dataclass(frozen=True)
class DeadLetters:
    """What the dead-letter tables hold (recorded at or after ``since``): rows per table and reason."""

    since: datetime | None
    reasons: dict[str, dict[str, int]]  # table -> reason -> rows
    listings: int  # distinct listings among them
    indexed: int | None = None  # listings written again by a retry (None: not retried)
    rejected: int = 0

    def lines(self) -> list[str]:
        when = f" since {self.since.isoformat()}" if self.since else ""
        out = [f"dead letters{when}: {self.listings} listings"]
        for table in DEAD_LETTER_TABLES:
            counts = self.reasons.get(table, {})
            detail = ", ".join(f"{n} {r}" for r, n in sorted(counts.items())) or "none"
            out.append(f"  gold/{table}: {detail}")
        if self.indexed is not None:
            out.append(f"retried: {self.indexed} listings written again ({self.rejected} rejected again)")
        return out


def dead_letters(
    spark: SparkSession | None, cfg: Config, since: datetime | None = None, retry: bool = False
) -> DeadLetters:
    """Count the dead letters and, with ``retry``, write their listings again from current silver.

    Counting reads the two small tables with delta-rs (no Spark: ``spark`` may be None without ``retry``).
    A retry is the same write as a backfill's index target: images are fetched again where no embedding
    is cached (an image that arrived since, or a store that is back), and every generation the stream
    writes gets the listing with its external version, so retrying twice changes nothing more. A listing
    that fails again gets a new dead letter; the old rows stay as the record of what happened."""
    reasons, listing_ids = _dead_letter_rows(cfg, since)
    if not retry or not listing_ids:
        return DeadLetters(since, reasons, len(listing_ids), 0 if retry else None)
    if spark is None:
        raise ValueError("a dead-letter retry writes through Spark: pass a session")
    from vectorlake.lake.tables import ensure_tables
    from vectorlake.pipeline.publish import IndexWriter
    from vectorlake.pipeline.targets import resolve_targets

    tables = LakeTables(cfg.lake.root)
    ensure_tables(spark, tables, s3.storage_options(cfg))
    keys = spark.createDataFrame([(k,) for k in sorted(listing_ids)], "listing_id string")
    app_id = f"vectorlake-dead-letters-{since.isoformat() if since else 'all'}"
    published = IndexWriter(cfg, tables).publish(spark, keys, int(time.time()), app_id, resolve_targets(cfg))
    indexed = published.listings if published else 0
    rejected = published.rejected if published else 0
    return DeadLetters(since, reasons, len(listing_ids), indexed, rejected)


def _dead_letter_rows(cfg: Config, since: datetime | None) -> tuple[dict[str, dict[str, int]], set[str]]:
    """(table -> reason -> rows, distinct listing ids) of the dead letters recorded at or after ``since``."""
    from collections import Counter

    import pyarrow as pa
    import pyarrow.dataset as ds

    from vectorlake.control import open_dataset

    tables = LakeTables(cfg.lake.root)
    reasons: dict[str, dict[str, int]] = {}
    listing_ids: set[str] = set()
    for table in DEAD_LETTER_TABLES:
        opened = open_dataset(cfg, tables.path("gold", table))
        if opened is None:
            continue
        where = (
            None
            if since is None
            else ds.field("recorded_at") >= pa.scalar(since, pa.timestamp("us", tz="UTC"))
        )
        rows = opened[1].to_table(columns=["listing_id", "reason"], filter=where).to_pylist()
        if rows:
            reasons[table] = dict(Counter(str(r["reason"]) for r in rows))
        listing_ids.update(r["listing_id"] for r in rows if r["listing_id"] is not None)
    return reasons, listing_ids
