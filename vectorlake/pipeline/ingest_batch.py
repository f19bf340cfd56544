"""One micro-batch of ingest: quarantine, bronze and the silver merge, each write idempotent.

`deduplicate` is the streaming part (a watermark on the receive time bounds the dedup state; event time is
never used to drop anything). `BatchWriter` is the ``foreachBatch`` function. Its writes:

1. quarantine and ``bronze/<kind>``: appends with ``txnAppId`` = the query id and ``txnVersion`` = the
   batch id, so a replayed batch is skipped by Delta;
2. silver/media and silver/seller_policy: MERGEs that keep the newer record per key (idempotent);
3. the new listing rows are computed from the registers already in silver/listings plus this batch, then
   ``silver/listing_versions`` gets the rows whose state changed (a txn append), and last silver/listings
   is MERGEd. The versions append comes first: if the job dies between the two, the replay skips the
   append and redoes the MERGE; the other order would lose the version rows. The MERGE only writes rows
   still as this batch read them (and inserts only rows it found absent): when another writer or a purge
   changed one in between, the batch reads again and merges again (`MERGE_ATTEMPTS`), without the events
   of subjects erased meanwhile.

Writes to different tables do not wait for each other (`vectorlake.spark.concurrently`): the appends of
1. run beside the silver work, and the MERGEs of 2. beside the read of the touched listings' registers;
only the derivation of the new rows waits for 2., and 3. keeps its order.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, cast

from vectorlake import contracts
from vectorlake.lake import silver
from vectorlake.lake.reference import Reference
from vectorlake.lake.tables import LakeTables, txn_append
from vectorlake.lake.tombstones import Match, mark_erased, row_condition, tombstone_hashes
from vectorlake.pipeline.batch_metrics import BatchCounts, Recorder
from vectorlake.spark import concurrently

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)
MERGE_ATTEMPTS = 5  # silver/listings MERGEs of one batch when other writers keep changing its rows


def deduplicate(parsed: DataFrame, watermark: str) -> DataFrame:
    """Drop repeated (kind, event_id) pairs received within `watermark` of each other (e.g. "2 hours").

    Rejected records are never deduplicated: each one goes to quarantine. The watermark is on
    ``received_at`` (the batch time, monotonic and fixed per batch on replay), so a late event, however
    old its event_ts, is never dropped as late.
    """
    from pyspark.sql import functions as F

    key = F.expr(
        "CASE WHEN rejection IS NULL THEN concat(kind, ':', event_id) ELSE concat('rejected:', uuid()) END"
    )
    return (
        parsed.withColumn("_dedup_key", key)
        .withWatermark("received_at", watermark)
        .dropDuplicatesWithinWatermark(["_dedup_key"])
        .drop("_dedup_key")
    )


@dataclass
class BatchWriter:
    """The ``foreachBatch`` function of the ingest query (also usable on a static DataFrame)."""

    tables: LakeTables
    reference: Reference
    app_id: str | None = None  # None: the streaming query's id, which lives in its checkpoint
    counts: dict[int, BatchCounts] = field(default_factory=dict)
    recorder: Recorder | None = None  # where the driver records each batch's metrics (ingest_query.report)
    storage_options: dict[str, str] = field(default_factory=dict)  # delta-rs options for an s3a:// lake
    # called with the attempt number just before each silver/listings MERGE: a test's seam for forcing
    # another writer's commit in between (None in the pipeline)
    before_listings_merge: Callable[[int], None] | None = None

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        from pyspark.sql import functions as F

        began = time.monotonic()
        spark = batch.sparkSession
        app_id = self.app_id or spark.sparkContext.getLocalProperty("sql.streaming.queryId")
        if not app_id:
            raise RuntimeError("BatchWriter needs app_id outside a streaming query")
        app_id = f"vectorlake-ingest-{app_id}"
        marked = mark_erased(batch, tombstone_hashes(self.tables, self.storage_options)).persist()
        batch = marked.where(~F.col("_erased")).drop("_erased")  # erased subjects: counted, never stored
        try:
            # one pass to count; an empty part is not written at all (skipping a txnVersion is allowed)
            tally: dict[tuple[str, bool], int] = {}
            erased = 0
            for r in (
                marked.groupBy("kind", marked.rejection.isNull().alias("ok"), "_erased")
                .agg(F.count("*").alias("n"))
                .collect()
            ):
                if r["_erased"]:
                    erased += int(r["n"])
                else:
                    tally[(r["kind"], r["ok"])] = int(r["n"])
            quarantined = sum(n for (_, ok), n in tally.items() if not ok)
            # quarantine, bronze and silver are different tables: their commits run at once
            writes: list[Callable[[], object]] = []
            if quarantined:
                quarantine = contracts.quarantine_rows(batch)
                writes.append(partial(txn_append, quarantine, self.tables.quarantine, app_id, batch_id))
            events = {kind: contracts.valid_rows(batch, kind) for kind in contracts.KINDS}
            for kind in contracts.KINDS:
                if tally.get((kind, True)):
                    writes.append(
                        partial(txn_append, events[kind], self.tables.bronze(kind), app_id, batch_id)
                    )
            accepted = sum(n for (_, ok), n in tally.items() if ok)
            present = {kind for (kind, ok), n in tally.items() if ok and n}
            if present:
                writes.append(partial(self.merge_silver, spark, events, present, batch_id, app_id))
            done = concurrently(spark, *writes)
            changed = cast(int, done[-1]) if present else 0
        finally:
            marked.unpersist()
        counts = BatchCounts(batch_id, accepted, quarantined, changed, time.monotonic() - began, erased)
        self.counts[batch_id] = counts
        log.debug("batch %d written: %s", batch_id, counts)

    def merge_silver(
        self,
        spark: SparkSession,
        events: dict[str, DataFrame],
        present: set[str],
        batch_id: int,
        app_id: str,
    ) -> int:
        """Merge the batch into silver; `present` names the kinds that have accepted events."""
        from delta.tables import DeltaTable

        t = self.tables

        def merge(path: str, keys: tuple[str, ...], deltas: DataFrame) -> None:
            condition = " AND ".join(f"t.{k} = s.{k}" for k in keys)
            (
                DeltaTable.forPath(spark, path)
                .alias("t")
                .merge(deltas.alias("s"), condition)
                .whenMatchedUpdateAll(condition=silver.NEWER)
                .whenNotMatchedInsertAll()
                .execute()
            )

        # the media and policy MERGEs overlap with reading the listings' registers (which needs neither)
        steps: list[Callable[[], object]] = [
            partial(merge, path, keys, deltas(events[kind]))
            for kind, path, keys, deltas in (
                ("media", t.media, ("listing_id", "image_id"), silver.media_deltas),
                ("seller_policy", t.seller_policy, ("seller_id",), silver.policy_deltas),
            )
            if kind in present
        ]
        steps.append(partial(self.registers_before, spark, events, present))
        before, merged = cast("tuple[DataFrame, DataFrame]", concurrently(spark, *steps)[-1])
        written = 0
        for attempt in range(MERGE_ATTEMPTS):
            if attempt:  # another writer changed rows under this batch: read them again
                events = self._drop_erased(events)
                before, merged = self.registers_before(spark, events, present)
            changed = self.changed_listings(spark, before, merged)
            n_changed = int(changed.count())
            if n_changed == 0:
                return written
            if self.before_listings_merge is not None:
                self.before_listings_merge(attempt)
            suffix = f"#retry{attempt}" if attempt else ""
            applied = self.write_listings(spark, changed, batch_id, app_id + suffix)
            written += applied
            if applied == n_changed:
                return written
            log.warning(
                "batch %d: %d of %d listing rows changed under it (another writer, or a purge): merging "
                "them again on a fresh read", batch_id, n_changed - applied, n_changed,
            )  # fmt: skip
        raise RuntimeError(
            f"batch {batch_id}: silver/listings kept changing under it for {MERGE_ATTEMPTS} attempts"
        )

    def _drop_erased(self, events: dict[str, DataFrame]) -> dict[str, DataFrame]:
        """``events`` without those of subjects erased since the batch began (a purge ran meanwhile)."""
        hashes = frozenset(tombstone_hashes(self.tables, self.storage_options))
        if not hashes:
            return events
        out = {}
        for kind, frame in events.items():
            ids = {c: t for c, t in frame.dtypes if c in ("listing_id", "seller_id")}
            condition = row_condition(ids, Match(hashes, hashes))
            out[kind] = frame.where(f"NOT coalesce({condition}, false)") if condition else frame
        return out

    def registers_before(
        self, spark: SparkSession, events: dict[str, DataFrame], present: set[str]
    ) -> tuple[DataFrame, DataFrame]:
        """The silver rows this batch touches as they are before it (``before``: listing_id, registers and
        the two hashes) and their registers merged with the batch's (``merged``), each materialized once:
        derive() reads the registers several times, and would rescan silver/listings and re-aggregate the
        batch every time."""
        from pyspark.sql import functions as F

        current = spark.read.format("delta").load(self.tables.listings)
        listing_deltas = silver.listing_deltas(events["listing_changes"])
        touched = listing_deltas.select("listing_id").union(events["media"].select("listing_id"))
        if "seller_policy" in present:  # every listing that ever named one of these sellers
            sellers = events["seller_policy"].select("seller_id").distinct()
            touched = touched.union(
                current.select("listing_id", F.explode("registers.sellers").alias("seller_id"))
                .join(sellers, "seller_id", "left_semi")
                .select("listing_id")
            )
        before = (
            current.join(touched.distinct(), "listing_id", "left_semi")
            .select("listing_id", "registers", "state_hash", "reg_hash")
            .localCheckpoint(eager=True)
        )
        merged = silver.merge_registers(
            before.select("listing_id", "registers"), listing_deltas
        ).localCheckpoint(eager=True)
        return before, merged

    def changed_listings(self, spark: SparkSession, before: DataFrame, merged: DataFrame) -> DataFrame:
        """The new silver rows of the listings whose state or registers changed, with their old hashes
        (``_old_state``, ``_old_regs``; null for a new listing), computed once, after the media and policy
        MERGEs of this batch."""
        from pyspark.sql import functions as F

        media = spark.read.format("delta").load(self.tables.media)
        policy = spark.read.format("delta").load(self.tables.seller_policy)
        rows = silver.derive(merged, media, policy, self.reference)
        old = before.select(
            "listing_id", F.col("state_hash").alias("_old_state"), F.col("reg_hash").alias("_old_regs")
        )
        return (
            rows.join(old, "listing_id", "left")
            .where("_old_state IS NULL OR _old_state <> state_hash OR _old_regs <> reg_hash")
            .localCheckpoint(eager=True)  # computed once, from the table as it was before this batch
        )

    def write_listings(self, spark: SparkSession, changed: DataFrame, batch_id: int, app_id: str) -> int:
        """The version rows of the changed states (a txn append), then the silver/listings MERGE; returns
        how many rows it wrote.

        The MERGE is conditioned on the state read: a row is updated only while it still has the hashes it
        had when this batch read it, and inserted only if there was none then. A row another writer (a
        backfill, another stream) or a purge changed in between is left alone, and the caller merges the
        batch again on a fresh read: a lost update or a purged listing brought back is not possible."""
        from delta.tables import DeltaTable
        from pyspark.sql import functions as F

        t = self.tables
        versions = changed.where("_old_state IS NULL OR _old_state <> state_hash").select(
            *silver.STATE_COLUMNS,
            "state_hash",
            F.lit(batch_id).cast("bigint").alias("batch_id"),
            F.current_timestamp().alias("recorded_at"),
        )
        txn_append(versions, t.listing_versions, app_id, batch_id)
        columns = {c: f"s.`{c}`" for c in silver.LISTING_COLUMNS}
        metrics = (
            DeltaTable.forPath(spark, t.listings)
            .alias("t")
            .merge(changed.alias("s"), "t.listing_id = s.listing_id")
            .whenMatchedUpdate(
                condition="t.state_hash <=> s._old_state AND t.reg_hash <=> s._old_regs", set=columns
            )
            .whenNotMatchedInsert(condition="s._old_state IS NULL", values=columns)
            .execute()
            .first()
        )
        return int(metrics["num_updated_rows"]) + int(metrics["num_inserted_rows"]) if metrics else 0
