"""Where each lake table lives and what it looks like: ``<lake root>/<layer>/<table>``.

`ensure_tables` creates any missing table with its schema, so every reader and the first MERGE find it.
silver/listings has the change data feed on; the embedding stage reads it and writes the gold tables:
``gold/embeddings`` (the vector cache, one row per listing, modality, model version and content hash),
``gold/embed_dead_letters`` (images that could not be fetched or decoded), ``gold/index_log`` (every index
write with ``indexed_at``) and ``gold/index_dead_letters`` (documents OpenSearch rejected for good).
The control tables record what operators and jobs did: ``control/index_generations`` (one row per index
generation and its lifecycle), ``control/erasure_requests``, ``control/erasure_log``, and the data-quality
runs: ``control/quality_results`` (one row per expectation) and ``control/quality_baselines``.
``ops/stream_metrics`` holds one row of counts per micro-batch of each streaming query.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vectorlake import contracts
from vectorlake.lake import silver
from vectorlake.lake.arrow import delta_rs_location

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

_EVENT_TYPES = contracts.event_columns() | {"source": "string", "received_at": "timestamp"}


@dataclass(frozen=True)
class LakeTables:
    root: str

    def path(self, layer: str, name: str) -> str:
        return f"{self.root.rstrip('/')}/{layer}/{name}"

    def table(self, name: str) -> str:
        """The path of the table ``<layer>/<table>``."""
        layer, table = name.split("/")
        return self.path(layer, table)

    def name(self, path: str) -> str:
        """``<layer>/<table>`` of a table path under the root (the inverse of `path`)."""
        return path[len(self.root.rstrip("/")) + 1 :]

    def bronze(self, kind: str) -> str:
        return self.path("bronze", kind)

    @property
    def quarantine(self) -> str:
        return self.path("quarantine", "events")

    @property
    def listings(self) -> str:
        return self.path("silver", "listings")

    @property
    def listing_versions(self) -> str:
        return self.path("silver", "listing_versions")

    @property
    def media(self) -> str:
        return self.path("silver", "media")

    @property
    def seller_policy(self) -> str:
        return self.path("silver", "seller_policy")

    @property
    def embeddings(self) -> str:
        return self.path("gold", "embeddings")

    @property
    def embed_dead_letters(self) -> str:
        return self.path("gold", "embed_dead_letters")

    @property
    def index_log(self) -> str:
        return self.path("gold", "index_log")

    @property
    def index_dead_letters(self) -> str:
        return self.path("gold", "index_dead_letters")

    @property
    def index_generations(self) -> str:
        return self.path("control", "index_generations")

    @property
    def reindex_progress(self) -> str:
        return self.path("control", "reindex_progress")

    @property
    def erasure_requests(self) -> str:
        return self.path("control", "erasure_requests")

    @property
    def erasure_log(self) -> str:
        return self.path("control", "erasure_log")

    @property
    def erasure_tombstones(self) -> str:
        return self.path("control", "erasure_tombstones")

    @property
    def quality_results(self) -> str:
        return self.path("control", "quality_results")

    @property
    def quality_baselines(self) -> str:
        return self.path("control", "quality_baselines")

    @property
    def stream_metrics(self) -> str:
        return self.path("ops", "stream_metrics")

    @property
    def stream_failures(self) -> str:
        return self.path("ops", "stream_failures")


QUARANTINE_COLUMNS = {
    "kind": "string",
    "source": "string",
    "received_at": "timestamp",
    "reason": "string",
    "detail": "string",
    "payload": "binary",
    "payload_text": "string",
}
VERSION_COLUMNS = {c: silver.LISTING_COLUMNS[c] for c in (*silver.STATE_COLUMNS, "state_hash")} | {
    "batch_id": "bigint",
    "recorded_at": "timestamp",
}

EMBEDDING_COLUMNS = {
    "listing_id": "string",
    "modality": "string",  # text | image
    "model_version": "string",  # <registered model name>/<version>
    "content_hash": "string",  # sha256 of the exact model input (the text, or the image URL)
    "dim": "int",
    "vector": "array<float>",
    "embedded_at": "timestamp",
    "batch_id": "bigint",
}
EMBED_DEAD_LETTER_COLUMNS = {
    "listing_id": "string",
    "modality": "string",
    "model_version": "string",
    "content_hash": "string",
    "input": "string",  # the image URL
    "reason": "string",  # unsupported_scheme | not_found | fetch_failed | decode_failed
    "detail": "string",
    "batch_id": "bigint",
    "recorded_at": "timestamp",
}
INDEX_LOG_COLUMNS = {
    "listing_id": "string",
    "target": "string",  # the alias written through
    "index": "string",  # the physical index (generation) behind it
    "action": "string",  # index | delete
    "version": "bigint",  # the external version: the listing's state version
    "outcome": "string",  # applied | stale | rejected
    "status": "int",
    "error": "string",
    "text_model": "string",
    "image_model": "string",
    "text_hash": "string",
    "image_hash": "string",
    "event_ts": "timestamp",  # newest source event in the state written
    "indexed_at": "timestamp",
    "batch_id": "bigint",
}
INDEX_DEAD_LETTER_COLUMNS = {
    "listing_id": "string",
    "target": "string",
    "index": "string",
    "action": "string",
    "version": "bigint",
    "status": "int",
    "reason": "string",
    "batch_id": "bigint",
    "recorded_at": "timestamp",
}

GENERATION_COLUMNS = {
    "generation": "int",  # N of <alias>_g<N>
    "index": "string",  # the physical index
    "alias": "string",  # the read alias of its family (index.alias)
    "state": "string",  # building | live | retired | failed | deleted
    "text_model": "string",  # <registered model name>/<version>
    "image_model": "string",
    "text_dim": "int",
    "image_dim": "int",
    "validation": "string",  # passed | failed | null (not validated yet)
    "validation_run_id": "string",  # the mlflow run holding the gate's metrics and report
    "validation_report": "string",  # what failed, one line per check
    "created_at": "timestamp",
    "loaded_at": "timestamp",  # bulk load finished
    "validated_at": "timestamp",
    "live_at": "timestamp",  # last made live (cutover or rollback)
    "retired_at": "timestamp",  # last replaced as live
    "deleted_at": "timestamp",
    "updated_at": "timestamp",
}
REINDEX_PROGRESS_COLUMNS = {
    "index": "string",
    "chunk": "int",  # hash bucket of listing_id
    "chunks": "int",
    "listings": "bigint",
    "text_model_calls": "bigint",
    "image_model_calls": "bigint",
    "finished_at": "timestamp",
}
ERASURE_REQUEST_COLUMNS = {
    "request_id": "string",
    "subject_type": "string",  # seller | listing
    "subject_id": "string",  # cleared once the purge is verified
    "subject_hash": "string",  # sha256 of subject_type:subject_id
    "requested_at": "timestamp",
    "status": "string",  # pending -> erased (stores erased, history not yet vacuumed) -> done (verified)
    "finished_at": "timestamp",
}
ERASURE_LOG_COLUMNS = {
    "request_id": "string",
    "subject_type": "string",
    "subject_hash": "string",
    "store": "string",  # bronze/listing_changes, silver/listings, opensearch/listings_g2, s3, duckdb, ...
    "erased": "bigint",  # rows, documents or object versions removed
    "started_at": "timestamp",
    "finished_at": "timestamp",
}
# One row per expectation of each great-expectations suite run (vectorlake.ops.quality)
QUALITY_RESULT_COLUMNS = {
    "run_id": "string",  # one `vectorlake quality` run (the Airflow run id in the DAG)
    "suite": "string",  # the suite's name: expectations/<suite>.json
    "seq": "int",  # the expectation's place in its suite
    "expectation": "string",  # e.g. expect_column_values_to_be_in_set(locale)
    "status": "string",  # passed | failed | skipped
    "detail": "string",  # one line: what was unexpected, or why it was skipped
    "table": "string",  # the lake table checked, e.g. silver/listings
    "rows": "bigint",  # rows of the sample the suite ran on
    "checked_at": "timestamp",
}
# The embedding distribution a drift check compares with, per model version (`quality --write-baseline`)
QUALITY_BASELINE_COLUMNS = {
    "model_version": "string",  # <registered model name>/<version>
    "modality": "string",
    "dim": "int",
    "rows": "bigint",  # vectors the statistics were computed from
    "mean": "string",  # JSON list: the mean vector
    "mean_norm": "double",  # || mean vector ||
    "spread": "double",  # mean distance of a vector from the mean vector
    "written_at": "timestamp",
}

# One row per micro-batch with data of each streaming query (vectorlake.ops.metrics); counts only, no ids
STREAM_METRIC_COLUMNS = {
    "stream": "string",  # ingest_files | ingest_kafka | index
    "query_id": "string",  # the streaming query's id (kept in its checkpoint, so stable across restarts)
    "batch_id": "bigint",
    "started_at": "timestamp",
    "finished_at": "timestamp",
    "duration_s": "double",
    "rows": "bigint",  # ingest: records read from the source; index: listings the change feed touched
    "accepted": "bigint",
    "duplicates": "bigint",
    "quarantined": "bigint",
    "erased": "bigint",
    "model_calls": "bigint",  # text + image inputs sent to a model (cache misses)
    "cache_hits": "bigint",  # text + image vectors taken from gold/embeddings
    "index_writes": "bigint",  # applied writes (upserts and deletes) over every target generation
    "stale_writes": "bigint",
    "retries": "bigint",  # bulk retry rounds after 429 / 5xx / connection errors
    "embed_dead_letters": "bigint",
    "index_dead_letters": "bigint",
    "lag_p50_s": "double",  # event_ts -> indexed_at over the batch's applied writes
    "lag_p95_s": "double",
    "lag_max_s": "double",
    "recorded_at": "timestamp",
}


STREAM_FAILURE_COLUMNS = {
    "stream": "string",  # index (the query the job restarts; an ingest failure stops the job)
    "query_id": "string",  # the failed query's id; empty when it could not even start
    "failed_at": "timestamp",
    "in_a_row": "bigint",  # failures since the stream's last completed batch, this one included
    "restart_in_s": "double",  # the delay before the next start (sink.restart_delay_s, doubled per failure)
    "error": "string",  # one line: the exception's type and first line
    "recorded_at": "timestamp",
}


def schemas(tables: LakeTables) -> dict[str, tuple[dict[str, str], dict[str, str]]]:
    """path -> (columns, table properties) for every table the streams write."""
    out: dict[str, tuple[dict[str, str], dict[str, str]]] = {
        tables.bronze(kind): ({c: _EVENT_TYPES[c] for c in contracts.bronze_columns(kind)}, {})
        for kind in contracts.KINDS
    }
    out[tables.quarantine] = (QUARANTINE_COLUMNS, {})
    out[tables.listings] = (silver.LISTING_COLUMNS, {"delta.enableChangeDataFeed": "true"})
    out[tables.listing_versions] = (VERSION_COLUMNS, {})
    out[tables.media] = (silver.MEDIA_COLUMNS, {})
    out[tables.seller_policy] = (silver.POLICY_COLUMNS, {})
    out[tables.embeddings] = (EMBEDDING_COLUMNS, {})
    out[tables.embed_dead_letters] = (EMBED_DEAD_LETTER_COLUMNS, {})
    out[tables.index_log] = (INDEX_LOG_COLUMNS, {})
    out[tables.index_dead_letters] = (INDEX_DEAD_LETTER_COLUMNS, {})
    out[tables.index_generations] = (GENERATION_COLUMNS, {})
    out[tables.reindex_progress] = (REINDEX_PROGRESS_COLUMNS, {})
    out[tables.erasure_requests] = (ERASURE_REQUEST_COLUMNS, {})
    out[tables.erasure_log] = (ERASURE_LOG_COLUMNS, {})
    out[tables.quality_results] = (QUALITY_RESULT_COLUMNS, {})
    out[tables.quality_baselines] = (QUALITY_BASELINE_COLUMNS, {})
    out[tables.stream_metrics] = (STREAM_METRIC_COLUMNS, {})
    out[tables.stream_failures] = (STREAM_FAILURE_COLUMNS, {})
    return out


def ensure_tables(
    spark: SparkSession, tables: LakeTables, storage_options: Mapping[str, str] | None = None
) -> None:
    """Create every table that does not exist yet (idempotent; safe when two jobs start at once).

    The tables are created with delta-rs: a few milliseconds each, where Spark's ``createIfNotExists``
    planned a command per table (19 tables: about 25 s on a new lake and 2 s on an existing one, paid at
    every stream, backfill, reindex and purge start). Spark parses the column types and pyspark's Arrow
    mapping converts them, so Spark reads back exactly the schema it would have created
    (tests/integration/test_delta.py). ``storage_options``: delta-rs options for an ``s3a://`` lake.
    """
    from deltalake import DeltaTable
    from pyspark.sql.pandas.types import to_arrow_schema
    from pyspark.sql.types import StructType, _parse_datatype_string

    for path, (columns, properties) in schemas(tables).items():
        uri, options = delta_rs_location(path, storage_options)
        if DeltaTable.is_deltatable(uri, storage_options=options):
            continue
        schema = _parse_datatype_string(
            "struct<" + ", ".join(f"`{c}`: {t}" for c, t in columns.items()) + ">"
        )
        assert isinstance(schema, StructType)
        arrow = to_arrow_schema(schema, timezone="UTC")  # timestamps are Delta's `timestamp` (UTC)
        try:
            DeltaTable.create(
                uri, arrow, mode="ignore", configuration=dict(properties) or None, storage_options=options
            )
        except Exception:  # another job created it between the check and the commit
            if not DeltaTable.is_deltatable(uri, storage_options=options):
                raise


def txn_append(df: DataFrame, path: str, app_id: str, batch_id: int) -> None:
    """Append `df` to the Delta table at `path` once per (app_id, batch_id): a replayed batch is skipped."""
    (
        df.write.format("delta")
        .mode("append")
        .option("txnAppId", app_id)
        .option("txnVersion", str(batch_id))
        .save(path)
    )
