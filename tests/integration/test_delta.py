from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest


def test_delta_merge_through_the_session_builder(spark: Any, tmp_path: Path) -> None:
    from delta.tables import DeltaTable

    path = str(tmp_path / "listings")
    spark.createDataFrame(
        [("a", "red", 1), ("b", "blue", 1)], "id string, color string, version long"
    ).write.format("delta").save(path)
    updates = spark.createDataFrame(
        [("b", "green", 2), ("c", "black", 1), ("a", "stale", 0)], "id string, color string, version long"
    )
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(updates.alias("s"), "t.id = s.id")
        .whenMatchedUpdateAll(condition="s.version > t.version")  # an older state never overwrites a newer
        .whenNotMatchedInsertAll()
        .execute()
    )
    rows = sorted(tuple(r) for r in spark.read.format("delta").load(path).collect())
    assert rows == [("a", "red", 1), ("b", "green", 2), ("c", "black", 1)]
    last = DeltaTable.forPath(spark, path).history(1).collect()[0]
    assert last["operation"] == "MERGE"
    assert last["operationMetrics"]["numTargetRowsUpdated"] == "1"
    assert last["operationMetrics"]["numTargetRowsInserted"] == "1"


def test_ensure_tables_creates_what_spark_reads_as_its_own_schema(spark: Any, tmp_path: Path) -> None:
    """The tables are created with delta-rs; Spark must see exactly the declared column types, the change
    feed on silver/listings must work for a Spark MERGE, and a second call (or a racing one) is a no-op."""
    from concurrent.futures import ThreadPoolExecutor

    from delta.tables import DeltaTable
    from pyspark.sql.types import _parse_datatype_string

    from vectorlake.lake.tables import LakeTables, ensure_tables, schemas

    tables = LakeTables(str(tmp_path / "lake"))
    with ThreadPoolExecutor(2) as pool:  # two jobs starting on a new lake at once
        list(pool.map(lambda _: ensure_tables(spark, tables), range(2)))
    declared = schemas(tables)
    assert len(declared) == 20
    versions = {p: DeltaTable.forPath(spark, p).history().count() for p in declared}
    ensure_tables(spark, tables)
    for path, (columns, _) in declared.items():
        expected = _parse_datatype_string(
            "struct<" + ", ".join(f"`{c}`: {t}" for c, t in columns.items()) + ">"
        )
        assert spark.read.format("delta").load(path).schema == expected, path
        after = DeltaTable.forPath(spark, path).history().count()
        assert after == versions[path], f"{path}: an existing table is left as it was"

    listings = DeltaTable.forPath(spark, tables.listings)
    row = spark.createDataFrame([("l-1",)], "listing_id string")
    listings.alias("t").merge(row.alias("s"), "t.listing_id = s.listing_id").whenNotMatchedInsert(
        values={"listing_id": "s.listing_id"}
    ).execute()
    feed = spark.read.format("delta").option("readChangeFeed", "true").option("startingVersion", 1)
    changes = feed.load(tables.listings).select("listing_id", "_change_type").collect()
    assert [tuple(r) for r in changes] == [("l-1", "insert")]


def test_concurrent_steps_commit_each_table_once_and_raise_the_first_failure_after_all_ran(
    spark: Any, tmp_path: Path
) -> None:
    """What an ingest batch runs at once: txn appends to different tables from driver threads. Each step
    sees the caller's local properties, the results come back in order, a replayed step is skipped by
    Delta, and a failing step is raised only after the others committed."""
    from vectorlake.lake.tables import txn_append
    from vectorlake.spark import concurrently

    paths = [str(tmp_path / f"t{i}") for i in range(3)]
    rows = spark.createDataFrame([("a", 1), ("b", 2)], "k string, v long")
    sc = spark.sparkContext
    sc.setLocalProperty("vectorlake.test.caller", "batch-7")
    try:

        def append(path: str) -> str | None:
            txn_append(rows, path, "app", 7)
            caller: str | None = sc.getLocalProperty("vectorlake.test.caller")
            return caller

        seen = concurrently(spark, *[lambda p=p: append(p) for p in paths])
        assert seen == ["batch-7"] * 3
        concurrently(spark, *[lambda p=p: append(p) for p in paths])  # the replay: skipped by txnVersion
        for path in paths:
            assert sorted(tuple(r) for r in spark.read.format("delta").load(path).collect()) == [
                ("a", 1),
                ("b", 2),
            ]

        def fail() -> str:
            raise ValueError("step failed")

        late = str(tmp_path / "late")
        with pytest.raises(ValueError, match="step failed"):
            concurrently(spark, fail, lambda: append(late))
        assert spark.read.format("delta").load(late).count() == 2  # the other step ran to its commit
    finally:
        sc.setLocalProperty("vectorlake.test.caller", None)
