"""The pure parts of stream metrics and `vectorlake status`: rows, lag percentiles, exposition, formatting."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from vectorlake import control
from vectorlake.config import load_config
from vectorlake.errors import ConfigError
from vectorlake.lake.tables import STREAM_METRIC_COLUMNS, LakeTables
from vectorlake.ops import metrics
from vectorlake.ops.metrics import GenerationDocs, Lag
from vectorlake.ops.status import Status, StreamProgress
from vectorlake.pipeline import batch_metrics
from vectorlake.pipeline.batch_metrics import BatchCounts, IndexCounts

T0 = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def _index_counts(batch_id: int, applied: int, lag: tuple[float, float, float] | None) -> IndexCounts:
    return IndexCounts(
        batch_id=batch_id,
        listings=applied + 1,
        upserts=applied,
        deletes=1,
        applied=applied,
        stale=1,
        rejected=2,
        text_model_calls=5,
        image_model_calls=3,
        image_failures=1,
        seconds=4.0,
        cache_hits=7,
        retries=1,
        lag_p50_s=lag[0] if lag else None,
        lag_p95_s=lag[1] if lag else None,
        lag_max_s=lag[2] if lag else None,
    )


def _rows() -> list[dict[str, Any]]:
    return [
        batch_metrics.ingest_row(
            "ingest_files", "q1", 0, T0, 2.0, 100, BatchCounts(0, 90, 4, 30, 2.0, erased=1)
        ),
        batch_metrics.ingest_row(
            "ingest_files", "q1", 1, T0 + timedelta(minutes=1), 3.0, 50, BatchCounts(1, 50, 0, 9, 3.0)
        ),
        batch_metrics.index_row("i1", _index_counts(0, 20, (10.0, 30.0, 40.0)), T0 + timedelta(minutes=2)),
        batch_metrics.index_row("i1", _index_counts(1, 0, None), T0 + timedelta(minutes=3)),
    ]


def _parse(rows: list[dict[str, Any]], **extras: Any) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    class Fixed:
        def collect(self) -> Any:
            return metrics.families(rows, **extras)

    registry = CollectorRegistry(auto_describe=False)
    registry.register(Fixed())  # type: ignore[arg-type]
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_lag_percentiles_interpolate_like_numpy_and_skip_nulls() -> None:
    lag = metrics.lag_percentiles([3.0, None, 1.0, 100.0, 2.0, 4.0])
    assert (lag.writes, lag.p50_s, lag.max_s) == (5, 3.0, 100.0)
    assert lag.p95_s == pytest.approx(4 + 0.8 * 96)
    assert metrics.lag_percentiles([None]) == Lag(0, None, None, None)
    assert metrics.lag_percentiles([]).p95_s is None


def test_ingest_row_counts_duplicates_apart_from_erased_and_holds_no_ids() -> None:
    row = batch_metrics.ingest_row(
        "ingest_kafka", "q", 7, T0, 2.5, 100, BatchCounts(7, 80, 5, 3, 2.5, erased=4)
    )
    assert (row["rows"], row["accepted"], row["quarantined"], row["erased"], row["duplicates"]) == (
        100,
        80,
        5,
        4,
        11,
    )
    assert row["finished_at"] - row["started_at"] == timedelta(seconds=2.5)
    assert row["index_writes"] == 0 and row["lag_p50_s"] is None
    assert set(row) == set(STREAM_METRIC_COLUMNS)
    assert not any("listing" in c or "seller" in c for c in STREAM_METRIC_COLUMNS)


def test_index_row_takes_every_count_from_index_counts() -> None:
    row = batch_metrics.index_row("i", _index_counts(3, 20, (1.0, 2.0, 3.0)), T0)
    assert row["stream"] == "index" and row["batch_id"] == 3 and row["rows"] == 21
    assert (row["model_calls"], row["cache_hits"], row["index_writes"], row["stale_writes"]) == (8, 7, 20, 1)
    assert (row["retries"], row["embed_dead_letters"], row["index_dead_letters"]) == (1, 1, 2)
    assert (row["lag_p50_s"], row["lag_p95_s"], row["lag_max_s"]) == (1.0, 2.0, 3.0)


def test_exposition_sums_counters_per_stream_and_gauges_the_last_batch() -> None:
    gens = [GenerationDocs("l_g1", "retired", "prev", 28), GenerationDocs("l_g2", "live", "live", 30)]
    got = _parse(_rows(), dead_letters={"quarantine/events": 4}, generations=gens, opensearch_up=True)
    ingest, index = (("stream", "ingest_files"),), (("stream", "index"),)
    assert got[("vectorlake_stream_batches_total", ingest)] == 2
    assert got[("vectorlake_stream_rows_total", ingest)] == 150
    assert got[("vectorlake_ingest_accepted_total", ingest)] == 140
    assert got[("vectorlake_ingest_duplicates_total", ingest)] == 5  # 100 - 90 - 4 - 1, then 0
    assert got[("vectorlake_ingest_quarantined_total", ingest)] == 4
    assert got[("vectorlake_index_writes_total", index)] == 20
    assert got[("vectorlake_embed_model_calls_total", index)] == 16
    assert got[("vectorlake_index_dead_letters_total", index)] == 4
    assert got[("vectorlake_stream_batch_seconds_total", ingest)] == 5.0
    assert got[("vectorlake_stream_last_batch_id", ingest)] == 1
    assert got[("vectorlake_stream_last_batch_id", index)] == 1
    last_index_end = (T0 + timedelta(minutes=3, seconds=4)).timestamp()
    assert got[("vectorlake_stream_last_batch_timestamp_seconds", index)] == last_index_end
    # the last index batch had no applied writes: the lag gauges are the last batch that had some
    assert got[("vectorlake_index_last_batch_lag_seconds", (("quantile", "0.95"),))] == 30.0
    assert got[("vectorlake_index_last_batch_lag_seconds", (("quantile", "1"),))] == 40.0
    assert got[("vectorlake_table_rows", (("table", "quarantine/events"),))] == 4
    assert got[("vectorlake_opensearch_up", ())] == 1
    key = (("index", "l_g2"), ("role", "live"), ("state", "live"))
    assert got[("vectorlake_index_generation_documents", key)] == 30


def test_exposition_of_an_empty_table_has_no_samples_but_parses() -> None:
    got = _parse([])
    assert not any(name.startswith("vectorlake_index_last_batch_lag") for name, _ in got)
    assert got == {}


def test_status_lines_name_streams_lag_dead_letters_and_generation_counts() -> None:
    status = Status(
        now=T0 + timedelta(minutes=5),
        streams=[
            StreamProgress("ingest_files", 4, T0, 120, 4, "landing file log at entry 4"),
            StreamProgress(
                "index",
                None,
                None,
                None,
                2,
                "change feed read through silver/listings version 9 of 9: up to date",
            ),
        ],
        last_lag=(2, Lag(20, 12.0, 90.0, 200.0)),
        window_lag=Lag(0, None, None, None),
        window_minutes=60,
        dead_letters={"gold/index_dead_letters": 0, "quarantine/events": 3},
        generations=[
            GenerationDocs("listings_g1", "live", "live", 30),
            GenerationDocs("listings_g2", "building", "next", None),
        ],
        notes=["OpenSearch at http://x did not answer: document counts not shown"],
    )
    lines = status.lines()
    assert (
        "  ingest_files: last batch 4 at 2026-11-20 12:00:00Z (5.0 min ago): 120 rows; "
        "checkpoint committed batch 4; landing file log at entry 4" in lines
    )
    assert (
        "  index: no batch recorded; checkpoint committed batch 2; "
        "change feed read through silver/listings version 9 of 9: up to date" in lines
    )
    assert "  last batch (2): P50 12.0 s, P95 90.0 s, max 3.3 min over 20 writes" in lines
    assert "  last 60 min: no applied writes" in lines
    assert "dead letters: gold/index_dead_letters 0, quarantine/events 3" in lines
    assert "  listings_g1: live (live), 30 documents" in lines
    assert "  listings_g2: building (next), ? documents" in lines
    assert lines[-1].startswith("note: OpenSearch at http://x did not answer")


def test_metrics_config_defaults_to_localhost_and_rejects_a_bad_port() -> None:
    cfg = load_config(environ={})
    assert (cfg.metrics.host, cfg.metrics.port) == ("127.0.0.1", 9464)
    with pytest.raises(ConfigError, match=r"metrics\.port"):
        load_config(environ={"VECTORLAKE__METRICS__PORT": "70000"})
    with pytest.raises(ConfigError, match=r"metrics\.status_window_minutes"):
        load_config(environ={"VECTORLAKE__METRICS__STATUS_WINDOW_MINUTES": "0"})


def test_metrics_table_inserts_a_key_once_and_keeps_the_first_row(tmp_path: Path) -> None:
    cfg = load_config(environ={"VECTORLAKE__LAKE__ROOT": str(tmp_path / "lake")})
    table = control.stream_metrics_table(cfg)
    first = _rows()
    table.insert_new(first)
    replay = batch_metrics.ingest_row("ingest_files", "q1", 1, T0, 9.0, 999, None)  # same key, other numbers
    table.insert_new([replay, batch_metrics.ingest_row("ingest_files", "q2", 1, T0, 1.0, 5, None)])
    rows = metrics.read_rows(cfg, LakeTables(cfg.lake.root).stream_metrics)
    keys = sorted((r["stream"], r["query_id"], r["batch_id"]) for r in rows)
    assert keys == sorted(
        [
            ("ingest_files", "q1", 0),
            ("ingest_files", "q1", 1),
            ("ingest_files", "q2", 1),
            ("index", "i1", 0),
            ("index", "i1", 1),
        ]
    )
    kept = next(r for r in rows if (r["query_id"], r["batch_id"]) == ("q1", 1))
    assert kept["rows"] == 50 and kept["accepted"] == 50


def _failure(
    at: datetime, in_a_row: int, error: str = "the index stream failed: OpenSearch down"
) -> dict[str, Any]:
    return {"stream": "index", "query_id": "i1", "failed_at": at, "in_a_row": in_a_row,
            "restart_in_s": 15.0 * 2 ** (in_a_row - 1), "error": error, "recorded_at": at}  # fmt: skip


def test_the_restart_delay_doubles_per_failure_in_a_row_up_to_its_cap() -> None:
    from vectorlake.pipeline.supervise import restart_delay

    assert [restart_delay(15, 300, n) for n in range(1, 8)] == [15, 30, 60, 120, 240, 300, 300]
    assert restart_delay(2, 8, 1000) == 8  # no overflow however long the outage
    with pytest.raises(ValueError, match="in_a_row"):
        restart_delay(15, 300, 0)


def test_failures_after_the_last_batch_make_a_stream_failing_in_metrics_and_status() -> None:
    rows = _rows()  # the index stream's last batch finished at T0 + 3 min 4 s
    old = _failure(T0 + timedelta(minutes=1), 1)  # before that batch: recovered since
    got = _parse(rows, failures=[old])
    index = (("stream", "index"),)
    assert got[("vectorlake_stream_failures_total", index)] == 1
    assert got[("vectorlake_stream_failing", index)] == 0
    assert got[("vectorlake_stream_failing", (("stream", "ingest_files"),))] == 0
    new = [old, _failure(T0 + timedelta(minutes=4), 1), _failure(T0 + timedelta(minutes=5), 2)]
    got = _parse(rows, failures=new)
    assert got[("vectorlake_stream_failures_total", index)] == 3
    assert got[("vectorlake_stream_failing", index)] == 2
    assert metrics.failing(new, metrics.last_batches(rows))["index"]["in_a_row"] == 2
    assert metrics.failing(new, {})["index"]["in_a_row"] == 2  # never a batch: failing all along

    status = Status(
        now=T0 + timedelta(minutes=6),
        streams=[StreamProgress("index", 1, T0, 3, 1, None, failing=new[-1])],
        last_lag=None,
        window_lag=Lag(0, None, None, None),
        window_minutes=60,
        dead_letters={},
        generations=[],
    )
    assert (
        "  index: FAILING: 2 failure(s) in a row, the last at 2026-11-20 12:05:00Z (60.0 s ago): "
        "the index stream failed: OpenSearch down; restarted 30.0 s after it" in status.lines()
    )


def test_a_failure_row_is_recorded_once_and_recording_never_raises(tmp_path: Path) -> None:
    from vectorlake.pipeline.supervise import record_failure

    cfg = load_config(environ={"VECTORLAKE__LAKE__ROOT": str(tmp_path / "lake")})
    record_failure(cfg, "index", "q9", 1, 15.0, "the index stream failed: x\nsecond line kept out")
    rows = metrics.read_rows(cfg, LakeTables(cfg.lake.root).stream_failures)
    assert [(r["stream"], r["query_id"], r["in_a_row"], r["restart_in_s"]) for r in rows] == [
        ("index", "q9", 1, 15.0)
    ]
    assert rows[0]["error"] == "the index stream failed: x"  # one line, as the column says
    (tmp_path / "blocked").write_text("a file where the lake folder should be")
    broken = load_config(environ={"VECTORLAKE__LAKE__ROOT": str(tmp_path / "blocked" / "lake")})
    record_failure(broken, "index", "q9", 2, 30.0, "the lake is unreachable too")  # logged, not raised
