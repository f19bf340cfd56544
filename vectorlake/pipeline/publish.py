"""Publishing: the current silver state of some listings -> each target's vectors -> index writes, tallied.

`IndexWriter` is the ``foreachBatch`` function of the index query (`vectorlake.pipeline.index_query`), and
`IndexWriter.publish` is what the reindex and the backfill call on a static DataFrame of ids. A publish:

1. reads the *current* silver rows of the keys (a replay, or a batch that lags behind silver, therefore
   writes the newest state, and the index converges), `read_current`;
2. for the served ones builds the text model input and the image input (the primary image URL), then per
   target gets the vectors from `vectorlake.embed.stage.embed` with that target's models (cache hits
   reused, misses embedded once), `embed_target`;
3. writes every key to the target from the executors (`vectorlake.pipeline.documents`) and appends the
   results to ``gold/index_log``, the rejected ones to ``gold/index_dead_letters`` (txn appends keyed by the
   query id, the generation and the batch id), `write_target`; the targets' writes and the one MERGE of
   the new vectors into ``gold/embeddings`` (`vectorlake.embed.stage.record`) run at the same time.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING, Literal, cast

from vectorlake.config import Config
from vectorlake.embed import stage
from vectorlake.embed.registry import ModelRef
from vectorlake.lake.tables import LakeTables, txn_append
from vectorlake.pipeline import batch_metrics
from vectorlake.pipeline.batch_metrics import IndexCounts
from vectorlake.pipeline.documents import RESULT_SCHEMA, WriteSpec, write_partition
from vectorlake.pipeline.targets import Target, resolve_targets
from vectorlake.spark import concurrently

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

log = logging.getLogger(__name__)

# the silver columns a publish reads: the document fields and the model inputs
_CURRENT = (
    "listing_id",
    "served",
    "version",
    "event_ts",
    "title",
    "description",
    "attributes",
    "seller_id",
    "locale",
    "category_id",
    "category_path",
    "primary_image_id",
    "primary_image_url",
    "policy_status",
)
_OUTCOMES = ("upserts", "deletes", "applied", "stale", "rejected")


@dataclass
class ModelCalls:
    """What the embedding stage did for one publish, over every target."""

    text: int = 0
    image: int = 0
    failed: int = 0  # image inputs that could not be fetched or decoded (gold/embed_dead_letters)
    hits: int = 0  # vectors reused from gold/embeddings


@dataclass
class IndexWriter:
    """The ``foreachBatch`` function of the index query (also usable on a static DataFrame of ids)."""

    cfg: Config
    tables: LakeTables
    app_id: str | None = None
    counts: dict[int, IndexCounts] = field(default_factory=dict)

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        from datetime import UTC, datetime

        began = time.monotonic()
        started_at = datetime.now(UTC)
        spark = batch.sparkSession
        app_id = self.app_id or spark.sparkContext.getLocalProperty("sql.streaming.queryId")
        if not app_id:
            raise RuntimeError("IndexWriter needs app_id outside a streaming query")
        # after the batch's offsets were fixed: see vectorlake.pipeline.index_query
        targets = resolve_targets(self.cfg)
        keys = batch.select("listing_id").distinct()
        counts = self.publish(spark, keys, batch_id, f"vectorlake-index-{app_id}", targets, measure_lag=True)
        if counts is not None:
            self.counts[batch_id] = IndexCounts(**{**counts.__dict__, "seconds": time.monotonic() - began})
            log.info("%s", self.counts[batch_id].line())
            # inside the batch, before its commit: a replay finds the row and keeps it (insert-only)
            batch_metrics.Recorder(self.cfg, batch_metrics.INDEX_STREAM).record(
                [batch_metrics.index_row(app_id, self.counts[batch_id], started_at)]
            )

    def publish(
        self,
        spark: SparkSession,
        keys: DataFrame,
        batch_id: int,
        app_id: str,
        targets: list[Target],
        served_only: bool = False,
        measure_lag: bool = False,
    ) -> IndexCounts | None:
        """Embed and write the current silver state of `keys` (listing_id) to every target.

        ``served_only`` writes only the listings that are served (a bulk load into a new generation has
        nothing to delete); otherwise listings that are not served are deleted. ``measure_lag`` adds the
        lag percentiles of the applied writes to the counts (one more small job over the write results).
        """
        read_at = time.time()  # the state is read (materialized) now: writes must follow within bounds
        current = read_current(spark, self.tables, keys, served_only)
        n_keys = current.count()
        if n_keys == 0:
            return None
        inputs = model_inputs(current, self.cfg)
        parallelism = max(1, spark.sparkContext.defaultParallelism)
        totals = dict.fromkeys(_OUTCOMES, 0)
        calls = ModelCalls()
        retries = spark.sparkContext.accumulator(0)
        embedded: list[stage.Embedded] = []
        writes: list[Callable[[], tuple[DataFrame, dict[str, int]]]] = []
        for target in targets:
            rows = embed_target(
                spark, self.cfg, self.tables, current, inputs, target, batch_id, parallelism, calls, embedded
            )
            spec = WriteSpec.for_target(self.cfg, target, retries, read_at)
            writes.append(partial(write_target, rows, spec, self.tables, app_id, batch_id, parallelism))
        # the cache and dead-letter MERGEs run beside the index writes: the writes need only the vectors
        _, *done = concurrently(spark, partial(stage.record, spark, self.tables, embedded), *writes)
        written: list[DataFrame] = []
        for results, tally in cast("list[tuple[DataFrame, dict[str, int]]]", done):
            written.append(results)
            for k, n in tally.items():
                action, outcome = k.split(":")
                totals["upserts" if action == "index" else "deletes"] += n
                totals[outcome] += n
        lag: dict[str, float | None] = dict.fromkeys(("lag_p50_s", "lag_p95_s", "lag_max_s"))
        if measure_lag and totals["applied"]:
            lag = _lag(written)
        return IndexCounts(
            batch_id=batch_id,
            listings=n_keys,
            text_model_calls=calls.text,
            image_model_calls=calls.image,
            image_failures=calls.failed,
            seconds=0.0,
            cache_hits=calls.hits,
            retries=int(retries.value),
            **lag,  # type: ignore[arg-type]
            **totals,
        )


def read_current(spark: SparkSession, tables: LakeTables, keys: DataFrame, served_only: bool) -> DataFrame:
    """The current silver/listings rows of `keys`, materialized once (every target reads them)."""
    current = (
        spark.read.format("delta")
        .load(tables.listings)
        .join(keys, "listing_id", "left_semi")
        .select(*_CURRENT)
    )
    if served_only:
        current = current.filter("served")
    return current.localCheckpoint(eager=True)


def model_inputs(current: DataFrame, cfg: Config) -> DataFrame:
    """(listing_id, text, primary_image_url) of the served rows: the text model input and the image URL."""
    return (
        current.filter("served")
        .select(
            "listing_id",
            stage.text_input_column(cfg.embed.text_attributes).alias("text"),
            "primary_image_url",
        )
        .localCheckpoint(eager=True)
    )


def embed_target(
    spark: SparkSession,
    cfg: Config,
    tables: LakeTables,
    current: DataFrame,
    inputs: DataFrame,
    target: Target,
    batch_id: int,
    parallelism: int,
    calls: ModelCalls,
    embedded: list[stage.Embedded],
) -> DataFrame:
    """`current` with the target's text and image vectors and their input hashes (null: none), counted;
    what is still to record is appended to `embedded` (`vectorlake.embed.stage.record`)."""
    from pyspark.sql import functions as F

    threads = max(1, (os.cpu_count() or 1) // parallelism)  # encoder threads per Spark task
    on_cluster = not spark.sparkContext.master.startswith("local")  # executors fetch models by URI
    vectors: dict[str, DataFrame] = {}
    roles: tuple[tuple[Literal["text", "image"], ModelRef, str], ...] = (
        ("text", target.text, "text"),
        ("image", target.image, "primary_image_url"),
    )
    for role, model, column in roles:
        source = inputs if role == "text" else inputs.filter(F.col(column).isNotNull())
        result = stage.embed(
            spark,
            source.select(
                "listing_id", F.sha2(column, 256).alias("content_hash"), F.col(column).alias("input")
            ),
            role,
            model,
            stage.EncoderSettings.from_config(cfg, model, threads, on_cluster=on_cluster),
            tables,
            batch_id,
            parallelism,
        )
        embedded.append(result)
        vectors[role], counts = result.vectors, result.counts
        if role == "text":
            calls.text += counts.model_calls
        else:
            calls.image += counts.model_calls
            calls.failed += counts.failed
        calls.hits += max(0, counts.needed - counts.model_calls)
    rows = current
    for role in ("text", "image"):
        rows = rows.join(
            vectors[role].select(
                "listing_id",
                F.col("content_hash").alias(f"{role}_hash"),
                F.col("vector").alias(f"{role}_vector"),
            ),
            "listing_id",
            "left",
        )
    return rows.drop("description", "primary_image_url")


def write_target(
    rows: DataFrame, spec: WriteSpec, tables: LakeTables, app_id: str, batch_id: int, parallelism: int
) -> tuple[DataFrame, dict[str, int]]:
    """Write `rows` to the target from the executors; log the results. Returns them with their tally
    (``"<action>:<outcome>"`` -> count)."""
    from pyspark.sql import functions as F

    index = spec.target.index
    results = (
        rows.repartition(parallelism)
        .mapInPandas(write_partition(spec), RESULT_SCHEMA)  # type: ignore[arg-type]
        .localCheckpoint(eager=True)  # the writes happen here, once
    )
    logged = results.withColumn("batch_id", F.lit(batch_id).cast("bigint"))
    txn_append(logged, tables.index_log, f"{app_id}-{index}", batch_id)
    tally = {
        r["k"]: int(r["n"])
        for r in results.groupBy(F.concat_ws(":", "action", "outcome").alias("k"))
        .count()
        .withColumnRenamed("count", "n")
        .collect()
    }
    if any(k.endswith(":rejected") for k in tally):
        rejected = logged.filter(F.col("outcome") == "rejected").select(
            "listing_id",
            "target",
            "index",
            "action",
            "version",
            "status",
            F.col("error").alias("reason"),
            "batch_id",
            F.col("indexed_at").alias("recorded_at"),
        )
        txn_append(rejected, tables.index_dead_letters, f"{app_id}-{index}", batch_id)
    return results, tally


def _lag(results: list[DataFrame]) -> dict[str, float | None]:
    """P50 / P95 / max of event_ts -> indexed_at over the applied writes in `results` (every target)."""
    from functools import reduce

    from pyspark.sql import functions as F

    lag_s = F.col("indexed_at").cast("double") - F.col("event_ts").cast("double")
    row = (
        reduce(lambda a, b: a.unionByName(b), results)
        .filter(F.col("outcome") == "applied")
        .agg(
            F.percentile(lag_s, 0.5).alias("p50"),
            F.percentile(lag_s, 0.95).alias("p95"),
            F.max(lag_s).alias("max"),
        )
        .first()
    )
    assert row is not None
    return {"lag_p50_s": row["p50"], "lag_p95_s": row["p95"], "lag_max_s": row["max"]}
