from __future__ import annotations

from pathlib import Path
from typing import Any


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
