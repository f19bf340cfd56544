"""The embed + index streaming query: silver/listings change feed -> vectors -> OpenSearch.

One query, named ``vectorlake_index``, checkpointed at ``<checkpoint root>/index``. Each micro-batch:

1. resolves its targets: the generation behind each family alias (``index.alias`` = live, ``<alias>_next``
   = building, ``<alias>_prev`` = the rollback target), each with the model versions in its ``_meta``;
   this happens after the batch's change-feed offsets are fixed, so a change committed after a new
   generation appeared is written to it by this or a later batch, and one committed before is in the
   silver state the reindex of that generation reads;
2. takes the listing ids the change feed touched and reads their *current* silver rows (a replay, or a
   batch that lags behind silver, therefore writes the newest state, and the index converges);
3. for the served ones builds the text model input and the image input (the primary image URL), and gets
   each target's vectors from `vectorlake.embed.stage.embed` with that target's models (cache hits
   reused, misses embedded once);
4. writes every touched key to every target: served listings as documents, the others (deleted,
   suppressed) as deletes, all with ``version_type=external_gte`` and the state version, from the
   executors (``mapInPandas``). Each target's writes go to the index its alias named at step 1: a cutover
   moves the aliases between generations, and a generation must only ever get its own model's vectors
   (writing through the alias during a cutover would put one model's vectors into the other's index);
5. appends the write results to ``gold/index_log`` and the rejected ones to ``gold/index_dead_letters``
   (txn appends keyed by the query id, the generation and the batch id).

If OpenSearch keeps failing after the sink's retries (or a target generation was deleted meanwhile), the
batch raises `IndexUnavailable` and the query stops; `vectorlake.pipeline` restarts it from its checkpoint,
which replays the batch against freshly resolved targets.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from vectorlake import s3
from vectorlake.config import Config, OpenSearchConfig, SinkConfig
from vectorlake.embed import stage
from vectorlake.embed.registry import ModelRef
from vectorlake.lake.ingest import txn_append
from vectorlake.lake.tables import INDEX_LOG_COLUMNS, LakeTables

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

log = logging.getLogger(__name__)

QUERY_NAME = "vectorlake_index"


def checkpoint_path(cfg: Config) -> str:
    return f"{cfg.checkpoint_root.rstrip('/')}/index"


@dataclass(frozen=True)
class Target:
    """A generation the stream writes to: reached through `alias`, embedded with its own models."""

    alias: str  # the family alias it was resolved through (recorded in the index log)
    index: str  # the generation written
    text: ModelRef
    image: ModelRef
    image_dim: int


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


_RESULT_SCHEMA = ", ".join(f"`{c}` {t}" for c, t in INDEX_LOG_COLUMNS.items() if c not in ("batch_id",))


@dataclass(frozen=True)
class _WriteSpec:
    """What the executors need to write one target: plain values, so it pickles."""

    opensearch: OpenSearchConfig
    hosts: tuple[str, ...]
    sink: SinkConfig
    target: Target
    text_weight: float
    image_weight: float
    image_dim: int
    retries: Any = None  # a Spark accumulator counting the sink's retry rounds


_CLIENTS: dict[tuple[Any, ...], Any] = {}


def _client(spec: _WriteSpec) -> Any:
    """One OpenSearch client per worker process and cluster."""
    from vectorlake.index.client import client_for

    key = (spec.opensearch, spec.hosts)
    if key not in _CLIENTS:
        _CLIENTS[key] = client_for(spec.opensearch, spec.hosts)
    return _CLIENTS[key]


def _write_partition(spec: _WriteSpec) -> Any:
    def write(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import numpy as np
        import pandas as pd

        from vectorlake.embed.modelinput import fuse
        from vectorlake.index import sink

        client = _client(spec)

        def sleep(seconds: float) -> None:  # the sink sleeps once before each retry round
            if spec.retries is not None:
                spec.retries.add(1)
            time.sleep(seconds)

        for frame in frames:
            if frame.empty:
                continue
            indexed_at = pd.Timestamp.now(tz="UTC")
            actions: list[sink.Upsert | sink.Delete] = []
            for row in frame.itertuples(index=False):
                version = int(row.version)
                if not row.served or row.text_vector is None:
                    actions.append(sink.Delete(row.listing_id, version))
                    continue
                text = np.asarray(row.text_vector, dtype=np.float32)
                image = None if row.image_vector is None else np.asarray(row.image_vector, dtype=np.float32)
                doc: dict[str, Any] = {
                    "listing_id": row.listing_id,
                    "version": version,
                    "seller_id": row.seller_id,
                    "title": row.title,
                    "category_id": row.category_id,
                    "category_path": row.category_path,
                    "locale": row.locale,
                    "attributes": _attributes(row.attributes),
                    "image_id": row.primary_image_id if image is not None else None,
                    "policy_status": row.policy_status,
                    "event_ts": _millis(row.event_ts),
                    "indexed_at": int(indexed_at.value // 1_000_000),
                    "text_model": spec.target.text.label,
                    "image_model": spec.target.image.label if image is not None else None,
                    "text_vector": text.tolist(),
                    "fused_vector": fuse(
                        text, image, spec.image_dim, spec.text_weight, spec.image_weight
                    ).tolist(),
                }
                if image is not None:
                    doc["image_vector"] = image.tolist()
                actions.append(
                    sink.Upsert(row.listing_id, version, {k: v for k, v in doc.items() if v is not None})
                )
            results = sink.write(
                client, spec.target.index, actions, spec.sink, sleep=sleep, require_alias=False
            )
            by_id = {r.listing_id: r for r in frame.itertuples(index=False)}
            out = []
            for r in results:
                src = by_id[r.listing_id]
                upsert = r.action == "index"
                out.append(
                    {
                        "listing_id": r.listing_id,
                        "target": spec.target.alias,
                        "index": spec.target.index,
                        "action": r.action,
                        "version": r.version,
                        "outcome": r.outcome,
                        "status": r.status,
                        "error": r.error,
                        "text_model": spec.target.text.label if upsert else None,
                        "image_model": spec.target.image.label
                        if upsert and src.image_vector is not None
                        else None,
                        "text_hash": src.text_hash if upsert else None,
                        "image_hash": src.image_hash if upsert and src.image_vector is not None else None,
                        "event_ts": src.event_ts,
                        "indexed_at": indexed_at,
                    }
                )
            yield pd.DataFrame(out, columns=[c for c in INDEX_LOG_COLUMNS if c != "batch_id"])

    return write


def _attributes(value: object) -> dict[str, str]:
    if value is None:
        return {}
    items: Any = value.items() if isinstance(value, Mapping) else value
    return {str(k): str(v) for k, v in items if v is not None}


def _millis(ts: object) -> int | None:
    import pandas as pd

    if ts is None or ts is pd.NaT:
        return None
    return int(pd.Timestamp(ts).value // 1_000_000)  # type: ignore[arg-type]


@dataclass
class IndexWriter:
    """The ``foreachBatch`` function of the index query (also usable on a static DataFrame of ids)."""

    cfg: Config
    tables: LakeTables
    app_id: str | None = None
    counts: dict[int, IndexCounts] = field(default_factory=dict)

    def __call__(self, batch: DataFrame, batch_id: int) -> None:
        from datetime import UTC, datetime

        from vectorlake.ops import metrics

        began = time.monotonic()
        started_at = datetime.now(UTC)
        spark = batch.sparkSession
        app_id = self.app_id or spark.sparkContext.getLocalProperty("sql.streaming.queryId")
        if not app_id:
            raise RuntimeError("IndexWriter needs app_id outside a streaming query")
        targets = resolve_targets(self.cfg)  # after the batch's offsets were fixed: see the module doc
        keys = batch.select("listing_id").distinct()
        counts = self.publish(spark, keys, batch_id, f"vectorlake-index-{app_id}", targets, measure_lag=True)
        if counts is not None:
            self.counts[batch_id] = IndexCounts(**{**counts.__dict__, "seconds": time.monotonic() - began})
            log.info("%s", self.counts[batch_id].line())
            # inside the batch, before its commit: a replay finds the row and keeps it (insert-only)
            metrics.Recorder(self.cfg, metrics.INDEX_STREAM).record(
                [metrics.index_row(app_id, self.counts[batch_id], started_at)]
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
        from pyspark.sql import functions as F

        current = (
            spark.read.format("delta")
            .load(self.tables.listings)
            .join(keys, "listing_id", "left_semi")
            .select(
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
        )
        if served_only:
            current = current.filter("served")
        current = current.localCheckpoint(eager=True)
        n_keys = current.count()
        if n_keys == 0:
            return None
        served = current.filter("served")
        inputs = served.select(
            "listing_id",
            stage.text_input_column(self.cfg.embed.text_attributes).alias("text"),
            "primary_image_url",
        ).localCheckpoint(eager=True)
        parallelism = max(1, spark.sparkContext.defaultParallelism)
        threads = max(1, (os.cpu_count() or 1) // parallelism)
        totals = {"upserts": 0, "deletes": 0, "applied": 0, "stale": 0, "rejected": 0}
        calls = {"text": 0, "image": 0, "failed": 0, "hits": 0}
        retries = spark.sparkContext.accumulator(0)
        written: list[DataFrame] = []
        for target in targets:
            text_vectors, text_counts = stage.embed(
                spark,
                inputs.select(
                    "listing_id", F.sha2("text", 256).alias("content_hash"), F.col("text").alias("input")
                ),
                "text",
                target.text,
                stage.EncoderSettings.from_config(self.cfg, target.text, threads),
                self.tables,
                batch_id,
                parallelism,
            )
            image_vectors, image_counts = stage.embed(
                spark,
                inputs.filter(F.col("primary_image_url").isNotNull()).select(
                    "listing_id",
                    F.sha2("primary_image_url", 256).alias("content_hash"),
                    F.col("primary_image_url").alias("input"),
                ),
                "image",
                target.image,
                stage.EncoderSettings.from_config(self.cfg, target.image, threads),
                self.tables,
                batch_id,
                parallelism,
            )
            calls["text"] += text_counts.model_calls
            calls["image"] += image_counts.model_calls
            calls["failed"] += image_counts.failed
            calls["hits"] += sum(max(0, c.needed - c.model_calls) for c in (text_counts, image_counts))
            rows = (
                current.join(
                    text_vectors.select(
                        "listing_id",
                        F.col("content_hash").alias("text_hash"),
                        F.col("vector").alias("text_vector"),
                    ),
                    "listing_id",
                    "left",
                )
                .join(
                    image_vectors.select(
                        "listing_id",
                        F.col("content_hash").alias("image_hash"),
                        F.col("vector").alias("image_vector"),
                    ),
                    "listing_id",
                    "left",
                )
                .drop("description", "primary_image_url")
            )
            spec = _WriteSpec(
                opensearch=self.cfg.opensearch,
                hosts=self.cfg.opensearch_hosts,
                sink=self.cfg.sink,
                target=target,
                text_weight=self.cfg.embed.fusion.text_weight,
                image_weight=self.cfg.embed.fusion.image_weight,
                image_dim=target.image_dim,
                retries=retries,
            )
            results = (
                rows.repartition(parallelism)
                .mapInPandas(_write_partition(spec), _RESULT_SCHEMA)  # type: ignore[arg-type]
                .localCheckpoint(eager=True)  # the writes happen here, once
            )
            written.append(results)
            logged = results.withColumn("batch_id", F.lit(batch_id).cast("bigint"))
            txn_append(logged, self.tables.index_log, f"{app_id}-{target.index}", batch_id)
            rejected = logged.filter(F.col("outcome") == "rejected")
            tally = {
                r["k"]: int(r["n"])
                for r in results.groupBy(F.concat_ws(":", "action", "outcome").alias("k"))
                .count()
                .withColumnRenamed("count", "n")
                .collect()
            }
            if any(k.endswith(":rejected") for k in tally):
                txn_append(
                    rejected.select(
                        "listing_id",
                        "target",
                        "index",
                        "action",
                        "version",
                        "status",
                        F.col("error").alias("reason"),
                        "batch_id",
                        F.col("indexed_at").alias("recorded_at"),
                    ),
                    self.tables.index_dead_letters,
                    f"{app_id}-{target.index}",
                    batch_id,
                )
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
            text_model_calls=calls["text"],
            image_model_calls=calls["image"],
            image_failures=calls["failed"],
            seconds=0.0,
            cache_hits=calls["hits"],
            retries=int(retries.value),
            lag_p50_s=lag["lag_p50_s"],
            lag_p95_s=lag["lag_p95_s"],
            lag_max_s=lag["lag_max_s"],
            **totals,
        )


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


_REFS: dict[tuple[str, str, str], ModelRef] = {}


def model_ref(cfg: Config, role: str, version: str) -> ModelRef:
    """A registered model version, resolved once per process (a version's files never change)."""
    from vectorlake.embed import registry

    key = (cfg.mlflow_tracking_uri, role, version)
    if key not in _REFS:
        _REFS[key] = registry.resolve(cfg, role, version)
    return _REFS[key]


def _dim(ref: ModelRef) -> int:
    from vectorlake.embed.encoders import model_dim

    return model_dim(ref.role, ref.path)


def target_for(cfg: Config, client: Any, alias: str, index: str) -> Target:
    """The target for generation `index` (reached through `alias`), with the models its ``_meta`` names."""
    from vectorlake.index import generations

    meta = generations.generation_meta(client, index)
    text = model_ref(cfg, "text", generations.model_version(meta, "text"))
    image = model_ref(cfg, "image", generations.model_version(meta, "image"))
    dim = meta.get("image_dim")  # recorded at creation; older generations: read from the model
    return Target(alias, index, text, image, dim if isinstance(dim, int) else _dim(image))


def resolve_targets(cfg: Config) -> list[Target]:
    """The generations to write: live, building and rollback target; the live one is created if none."""
    from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
    from opensearchpy.exceptions import TransportError

    from vectorlake.errors import IndexUnavailable
    from vectorlake.index.client import make_client

    client = make_client(cfg)
    try:
        return _resolve(cfg, client)
    except (OpenSearchConnectionError, TransportError) as e:
        raise IndexUnavailable(
            f"OpenSearch at {', '.join(cfg.opensearch_hosts)} is not reachable: {e}"
        ) from e
    finally:
        client.close()


def generation_meta_for(text: ModelRef, image: ModelRef, cfg: Config) -> dict[str, Any]:
    """The ``_meta`` of a new generation embedded with `text` and `image`."""
    return {
        "text_model": text.label,
        "image_model": image.label,
        "text_dim": _dim(text),
        "image_dim": _dim(image),
        "fusion": {
            "text_weight": cfg.embed.fusion.text_weight,
            "image_weight": cfg.embed.fusion.image_weight,
        },
    }


def _resolve(cfg: Config, client: Any) -> list[Target]:
    from vectorlake.embed import registry
    from vectorlake.index import generations

    found = generations.alias_map(client, cfg.index)
    if "live" not in found:
        text = registry.resolve(cfg, "text")
        image = registry.resolve(cfg, "image")
        meta = generation_meta_for(text, image, cfg)
        index = generations.ensure_live_generation(client, cfg, meta["text_dim"], meta["image_dim"], meta)
        _record_first(cfg, index, meta)
        found["live"] = index
    aliases = generations.family(cfg.index)
    targets: dict[str, Target] = {}
    for role in ("live", "next", "prev"):
        behind = found.get(role)
        if behind is not None and behind not in targets:
            targets[behind] = target_for(cfg, client, aliases[role], behind)
    return list(targets.values())


def _record_first(cfg: Config, index: str, meta: Mapping[str, Any]) -> None:
    """Record a generation the stream created itself (no reindex: the first one) as live."""
    from datetime import UTC, datetime

    from vectorlake import control
    from vectorlake.index.generations import generation_number

    table = control.generations_table(cfg)
    if any(r["index"] == index for r in table.rows()):
        return
    now = datetime.now(UTC)
    table.upsert(
        [
            {
                "index": index,
                "generation": generation_number(cfg.index.alias, index),
                "alias": cfg.index.alias,
                "state": "live",
                "text_model": meta["text_model"],
                "image_model": meta["image_model"],
                "text_dim": meta["text_dim"],
                "image_dim": meta["image_dim"],
                "created_at": now,
                "live_at": now,
                "updated_at": now,
            }
        ]
    )


def start(spark: SparkSession, cfg: Config, once: bool) -> tuple[StreamingQuery, IndexWriter]:
    """Start the index query over the silver change feed (tables and the live generation are created)."""
    from vectorlake.lake.stream import check_interval
    from vectorlake.lake.tables import ensure_tables

    interval = check_interval("embed.trigger_interval", cfg.embed.trigger_interval)
    tables = LakeTables(cfg.lake.root)
    ensure_tables(spark, tables, s3.storage_options(cfg))
    resolve_targets(cfg)  # fail now, not in the first batch, when OpenSearch or the models are missing
    writer = IndexWriter(cfg, tables)
    reader = spark.readStream.format("delta").option("readChangeFeed", "true")
    if cfg.embed.max_files_per_trigger:
        reader = reader.option("maxFilesPerTrigger", str(cfg.embed.max_files_per_trigger))
    changes = reader.load(tables.listings).filter("_change_type != 'update_preimage'").select("listing_id")
    stream = (
        changes.writeStream.queryName(QUERY_NAME)
        .option("checkpointLocation", checkpoint_path(cfg))
        .foreachBatch(writer)
    )
    stream = stream.trigger(availableNow=True) if once else stream.trigger(processingTime=interval)
    return stream.start(), writer
