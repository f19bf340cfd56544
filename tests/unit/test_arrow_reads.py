"""Lake reads without Spark: delta-rs tables through Arrow's native file systems, freshness and dead-letter
counts computed from them. Tables are written here with delta-rs into a temp lake (no servers)."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.fs as pa_fs
import pytest
from deltalake import DeltaTable, write_deltalake

from vectorlake.config import Config, load_config
from vectorlake.lake import arrow
from vectorlake.lake.tables import LakeTables
from vectorlake.ops import backfill, freshness

T0 = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)


def _ts(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def _ms(seconds: float) -> int:
    return int(_ts(seconds).timestamp() * 1000)


@pytest.fixture
def lake_cfg(tmp_path: Path) -> Config:
    return load_config(environ={"VECTORLAKE__LAKE__ROOT": str(tmp_path / "lake")})


def test_local_paths_and_file_uris_get_a_native_local_file_system(tmp_path: Path) -> None:
    for uri in (str(tmp_path / "t"), f"file://{tmp_path}/t/"):
        fs = arrow.filesystem(uri)
        assert isinstance(fs, pa_fs.SubTreeFileSystem)
        assert isinstance(fs.base_fs, pa_fs.LocalFileSystem)
        assert fs.base_path.rstrip("/") == str(tmp_path / "t")


def test_s3_uris_get_arrow_s3_with_the_storage_options() -> None:
    options = {
        "AWS_REGION": "eu-west-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:5001",
        "AWS_ACCESS_KEY_ID": "k",
        "AWS_SECRET_ACCESS_KEY": "s",
    }
    fs = arrow.filesystem("s3://bucket/lake/silver/listings/", options)
    assert isinstance(fs, pa_fs.SubTreeFileSystem) and isinstance(fs.base_fs, pa_fs.S3FileSystem)
    assert fs.base_path.rstrip("/") == "bucket/lake/silver/listings"
    assert fs.base_fs.region == "eu-west-1"
    with pytest.raises(ValueError, match="no native Arrow file system"):
        arrow.filesystem("gs://bucket/t")


def test_a_dataset_reads_the_current_snapshot(tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    write_deltalake(uri, pa.table({"k": ["a", "b"], "v": [1, 2]}))
    write_deltalake(uri, pa.table({"k": ["c"], "v": [3]}), mode="overwrite")
    rows = arrow.dataset(DeltaTable(uri)).to_table().to_pylist()
    assert rows == [{"k": "c", "v": 3}]  # the latest version only, not every file in the folder


def test_reading_a_table_and_exiting_never_aborts(tmp_path: Path) -> None:
    """The abort this reader fixes needs a process exit right after a read; repeat it a few times."""
    uri = str(tmp_path / "t")
    write_deltalake(uri, pa.table({"k": [f"k{i}" for i in range(2000)], "v": list(range(2000))}))
    code = (
        "import sys; from deltalake import DeltaTable; from vectorlake.lake import arrow; "
        f"print(arrow.dataset(DeltaTable({uri!r})).to_table().num_rows)"
    )
    for _ in range(8):
        done = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ)
        )
        assert (done.returncode, done.stdout.strip()) == (0, "2000"), done.stderr[-500:]


def _index_log(cfg: Config, rows: list[tuple[str, int, float, str]]) -> None:
    """rows: (listing_id, event time seconds, indexed_at seconds, outcome). The version is a sum of register
    keys, not an event time: freshness must go by ``event_ts``."""
    table = pa.table(
        {
            "listing_id": [r[0] for r in rows],
            "version": pa.array([3 * _ms(r[1]) + 7 for r in rows], pa.int64()),
            "event_ts": pa.array([_ts(r[1]) for r in rows], pa.timestamp("us", tz="UTC")),
            "indexed_at": pa.array([_ts(r[2]) for r in rows], pa.timestamp("us", tz="UTC")),
            "outcome": [r[3] for r in rows],
        }
    )
    write_deltalake(LakeTables(cfg.lake.root).index_log, table)


def _bronze(cfg: Config, kind: str, rows: list[tuple[str, int, float]]) -> None:
    """rows: (listing_id, event time seconds, received_at seconds)."""
    table = pa.table(
        {
            "listing_id": [r[0] for r in rows],
            "event_ts_ms": pa.array([_ms(r[1]) for r in rows], pa.int64()),
            "received_at": pa.array([_ts(r[2]) for r in rows], pa.timestamp("us", tz="UTC")),
        }
    )
    write_deltalake(LakeTables(cfg.lake.root).bronze(kind), table)


def test_freshness_from_event_time_and_from_receipt(lake_cfg: Config) -> None:
    _index_log(
        lake_cfg,
        [
            ("l-1", 0, 10, "applied"),
            ("l-2", 0, 20, "applied"),
            ("l-3", 100, 130, "applied"),
            ("l-4", 0, 999, "stale"),  # not counted: a newer state was already there
        ],
    )
    _bronze(lake_cfg, "listing_changes", [("l-1", 0, 4), ("l-1", 0, 6), ("l-2", 0, 5), ("l-9", 0, 1)])
    _bronze(lake_cfg, "media", [("l-3", 100, 120)])
    event = freshness.freshness(lake_cfg, "event")
    assert (event.writes, event.p50_s, event.max_s) == (3, 20.0, 30.0)
    assert event.p95_s == pytest.approx(29.0)  # linear between the closest ranks, as Spark's percentile
    received = freshness.freshness(lake_cfg, "received")  # from the first receipt of that event time
    assert sorted(freshness.lags(lake_cfg, "received")["lag_s"].to_pylist()) == [6.0, 10.0, 15.0]
    assert (received.writes, received.p50_s, received.max_s) == (3, 10.0, 15.0)
    since = freshness.freshness(lake_cfg, "event", since=_ts(15))
    assert (since.writes, since.max_s) == (2, 30.0)


def test_freshness_of_an_empty_lake(lake_cfg: Config) -> None:
    for basis in ("event", "received"):
        assert freshness.freshness(lake_cfg, basis).line() == f"{basis} -> indexed: no applied writes"  # type: ignore[arg-type]


def test_dead_letters_are_counted_without_spark(lake_cfg: Config) -> None:
    tables = LakeTables(lake_cfg.lake.root)
    stamp = pa.timestamp("us", tz="UTC")
    embed = pa.table(
        {
            "listing_id": ["l-1", "l-2", "l-2"],
            "reason": ["not_found", "not_found", "decode_failed"],
            "recorded_at": pa.array([_ts(0), _ts(10), _ts(20)], stamp),
        }
    )
    index = pa.table(
        {
            "listing_id": ["l-3"],
            "reason": ["mapper_parsing_exception"],
            "recorded_at": pa.array([_ts(30)], stamp),
        }
    )
    write_deltalake(tables.embed_dead_letters, embed)
    write_deltalake(tables.index_dead_letters, index)
    found = backfill.dead_letters(None, lake_cfg)
    assert found.listings == 3 and found.indexed is None
    assert found.reasons == {
        "embed_dead_letters": {"not_found": 2, "decode_failed": 1},
        "index_dead_letters": {"mapper_parsing_exception": 1},
    }
    later = backfill.dead_letters(None, lake_cfg, since=_ts(15))
    assert later.listings == 2 and later.reasons["embed_dead_letters"] == {"decode_failed": 1}
    with pytest.raises(ValueError, match="pass a session"):
        backfill.dead_letters(None, lake_cfg, retry=True)


@pytest.mark.parametrize(
    ("path", "uri"),
    [
        ("s3a://bucket/lake/silver/listings", "s3://bucket/lake/silver/listings"),
        ("s3://bucket/lake/silver/listings", "s3://bucket/lake/silver/listings"),
        ("/data/lake/silver/listings", "/data/lake/silver/listings"),
        ("file:///data/lake/silver/listings", "file:///data/lake/silver/listings"),
    ],
)
def test_delta_rs_opens_spark_s3a_paths_as_s3(path: str, uri: str) -> None:
    assert arrow.delta_rs_uri(path) == uri
    # the storage options go with an object-store URI only
    options = {"AWS_REGION": "eu-west-1"}
    want = options if uri.startswith("s3://") else None
    assert arrow.delta_rs_location(path, options) == (uri, want)
