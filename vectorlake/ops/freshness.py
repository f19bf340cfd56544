"""Freshness: how long until a change is searchable, from ``gold/index_log``.

Two clocks, both ending at ``indexed_at`` (when the bulk write that made the state searchable was sent):

- ``event``: from the state's ``event_ts`` (the newest source event in it). This is the brief's measure,
  and it includes how late the event itself arrived.
- ``received``: from when vectorlake received that event (``received_at`` of the bronze listing or media
  event whose event time is the state's ``event_ts``). It is the pipeline's own share; events that a
  generator stamps with made-up past times can only be judged by this one.

Only applied index writes count; stale ones (a newer state was already there) do not.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Literal

from vectorlake.config import Config
from vectorlake.lake.tables import LakeTables

if TYPE_CHECKING:
    import pyarrow as pa

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


def lags(cfg: Config, basis: Basis, since: datetime | None = None) -> pa.Table:
    """(listing_id, version, indexed_at, lag_s) of every applied write (after `since`, if given).

    Read with delta-rs, without Spark: `vectorlake freshness` answers in about a second."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from vectorlake.control import open_dataset

    tables = LakeTables(cfg.lake.root)
    columns = ["listing_id", "version", "indexed_at", "event_ts"]
    opened = open_dataset(cfg, tables.index_log)
    if opened is None:
        return pa.table({"listing_id": pa.array([], pa.string()), "lag_s": pa.array([], pa.float64())})
    applied = ds.field("outcome") == "applied"
    if since is not None:
        applied = applied & (ds.field("indexed_at") >= pa.scalar(since, pa.timestamp("us", tz="UTC")))
    log = opened[1].to_table(columns=columns, filter=applied)
    if basis == "event":
        start = log.append_column("start", log["event_ts"]).drop_columns(["event_ts"])
    else:
        event_ms = pc.divide(_micros(log["event_ts"]), 1000)
        start = (
            log.drop_columns(["event_ts"])
            .append_column("event_ts_ms", event_ms)
            .join(
                _first_received(cfg, tables, log["listing_id"].unique()),
                ["listing_id", "event_ts_ms"],
                join_type="inner",
            )
        )
    seconds = pc.divide(
        pc.subtract(_micros(start["indexed_at"]), _micros(start["start"])).cast(pa.float64()), 1e6
    )
    return start.select(["listing_id", "version", "indexed_at"]).append_column("lag_s", seconds)


def _micros(column: pa.ChunkedArray) -> pa.ChunkedArray:
    import pyarrow as pa

    return column.cast(pa.timestamp("us", tz="UTC")).cast(pa.int64())


def _first_received(cfg: Config, tables: LakeTables, listing_ids: pa.Array) -> pa.Table:
    """(listing_id, event_ts_ms, start): when vectorlake first received each listing or media event time."""
    import pyarrow as pa
    import pyarrow.dataset as ds

    from vectorlake.control import open_dataset

    parts = []
    for kind in ("listing_changes", "media"):
        opened = open_dataset(cfg, tables.bronze(kind))
        if opened is None:
            continue
        part = opened[1].to_table(
            columns=["listing_id", "event_ts_ms", "received_at"],
            filter=ds.field("listing_id").isin(listing_ids),
        )
        parts.append(part.rename_columns(["listing_id", "event_ts_ms", "start"]))
    if not parts:
        return pa.table(
            {
                "listing_id": pa.array([], pa.string()),
                "event_ts_ms": pa.array([], pa.int64()),
                "start": pa.array([], pa.timestamp("us", tz="UTC")),
            }
        )
    received = pa.concat_tables(parts, promote_options="permissive")
    return (
        received.group_by(["listing_id", "event_ts_ms"])
        .aggregate([("start", "min")])
        .rename_columns(["listing_id", "event_ts_ms", "start"])
    )


def freshness(cfg: Config, basis: Basis = "event", since: datetime | None = None) -> Freshness:
    """P50 / P95 / max of the lag of applied index writes (after `since`, if given).

    Percentiles interpolate linearly between the closest ranks, as Spark's `percentile` does."""
    import numpy as np

    values = np.array([v for v in lags(cfg, basis, since)["lag_s"].to_pylist() if v is not None], dtype=float)
    if not len(values):
        return Freshness(basis, 0, None, None, None)
    p50, p95 = np.percentile(values, [50, 95])
    return Freshness(basis, len(values), float(p50), float(p95), float(values.max()))
