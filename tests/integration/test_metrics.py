"""Stream metrics, their Prometheus endpoint and `vectorlake status` on the real stack.

The session's shared catalog (tests/shared_lake.py) ran through `stream.run(..., once=True)` in several
micro-batches; the metrics table must then hold one row per batch with data per stream whose numbers equal
what the streams reported and what the lake tables hold (lag recomputed with numpy from gold/index_log), a
replayed batch must leave the table as it was, the HTTP endpoint must serve those numbers, and `vectorlake
status` must name each generation with OpenSearch's document count.
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.ports import free_port
from tests.shared_lake import SharedLake
from vectorlake import cli
from vectorlake.config import Config
from vectorlake.generate import Catalog
from vectorlake.index.client import make_client
from vectorlake.lake.tables import LakeTables
from vectorlake.ops import metrics
from vectorlake.pipeline import stream


@dataclass(frozen=True)
class Run:
    cfg: Config
    env: dict[str, str]
    tables: LakeTables
    catalog: Catalog
    totals: stream.PipelineTotals
    landing: Path


def _rows(path: str, columns: list[str] | None = None) -> list[dict[str, Any]]:
    from deltalake import DeltaTable

    rows: list[dict[str, Any]] = DeltaTable(path).to_pyarrow_table(columns=columns).to_pylist()
    return rows


def _metric_rows(run: Run, stream: str) -> list[dict[str, Any]]:
    return sorted(
        (r for r in _rows(run.tables.stream_metrics) if r["stream"] == stream), key=lambda r: r["batch_id"]
    )


@pytest.fixture(scope="module")
def run(spark: Any, shared_lake: SharedLake) -> Run:
    """The session's shared catalog (tests/shared_lake.py): one landing file per ingest batch, so several
    ingest batches and several index ones."""
    lake = shared_lake.read(spark)
    return Run(lake.config(), lake.overrides, lake.tables, lake.catalog, lake.totals, lake.landing)


def test_ingest_rows_are_one_per_batch_and_add_up_to_the_stream_and_the_tables(run: Run) -> None:
    rows = _metric_rows(run, "ingest_files")
    ingest = run.totals.ingest
    assert ingest is not None and ingest.batches >= 2
    assert len(rows) == ingest.batches
    assert len({(r["query_id"], r["batch_id"]) for r in rows}) == len(rows)
    assert sum(r["rows"] for r in rows) == ingest.rows_in
    assert sum(r["accepted"] for r in rows) == ingest.accepted
    bronze = sum(
        len(_rows(run.tables.bronze(k), ["event_id"])) for k in ("listing_changes", "media", "seller_policy")
    )
    assert sum(r["accepted"] for r in rows) == bronze
    assert sum(r["quarantined"] for r in rows) == len(_rows(run.tables.quarantine, ["reason"])) > 0
    assert sum(r["duplicates"] for r in rows) == run.catalog.duplicates > 0
    for r in rows:
        assert r["rows"] == r["accepted"] + r["duplicates"] + r["quarantined"] + r["erased"]
        assert r["finished_at"] >= r["started_at"] and r["duration_s"] > 0
        assert r["index_writes"] == 0 and r["lag_p50_s"] is None


def test_index_rows_match_the_index_log_and_numpy_lag(run: Run) -> None:
    rows = _metric_rows(run, "index")
    index = run.totals.index
    assert index is not None and index.batches >= 1
    assert len(rows) == index.batches
    assert sum(r["rows"] for r in rows) == index.listings
    assert sum(r["model_calls"] for r in rows) == index.text_model_calls + index.image_model_calls > 0
    assert sum(r["index_dead_letters"] for r in rows) == len(
        _rows(run.tables.index_dead_letters, ["listing_id"])
    )
    assert all(r["retries"] == 0 for r in rows)  # nothing failed: no bulk retry round
    log = _rows(run.tables.index_log, ["outcome", "event_ts", "indexed_at", "batch_id"])
    applied = [r for r in log if r["outcome"] == "applied"]
    assert sum(r["index_writes"] for r in rows) == len(applied) > 0
    for r in rows:
        mine = [a for a in applied if a["batch_id"] == r["batch_id"]]
        assert r["index_writes"] == len(mine)
        lags = np.array([(a["indexed_at"] - a["event_ts"]).total_seconds() for a in mine if a["event_ts"]])
        if not len(lags):
            assert r["lag_max_s"] is None
            continue
        p50, p95 = np.percentile(lags, [50, 95])
        assert r["lag_p50_s"] == pytest.approx(p50, abs=1e-3)
        assert r["lag_p95_s"] == pytest.approx(p95, abs=1e-3)
        assert r["lag_max_s"] == pytest.approx(lags.max(), abs=1e-3)


def _forget(checkpoint: Path, batch_id: int) -> None:
    """Drop the commit of `batch_id` and everything planned after it (e.g. the no-data batches that advance
    the dedup watermark), so that the next run replays `batch_id`."""
    for log, first in (("commits", batch_id), ("offsets", batch_id + 1)):
        for f in (checkpoint / log).iterdir():
            if f.name.lstrip(".").split(".")[0].isdigit() and int(f.name.lstrip(".").split(".")[0]) >= first:
                f.unlink()  # the file and Hadoop's .<id>.crc beside it (else the rename on replay fails)


def test_a_replayed_batch_leaves_the_metrics_as_they_were(spark: Any, run: Run) -> None:
    before = sorted(
        _rows(run.tables.stream_metrics), key=lambda r: (r["stream"], r["query_id"], r["batch_id"])
    )
    for name in ("ingest_files", "index"):  # as if the job died before committing its last batch with data
        last = max(r["batch_id"] for r in before if r["stream"] == name)
        _forget(Path(run.cfg.checkpoint_root) / ("index" if name == "index" else name), last)
    again = stream.run(spark, run.cfg, "files", once=True, landing_dir=str(run.landing))
    assert again.ingest is not None and again.ingest.batches == 1  # the batch did run again
    assert again.index is not None and again.index.batches == 1
    after = sorted(
        _rows(run.tables.stream_metrics), key=lambda r: (r["stream"], r["query_id"], r["batch_id"])
    )
    assert after == before


def test_the_endpoint_serves_the_table_in_prometheus_text(run: Run) -> None:
    port = free_port()
    server, _ = metrics.serve(run.cfg, "127.0.0.1", port)
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
            text = response.read().decode()
    finally:
        server.shutdown()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    table = _rows(run.tables.stream_metrics)
    for name in ("ingest_files", "index"):
        mine = [r for r in table if r["stream"] == name]
        label = (("stream", name),)
        assert samples[("vectorlake_stream_batches_total", label)] == len(mine)
        assert samples[("vectorlake_stream_rows_total", label)] == sum(r["rows"] for r in mine)
        last = max(mine, key=lambda r: r["finished_at"])
        assert samples[("vectorlake_stream_last_batch_id", label)] == last["batch_id"]
        assert samples[("vectorlake_stream_last_batch_duration_seconds", label)] == pytest.approx(
            last["duration_s"]
        )
    ingest = [r for r in table if r["stream"] == "ingest_files"]
    assert samples[("vectorlake_ingest_quarantined_total", (("stream", "ingest_files"),))] == sum(
        r["quarantined"] for r in ingest
    )
    index = [r for r in table if r["stream"] == "index"]
    assert samples[("vectorlake_index_writes_total", (("stream", "index"),))] == sum(
        r["index_writes"] for r in index
    )
    last_lag = max((r for r in index if r["lag_max_s"] is not None), key=lambda r: r["finished_at"])
    assert samples[("vectorlake_index_last_batch_lag_seconds", (("quantile", "0.95"),))] == pytest.approx(
        last_lag["lag_p95_s"]
    )
    assert samples[("vectorlake_table_rows", (("table", "quarantine/events"),))] == len(
        _rows(run.tables.quarantine, ["reason"])
    )
    assert samples[("vectorlake_opensearch_up", ())] == 1
    live, count = _live_documents(run.cfg)
    assert count > 0
    assert (
        samples[
            ("vectorlake_index_generation_documents", (("index", live), ("role", "live"), ("state", "live")))
        ]
        == count
    )


def _live_documents(cfg: Config) -> tuple[str, int]:
    """The physical index behind the alias and its document count, straight from OpenSearch."""
    client = make_client(cfg)
    try:
        live = next(iter(client.indices.get_alias(name=cfg.index.alias)))
        client.indices.refresh(index=live)
        return live, int(client.count(index=live)["count"])
    finally:
        client.close()


def _status(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], env: dict[str, str]
) -> tuple[int, str]:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    code = cli.main(["status"])
    return code, capsys.readouterr().out


def test_status_names_each_generation_with_its_document_count(
    run: Run, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    live, count = _live_documents(run.cfg)
    code, out = _status(monkeypatch, capsys, run.env)
    assert code == 0, out
    lines = out.splitlines()
    assert f"  {live}: live (live), {count} documents" in lines
    index_rows = _metric_rows(run, "index")
    last = max(index_rows, key=lambda r: r["finished_at"])
    index_line = next(line for line in lines if line.startswith("  index: "))
    assert f"last batch {last['batch_id']} at" in index_line and "up to date" in index_line
    quarantined = len(_rows(run.tables.quarantine, ["reason"]))
    assert f"quarantine/events {quarantined}" in out
    assert not any(line.startswith("note:") for line in lines)


def test_status_with_opensearch_unreachable_still_prints_the_lake_part(
    run: Run, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    code, out = _status(monkeypatch, capsys, run.env | {"VECTORLAKE__OPENSEARCH__HOSTS": dead})
    assert code == 0
    lines = out.splitlines()
    assert any(line.startswith("  ingest_files: last batch") for line in lines)
    notes = [line for line in lines if line.startswith("note:")]
    assert len(notes) == 1 and dead in notes[0] and "Traceback" not in out
    assert any(line.endswith("? documents") for line in lines)  # the control table still names it
