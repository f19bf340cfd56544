"""The control tables, read and written without Spark (delta-rs): small, and touched by short commands.

`vectorlake cutover` or an Airflow task records a generation's new state in a second, not after a JVM
start. The tables are plain Delta tables that Spark, dbt (DuckDB's delta plugin) and delta-rs all read.
Writes are MERGEs keyed by the table's key, retried when another writer committed first, so recording the
same fact twice leaves one row.

Paths: a local folder, or ``s3a://``/``s3://`` (delta-rs speaks ``s3://``; endpoint, region and, on the
local stack, credentials come from `vectorlake.s3.storage_options`; production sets a locking provider or
conditional puts for concurrent S3 writers, see the runbook).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vectorlake import s3
from vectorlake.config import Config
from vectorlake.lake.arrow import delta_rs_location
from vectorlake.lake.tables import (
    ERASURE_LOG_COLUMNS,
    ERASURE_REQUEST_COLUMNS,
    GENERATION_COLUMNS,
    QUALITY_BASELINE_COLUMNS,
    QUALITY_RESULT_COLUMNS,
    REINDEX_PROGRESS_COLUMNS,
    STREAM_FAILURE_COLUMNS,
    STREAM_METRIC_COLUMNS,
    LakeTables,
)

if TYPE_CHECKING:
    import pyarrow as pa
    import pyarrow.dataset as ds

log = logging.getLogger(__name__)

_COMMIT_RETRIES = 8


def _arrow_type(spark_type: str) -> pa.DataType:
    import pyarrow as pa

    simple = {
        "string": pa.string(),
        "int": pa.int32(),
        "bigint": pa.int64(),
        "double": pa.float64(),
        "boolean": pa.bool_(),
        "timestamp": pa.timestamp("us", tz="UTC"),
    }
    if spark_type in simple:
        return simple[spark_type]
    raise ValueError(f"no Arrow type for control-table column type {spark_type!r}")


def arrow_schema(columns: Mapping[str, str]) -> pa.Schema:
    import pyarrow as pa

    return pa.schema([pa.field(name, _arrow_type(t)) for name, t in columns.items()])


def location(cfg: Config, path: str) -> tuple[str, dict[str, str]]:
    """The URI delta-rs opens for a lake path, and its storage options."""
    uri, options = delta_rs_location(path, s3.storage_options(cfg))
    return uri, options or {}


def open_delta(cfg: Config, path: str) -> Any:
    """The Delta table at a lake path, opened with delta-rs; None when there is none yet."""
    from deltalake import DeltaTable
    from deltalake.exceptions import TableNotFoundError

    uri, options = location(cfg, path)
    try:
        return DeltaTable(uri, storage_options=options)
    except TableNotFoundError:
        return None


def open_dataset(cfg: Config, path: str) -> tuple[Any, ds.Dataset] | None:
    """The Delta table at a lake path and its current snapshot as a pyarrow dataset; None when none yet.

    Read through Arrow's native file systems (`vectorlake.lake.arrow`), never delta-rs' Python one.
    """
    from vectorlake.lake.arrow import dataset

    table = open_delta(cfg, path)
    if table is None:
        return None
    return table, dataset(table, location(cfg, path)[1])


def _by_columns(rows: Sequence[Mapping[str, Any]]) -> dict[tuple[str, ...], list[Mapping[str, Any]]]:
    """Rows grouped by the columns they name: one MERGE per group."""
    groups: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}
    for r in rows:
        groups.setdefault(tuple(sorted(r)), []).append(r)
    return groups


class ControlTable:
    """One control table: its columns, key, and where it lives."""

    def __init__(self, cfg: Config, path: str, columns: Mapping[str, str], key: Sequence[str]) -> None:
        self.uri, self.options = location(cfg, path)
        self.columns = dict(columns)
        self.key = tuple(key)

    def _table(self) -> Any:
        from deltalake import DeltaTable, write_deltalake
        from deltalake.exceptions import TableNotFoundError

        try:
            return DeltaTable(self.uri, storage_options=self.options)
        except TableNotFoundError:
            import pyarrow as pa

            empty = pa.Table.from_pylist([], schema=arrow_schema(self.columns))
            try:
                write_deltalake(self.uri, empty, mode="append", storage_options=self.options)
            except Exception:  # another process created it first
                log.debug("control table %s: creation raced", self.uri, exc_info=True)
            return DeltaTable(self.uri, storage_options=self.options)

    def rows(self) -> list[dict[str, Any]]:
        """Every row, as dicts (control tables are small)."""
        from vectorlake.lake.arrow import dataset

        rows: list[dict[str, Any]] = dataset(self._table(), self.options).to_table().to_pylist()
        return rows

    def upsert(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert ``rows``, or update the columns each names (only those) in the row with the same key."""
        for named, group in _by_columns(rows).items():
            self._merge(list(named), group)

    def insert_new(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Insert the rows whose key is not in the table yet; a row with a known key is left as it was."""
        for named, group in _by_columns(rows).items():
            self._merge(list(named), group, update=False)

    def _merge(self, named: list[str], rows: Sequence[Mapping[str, Any]], update: bool = True) -> None:
        import pyarrow as pa
        from deltalake.exceptions import CommitFailedError

        missing = [k for k in self.key if k not in named]
        if missing:
            raise ValueError(f"{self.uri}: rows must name the key columns {missing}")
        unknown = [c for c in named if c not in self.columns]
        if unknown:
            raise ValueError(f"{self.uri}: unknown columns {unknown}")
        schema = arrow_schema({c: self.columns[c] for c in named})
        source = pa.Table.from_pylist([{c: r[c] for c in named} for r in rows], schema=schema)
        on = " AND ".join(f't."{k}" = s."{k}"' for k in self.key)
        updates = {f'"{c}"': f's."{c}"' for c in named if c not in self.key} if update else {}
        for attempt in range(_COMMIT_RETRIES):
            merger = self._table().merge(source, on, source_alias="s", target_alias="t")
            if updates:
                merger = merger.when_matched_update(updates)
            try:
                merger.when_not_matched_insert({f'"{c}"': f's."{c}"' for c in named}).execute()
                return
            except CommitFailedError:
                if attempt == _COMMIT_RETRIES - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))  # another writer committed first: merge again on top


def generations_table(cfg: Config) -> ControlTable:
    return ControlTable(cfg, LakeTables(cfg.lake.root).index_generations, GENERATION_COLUMNS, ("index",))


def progress_table(cfg: Config) -> ControlTable:
    return ControlTable(
        cfg, LakeTables(cfg.lake.root).reindex_progress, REINDEX_PROGRESS_COLUMNS, ("index", "chunk")
    )


# A hashed subject whose later events ingest drops (vectorlake.ops.erasure): the requested subject itself,
# and for a seller each listing it ever named. No personal data: sha256 of "<type>:<id>" only.
TOMBSTONE_COLUMNS = {
    "subject_hash": "string",
    "subject_type": "string",  # seller | listing
    "request_id": "string",
    "recorded_at": "timestamp",
}


def requests_table(cfg: Config) -> ControlTable:
    return ControlTable(
        cfg, LakeTables(cfg.lake.root).erasure_requests, ERASURE_REQUEST_COLUMNS, ("request_id",)
    )


def erasure_log_table(cfg: Config) -> ControlTable:
    return ControlTable(
        cfg, LakeTables(cfg.lake.root).erasure_log, ERASURE_LOG_COLUMNS, ("request_id", "store")
    )


def tombstones_table(cfg: Config) -> ControlTable:
    return ControlTable(
        cfg, LakeTables(cfg.lake.root).erasure_tombstones, TOMBSTONE_COLUMNS, ("subject_hash",)
    )


def quality_results_table(cfg: Config) -> ControlTable:
    return ControlTable(
        cfg, LakeTables(cfg.lake.root).quality_results, QUALITY_RESULT_COLUMNS, ("run_id", "suite", "seq")
    )


def quality_baselines_table(cfg: Config) -> ControlTable:
    path = LakeTables(cfg.lake.root).quality_baselines
    return ControlTable(cfg, path, QUALITY_BASELINE_COLUMNS, ("model_version", "modality"))


def stream_failures_table(cfg: Config) -> ControlTable:
    """``ops/stream_failures``: one row per failure of a query the job restarts (insert-only)."""
    path = LakeTables(cfg.lake.root).stream_failures
    return ControlTable(cfg, path, STREAM_FAILURE_COLUMNS, ("stream", "query_id", "failed_at"))


def stream_metrics_table(cfg: Config) -> ControlTable:
    """``ops/stream_metrics`` (vectorlake.ops.metrics): rows are only ever inserted, once per key."""
    path = LakeTables(cfg.lake.root).stream_metrics
    return ControlTable(cfg, path, STREAM_METRIC_COLUMNS, ("stream", "query_id", "batch_id"))
