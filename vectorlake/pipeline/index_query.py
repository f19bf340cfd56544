"""The embed + index streaming query: silver/listings change feed -> vectors -> OpenSearch.

One query, named ``vectorlake_index``, checkpointed at ``<checkpoint root>/index``; its ``foreachBatch``
is `vectorlake.pipeline.publish.IndexWriter`. Each micro-batch:

1. resolves its targets (`vectorlake.pipeline.targets`): the generation behind each family alias
   (``index.alias`` = live, ``<alias>_next`` = building, ``<alias>_prev`` = the rollback target), each
   with the model versions in its ``_meta``; this happens after the batch's change-feed offsets are fixed,
   so a change committed after a new generation appeared is written to it by this or a later batch, and
   one committed before is in the silver state the reindex of that generation reads;
2. takes the listing ids the change feed touched and reads their *current* silver rows (a replay, or a
   batch that lags behind silver, therefore writes the newest state, and the index converges);
3. for the served ones builds the text model input and the image input (the primary image URL), and gets
   each target's vectors from `vectorlake.embed.stage.embed` with that target's models (cache hits
   reused, misses embedded once);
4. writes every touched key to every target: served listings as documents, the others (deleted,
   suppressed) as deletes, all with ``version_type=external_gte`` and the state version, from the
   executors (``mapInPandas``, `vectorlake.pipeline.documents`). Each target's writes go to the index its
   alias named at step 1: a cutover moves the aliases between generations, and a generation must only
   ever get its own model's vectors (writing through the alias during a cutover would put one model's
   vectors into the other's index);
5. appends the write results to ``gold/index_log`` and the rejected ones to ``gold/index_dead_letters``
   (txn appends keyed by the query id, the generation and the batch id).

If OpenSearch keeps failing after the sink's retries (or a target generation was deleted meanwhile), the
batch raises `IndexUnavailable` and the query stops; `vectorlake.pipeline.stream` restarts it from its
checkpoint, which replays the batch against freshly resolved targets.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from vectorlake import s3
from vectorlake.config import Config
from vectorlake.lake.tables import LakeTables, ensure_tables
from vectorlake.pipeline.publish import IndexWriter
from vectorlake.pipeline.supervise import check_interval
from vectorlake.pipeline.targets import resolve_targets

if TYPE_CHECKING:
    from pyspark.sql import SparkSession
    from pyspark.sql.streaming import StreamingQuery

QUERY_NAME = "vectorlake_index"


def checkpoint_path(cfg: Config) -> str:
    return f"{cfg.checkpoint_root.rstrip('/')}/index"


def start(spark: SparkSession, cfg: Config, once: bool) -> tuple[StreamingQuery, IndexWriter]:
    """Start the index query over the silver change feed (tables and the live generation are created)."""
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
