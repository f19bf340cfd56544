"""`vectorlake quality` on a lake the real pipeline wrote (a copy of the session's shared lake, see
tests/shared_lake.py): every suite passes on generated data and records its verdicts in
control/quality_results; after bad rows are appended (an unknown op and locales in bronze,
a vector of the wrong dimension in gold) it fails, naming the expectations."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

from tests.shared_lake import SharedLake
from vectorlake import control
from vectorlake.cli import main
from vectorlake.config import Config, load_config
from vectorlake.lake.tables import LakeTables
from vectorlake.ops import quality


@dataclass(frozen=True)
class Lake:
    cfg: Config
    tables: LakeTables


@pytest.fixture(scope="module")
def lake(spark: Any, shared_lake: SharedLake, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    """A copy of the session's shared lake (tests/shared_lake.py): the corrupted rows below stay in it."""
    tables = shared_lake.copy(spark, tmp_path_factory.mktemp("quality") / "lake")
    patch = pytest.MonkeyPatch()
    # `main` loads the config from the environment, as the command does (no stream, no index here)
    patch.setenv("VECTORLAKE__LAKE__ROOT", tables.root)
    yield Lake(load_config(), tables)
    patch.undo()


def _append_like(path: str, edit: Any, n: int = 1) -> None:
    """Append ``n`` copies of a table's first row, each changed by ``edit(i, row)``, with delta-rs."""
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    data = DeltaTable(path).to_pyarrow_table()
    first = data.slice(0, 1).to_pylist()[0]
    rows = [edit(i, dict(first)) for i in range(n)]
    write_deltalake(path, pa.Table.from_pylist(rows, schema=data.schema), mode="append")


def _results(cfg: Config, run_id: str) -> dict[tuple[str, str], str]:
    return {
        (r["suite"], r["expectation"]): r["status"]
        for r in control.quality_results_table(cfg).rows()
        if r["run_id"] == run_id
    }


def test_quality_passes_on_pipeline_output_then_fails_on_corrupted_rows(
    lake: Lake, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, tables = lake.cfg, lake.tables

    assert main(["quality", "--write-baseline"]) == 0, capsys.readouterr()
    out = capsys.readouterr().out
    for suite in quality.SUITES:
        assert f"{suite}: passed" in out, out
    assert "skipped expect_column_values_to_be_between(mean_shift): no baseline for" in out
    assert "baseline written for vectorlake-text-encoder/" in out

    report = quality.run(cfg, run_id="after-baseline")
    assert report.success, report.lines()
    recorded = _results(cfg, "after-baseline")
    assert {suite for suite, _ in recorded} == set(quality.SUITES)
    assert set(recorded.values()) == {"passed"}  # the drift check ran against the stored baseline
    assert recorded[("embeddings", "expect_column_values_to_be_between(mean_shift)")] == "passed"
    listing_rows = quality.sample(cfg, tables.bronze("listing_changes"), 10_000).num_rows
    rows = [r for r in control.quality_results_table(cfg).rows() if r["run_id"] == "after-baseline"]
    assert {r["rows"] for r in rows if r["suite"] == "bronze_listing_changes"} == {listing_rows}

    def bad_event(i: int, row: dict[str, Any]) -> dict[str, Any]:
        return row | {"event_id": f"bad-{i}", "op": "MERGE" if i == 0 else "UPSERT", "locale": "zz_ZZ"}

    def wrong_dim(i: int, row: dict[str, Any]) -> dict[str, Any]:
        return row | {"listing_id": "bad-dim", "content_hash": "bad", "vector": [*row["vector"], 0.0]}

    _append_like(tables.bronze("listing_changes"), bad_event, n=max(listing_rows // 20, 3))
    _append_like(tables.embeddings, wrong_dim)

    assert main(["quality", "--suite", "bronze_listing_changes", "--suite", "embeddings"]) == 1
    out = capsys.readouterr().out
    assert "bronze_listing_changes: FAILED" in out and "embeddings: FAILED" in out
    assert "FAILED expect_column_values_to_be_in_set(op): 1 of" in out and "'MERGE'" in out
    assert "FAILED expect_column_values_to_be_in_set(locale)" in out
    assert "FAILED expect_column_pair_values_to_be_equal(vector_dim, model_dim): 1 of" in out
    assert "silver_listings" not in out  # only the suites asked for
    run_id = out.strip().splitlines()[-1].split()[2].rstrip(":")
    failed = {key for key, status in _results(cfg, run_id).items() if status == "failed"}
    assert failed == {
        ("bronze_listing_changes", "expect_column_values_to_be_in_set(op)"),
        ("bronze_listing_changes", "expect_column_values_to_be_in_set(locale)"),
        ("embeddings", "expect_column_pair_values_to_be_equal(vector_dim, model_dim)"),
        ("embeddings", "expect_column_pair_values_to_be_equal(dim, vector_dim)"),
    }


def test_an_unknown_suite_is_a_one_line_error(lake: Lake, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["quality", "--suite", "gold"])
    assert exit_info.value.code == 2
    assert "invalid choice: 'gold'" in capsys.readouterr().err
