"""vectorlake.warehouse without dbt runs: what it checks before running dbt and how it reports.

    .venv/bin/python -m pytest tests/unit/test_warehouse_runner.py -q

`empty_lake` and `warehouse_cfg` also serve tests/integration/test_warehouse_project.py.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
import yaml

from vectorlake import warehouse
from vectorlake.config import Config, load_config
from vectorlake.lake.tables import LakeTables, schemas


def _arrow_type(spark_type: str) -> Any:
    import pyarrow as pa

    simple = {
        "string": pa.string(),
        "int": pa.int32(),
        "bigint": pa.int64(),
        "boolean": pa.bool_(),
        "float": pa.float32(),
        "binary": pa.binary(),
        "timestamp": pa.timestamp("us", tz="UTC"),
    }
    if spark_type in simple:
        return simple[spark_type]
    if spark_type.startswith("array<"):
        return pa.list_(_arrow_type(spark_type[6:-1].strip()))
    if spark_type.startswith("map<"):
        key, value = (t.strip() for t in spark_type[4:-1].split(",", 1))
        return pa.map_(_arrow_type(key), _arrow_type(value))
    raise ValueError(spark_type)


def empty_lake(root: Path) -> LakeTables:
    """The tables dbt reads, empty, in their lake schemas."""
    import pyarrow as pa
    from deltalake import write_deltalake

    tables = LakeTables(str(root))
    wanted = set(warehouse.lake_sources(tables).values())
    for path, (columns, _) in schemas(tables).items():
        if path in wanted:
            schema = pa.schema([(c, _arrow_type(t)) for c, t in columns.items()])
            write_deltalake(path, pa.Table.from_pylist([], schema=schema))
    return tables


def warehouse_cfg(tmp: Path, **more: str) -> Config:
    env = dict(os.environ) | {
        "VECTORLAKE__LAKE__ROOT": str(tmp / "lake"),
        "VECTORLAKE__WAREHOUSE__DUCKDB_PATH": str(tmp / "wh" / "empty.duckdb"),
        "VECTORLAKE__WAREHOUSE__TARGET": "duckdb",
    }
    return load_config(environ=env | more)


def test_the_lake_sources_are_the_ones_dbt_reads() -> None:
    declared = set()
    for path in sorted((warehouse.DBT_PROJECT_DIR / "models" / "staging").glob("*/_*__sources.yml")):
        for source in yaml.safe_load(path.read_text())["sources"]:
            declared |= {f"{source['name']}.{t['name']}" for t in source["tables"]}
    assert declared == set(warehouse.lake_sources(LakeTables("/lake")))


def test_a_missing_lake_table_fails_before_dbt_with_the_fix(tmp_path: Path) -> None:
    tables = empty_lake(tmp_path / "lake")
    (Path(tables.erasure_log) / "_delta_log").rename(tmp_path / "moved")
    with pytest.raises(warehouse.WarehouseError, match=r"lake tables missing under .*: control/erasure_log;"):
        warehouse.build(warehouse_cfg(tmp_path))
    assert not (tmp_path / "wh").exists()  # nothing was run


def test_a_failed_build_names_the_failing_nodes(tmp_path: Path) -> None:
    results = tmp_path / "run_results.json"
    failed = [
        {"unique_id": "test.vectorlake.unique_fct_x_id.5e1f", "status": "fail", "message": "Got 2 results"},
        {"unique_id": "model.vectorlake.fct_y", "status": "error", "message": "Binder Error:\n  no column z"},
        {"unique_id": "model.vectorlake.fct_ok", "status": "success", "message": None},
    ]
    results.write_text(json.dumps({"results": failed}))
    line = warehouse._failure([], results)
    assert line == ("2 failed: test unique_fct_x_id (Got 2 results); model fct_y (Binder Error: no column z)")
    lines = ["12:00:01  Running with dbt=1.11", "12:00:02  Encountered an error:", "Compilation Error", ""]
    assert warehouse._failure(lines, tmp_path / "none.json") == "Encountered an error: Compilation Error"


def test_docs_are_served_only_once_generated(tmp_path: Path) -> None:
    cfg = warehouse_cfg(tmp_path)
    with pytest.raises(warehouse.WarehouseError, match="run `vectorlake warehouse docs` first"):
        warehouse.serve_docs(cfg, 18999)
