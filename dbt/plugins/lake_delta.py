"""dbt-duckdb plugin: copy a lake Delta table into DuckDB with the deltalake package.

dbt-duckdb's own ``delta`` plugin, plus what the lake needs: the table's path is built from the lake root
(``<lake_root>/<source schema>/<table>``, the layout of ``vectorlake.lake.tables``), ``s3a://`` roots are
read as ``s3://``, ``exclude_columns`` leaves columns behind (the vectors of gold/embeddings never enter
the warehouse), and a missing table fails with a message that says what to do. No DuckDB extension is
loaded, so nothing is downloaded. Source ``meta`` keys: ``lake_root`` (required unless
``delta_table_path`` is given), ``exclude_columns``, ``storage_options``; sources must say
``materialization: table`` (a view would point at an Arrow object that dies with the dbt process).
"""

from __future__ import annotations

from typing import Any

from dbt.adapters.duckdb.plugins import delta
from dbt.adapters.duckdb.utils import SourceConfig


def table_path(source_config: SourceConfig) -> str:
    """Where the source's Delta table lives."""
    if "delta_table_path" in source_config:
        path = str(source_config["delta_table_path"])
    else:
        root = str(source_config.get("lake_root") or "").rstrip("/")
        if not root:
            raise ValueError(f"source {source_config.table_name()}: meta lake_root is required")
        path = f"{root}/{source_config.schema}/{source_config.identifier}"
    return "s3://" + path.removeprefix("s3a://") if path.startswith("s3a://") else path


class Plugin(delta.Plugin):
    def load(self, source_config: SourceConfig) -> Any:
        from deltalake import DeltaTable
        from deltalake.exceptions import TableNotFoundError

        path = table_path(source_config)
        options = source_config.get("storage_options")
        try:
            table = DeltaTable(path, storage_options=options) if options else DeltaTable(path)
        except TableNotFoundError as e:
            raise RuntimeError(
                f"lake table {path} does not exist: is the lake root right? The streaming job creates "
                f"every lake table on its first run (vectorlake stream --once)"
            ) from e
        dataset = table.to_pyarrow_dataset()
        excluded = set(source_config.get("exclude_columns") or ())
        columns = [c for c in dataset.schema.names if c not in excluded]
        return dataset.scanner(columns=columns).to_reader()
