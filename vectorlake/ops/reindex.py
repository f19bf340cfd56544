"""The bulk load of a building generation from current silver (`vectorlake reindex`, jobs/reindex.py).

Served listings are cut into ``reindex.chunks`` buckets by a hash of ``listing_id``. Each bucket goes
through the stream's own `IndexWriter.publish` (current silver rows, cached embeddings reused where
content hash and model version match, misses embedded once, external versions), then is recorded in
``control/reindex_progress``. A crashed load resumes at the first bucket not recorded; a bucket that ran
half-way runs again, which writes the same documents at the same versions (nothing duplicates) and skips
its index-log append (a txn append keyed by the generation and the bucket).

Meanwhile the stream writes every change to the building generation too; a document the load writes from
an older state loses to the stream's newer version, and a delete the stream applied stays applied (the
generation remembers deletes for ``index.build_gc_deletes``). When every bucket is in, refresh and replicas
are restored.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from vectorlake import control, s3
from vectorlake.config import Config
from vectorlake.lake.tables import LakeTables

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadResult:
    index: str
    chunks: int
    resumed: int  # buckets already done by an earlier run
    listings: int
    upserts: int
    rejected: int
    text_model_calls: int
    image_model_calls: int
    seconds: float

    def line(self) -> str:
        again = f" ({self.resumed} done before)" if self.resumed else ""
        return (
            f"reindex {self.index}: {self.chunks} buckets{again}, {self.listings} listings, "
            f"{self.upserts} upserts, {self.rejected} rejected, model calls: {self.text_model_calls} text, "
            f"{self.image_model_calls} image, {self.seconds:.1f} s"
        )


def load(spark: SparkSession, cfg: Config, index: str | None = None) -> LoadResult:
    """Load the building generation (or `index`, which must be it) from silver; resumable."""
    from pyspark.sql import functions as F

    from vectorlake.index import generations
    from vectorlake.index.client import make_client
    from vectorlake.lake.tables import ensure_tables
    from vectorlake.ops import lifecycle
    from vectorlake.pipeline.publish import IndexWriter
    from vectorlake.pipeline.targets import target_for

    began = time.monotonic()
    client = make_client(cfg)
    try:
        index = lifecycle.building(cfg, client, index)
        target = target_for(cfg, client, cfg.index.next_alias, index)
    finally:
        client.close()
    n = cfg.reindex.chunks
    progress = control.progress_table(cfg)
    done = {r["chunk"] for r in progress.rows() if r["index"] == index and r["chunks"] == n}
    tables = LakeTables(cfg.lake.root)
    ensure_tables(spark, tables, s3.storage_options(cfg))
    bulk_cfg = dataclasses.replace(cfg, sink=dataclasses.replace(cfg.sink, bulk_docs=cfg.reindex.bulk_docs))
    writer = IndexWriter(bulk_cfg, tables)
    served = (
        spark.read.format("delta")
        .load(tables.listings)
        .filter("served")
        .select("listing_id", F.pmod(F.xxhash64("listing_id"), F.lit(n)).alias("bucket"))
    )
    totals = {"listings": 0, "upserts": 0, "rejected": 0, "text": 0, "image": 0}
    for chunk in range(n):
        if chunk in done:
            continue
        keys = served.filter(F.col("bucket") == chunk).select("listing_id")
        counts = writer.publish(spark, keys, chunk, f"vectorlake-reindex-{index}", [target], served_only=True)
        row = {"index": index, "chunk": chunk, "chunks": n, "finished_at": datetime.now(UTC)}
        if counts is not None:
            totals["listings"] += counts.listings
            totals["upserts"] += counts.upserts
            totals["rejected"] += counts.rejected
            totals["text"] += counts.text_model_calls
            totals["image"] += counts.image_model_calls
            row |= {
                "listings": counts.listings,
                "text_model_calls": counts.text_model_calls,
                "image_model_calls": counts.image_model_calls,
            }
        progress.upsert([row])
        log.info("reindex %s: bucket %d of %d done", index, chunk + 1, n)
    client = make_client(cfg)
    try:
        generations.finish_build(client, cfg.index, index)
    finally:
        client.close()
    lifecycle.mark_loaded(cfg, index)
    result = LoadResult(
        index=index,
        chunks=n,
        resumed=len(done),
        listings=totals["listings"],
        upserts=totals["upserts"],
        rejected=totals["rejected"],
        text_model_calls=totals["text"],
        image_model_calls=totals["image"],
        seconds=time.monotonic() - began,
    )
    log.info("%s", result.line())
    return result
