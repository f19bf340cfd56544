"""Freshness: how long until a change is searchable, from ``gold/index_log``.

Two clocks, both ending at ``indexed_at`` (when the bulk write that made the state searchable was sent):

- ``event``: from the state's ``event_ts`` (the newest source event in it). This is the brief's measure,
  and it includes how late the event itself arrived.
- ``received``: from when vectorlake received that event (``received_at`` of the bronze listing or media
  event whose event time is the state version). It is the pipeline's own share; events that a generator
  stamps with made-up past times can only be judged by this one.

Only applied index writes count; stale ones (a newer state was already there) do not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from vectorlake.lake.tables import LakeTables

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

Basis = Literal["event", "received"]


@dataclass(frozen=True)
class Freshness:
    basis: str
    writes: int
    p50_s: float | None
    p95_s: float | None
    max_s: float | None

    def line(self) -> str:
        if not self.writes:
            return f"{self.basis} -> indexed: no applied writes"
        return (
            f"{self.basis} -> indexed over {self.writes} writes: P50 {human(self.p50_s)}, "
            f"P95 {human(self.p95_s)}, max {human(self.max_s)}"
        )


def human(seconds: float | None) -> str:
    """A duration as people read it: seconds up to two minutes, then minutes, hours or days."""
    if seconds is None:
        return "-"
    for unit, size in (("d", 86_400.0), ("h", 3_600.0), ("min", 60.0)):
        if abs(seconds) >= 2 * size:
            return f"{seconds / size:.1f} {unit}"
    return f"{seconds:.1f} s"


def lags(spark: SparkSession, tables: LakeTables, basis: Basis, since: datetime | None = None) -> DataFrame:
    """(listing_id, version, indexed_at, lag_s) of every applied write (after `since`, if given)."""
    from pyspark.sql import functions as F

    log = spark.read.format("delta").load(tables.index_log).filter(F.col("outcome") == "applied")
    if since is not None:
        log = log.filter(F.col("indexed_at") >= F.lit(since))
    if basis == "event":
        start = log.select("listing_id", "version", "indexed_at", F.col("event_ts").alias("start"))
    else:
        received = None
        for kind in ("listing_changes", "media"):
            part = (
                spark.read.format("delta")
                .load(tables.bronze(kind))
                .select("listing_id", F.col("event_ts_ms").alias("version"), "received_at")
            )
            received = part if received is None else received.unionByName(part)
        assert received is not None
        first = received.groupBy("listing_id", "version").agg(F.min("received_at").alias("start"))
        start = log.select("listing_id", "version", "indexed_at").join(first, ["listing_id", "version"])
    return start.select(
        "listing_id",
        "version",
        "indexed_at",
        (F.col("indexed_at").cast("double") - F.col("start").cast("double")).alias("lag_s"),
    )


def freshness(
    spark: SparkSession, tables: LakeTables, basis: Basis = "event", since: datetime | None = None
) -> Freshness:
    """P50 / P95 / max of the lag of applied index writes (after `since`, if given)."""
    from pyspark.sql import functions as F

    row = (
        lags(spark, tables, basis, since)
        .agg(
            F.count("*").alias("n"),
            F.percentile("lag_s", 0.5).alias("p50"),
            F.percentile("lag_s", 0.95).alias("p95"),
            F.max("lag_s").alias("max"),
        )
        .first()
    )
    assert row is not None
    return Freshness(basis, int(row["n"]), row["p50"], row["p95"], row["max"])
