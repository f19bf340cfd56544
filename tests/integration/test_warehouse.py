"""The warehouse history (dbt over DuckDB) on a lake the real pipeline filled, against the local stack.

    .venv/bin/python -m pytest tests/integration/test_warehouse.py -x -q

The session's shared catalog (tests/shared_lake.py: duplicates, late and out-of-order events, deletes,
suppressions), streamed through ingest, embedding and indexing into a temporary lake and a fresh alias, is
taken over here (the modules that only read it ran first); `warehouse.build` runs.
Then a second round of events (title changes and a delete, written by hand so the new versions are known
exactly) and two erasure requests are added, the stream runs again and so does the build. Every answer
of the marts is checked against the lake tables read independently (delta-rs into pandas), the mlflow
registry and OpenSearch's aliases.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import numpy as np
import pandas as pd
import pytest

from tests.e2e.test_index_e2e import drop_alias
from tests.shared_lake import SharedLake
from vectorlake import warehouse
from vectorlake.config import Config
from vectorlake.embed import registry
from vectorlake.lake.tables import LakeTables
from vectorlake.pipeline import stream

UPDATED = 3  # listings whose title the second round changes
MART_TABLES = ("fct_embedding_audit", "dim_embedding_models", "fct_index_freshness", "fct_erasures")


@dataclass(frozen=True)
class Round:
    """What one build produced, and the lake it was built from, read back independently."""

    run: warehouse.WarehouseRun
    versions: pd.DataFrame  # silver/listing_versions
    index_log: pd.DataFrame  # gold/index_log
    embeddings: pd.DataFrame  # gold/embeddings, without vectors
    generations: pd.DataFrame  # control/index_generations
    marts: dict[str, pd.DataFrame]
    snapshot: pd.DataFrame


@dataclass(frozen=True)
class History:
    cfg: Config
    first: Round
    second: Round
    updated: dict[str, int]  # listing_id -> the state version its (last) new title got
    superseded: tuple[str, int]  # listing_id, state version of a title that the next ingest batch replaced
    deleted: tuple[str, int]  # listing_id, state version of its DELETE
    live_index: str
    text_label: str
    image_label: str
    erasure_t0: datetime


def _delta(path: str, drop: tuple[str, ...] = ()) -> pd.DataFrame:
    from deltalake import DeltaTable

    table = DeltaTable(path)
    columns = [f.name for f in table.schema().fields if f.name not in drop]
    return table.to_pandas(columns=columns)


def _warehouse(cfg: Config) -> tuple[dict[str, pd.DataFrame], pd.DataFrame]:
    with duckdb.connect(cfg.warehouse.duckdb_path, read_only=True) as con:
        con.execute("set TimeZone = 'UTC'")
        marts = {name: con.sql(f"select * from marts.{name}").df() for name in MART_TABLES}  # noqa: S608
        snapshot = con.sql("select * from snapshots.snp_listing_states").df()
    return marts, snapshot


def _round(cfg: Config, run: warehouse.WarehouseRun) -> Round:
    tables = LakeTables(cfg.lake.root)
    marts, snapshot = _warehouse(cfg)
    return Round(
        run=run,
        versions=_delta(tables.listing_versions),
        index_log=_delta(tables.index_log),
        embeddings=_delta(tables.embeddings, drop=("vector",)),
        generations=_delta(tables.index_generations),
        marts=marts,
        snapshot=snapshot,
    )


def _live_index(cfg: Config) -> str:
    from vectorlake.index.client import make_client
    from vectorlake.index.generations import live_index

    client = make_client(cfg)
    try:
        index = live_index(client, cfg.index.alias)
    finally:
        client.close()
    assert index is not None
    return index


def _write_part(folder: Path, name: str, events: list[dict[str, Any]], mtime: float) -> None:
    """A landing file; the file source takes files oldest first, one per batch here."""
    folder.mkdir(parents=True, exist_ok=True)
    tmp = folder / f".{name}.tmp"
    tmp.write_bytes(b"".join(json.dumps(e).encode() + b"\n" for e in events))
    os.utime(tmp, (mtime, mtime))
    tmp.rename(folder / name)


def _add_erasures(cfg: Config, t0: datetime) -> None:
    """Two erasure requests and their per-store log, as the purge (a later issue) will record them."""
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    from vectorlake.lake.tombstones import subject_hash

    tables = LakeTables(cfg.lake.root)
    h = timedelta(hours=1)
    # hashes of subjects the catalog does not have: the ingest drops events of recorded subjects
    h1, h2, h3 = (subject_hash(t, f"erased-{n}") for n, t in enumerate(("listing", "seller", "seller")))
    requests = [
        {"request_id": "r-done", "subject_type": "listing", "subject_id": None, "subject_hash": h1,
         "requested_at": t0, "status": "done", "finished_at": t0 + 5 * h},
        {"request_id": "r-slow", "subject_type": "seller", "subject_id": None, "subject_hash": h2,
         "requested_at": t0, "status": "done", "finished_at": t0 + 80 * h},
        {"request_id": "r-open", "subject_type": "seller", "subject_id": None, "subject_hash": h3,
         "requested_at": t0, "status": "pending", "finished_at": None},
    ]  # fmt: skip
    log = [
        ("r-done", "listing", h1, "silver/listings", 3, t0 + h, t0 + 2 * h),
        ("r-done", "listing", h1, "opensearch/listings_g1", 1, t0 + 2 * h, t0 + 4 * h),
        ("r-slow", "seller", h2, "silver/listings", 7, t0 + 70 * h, t0 + 79 * h),
        ("r-open", "seller", h3, "bronze/listing_changes", 2, t0 + h, t0 + 3 * h),
    ]
    keys = ("request_id", "subject_type", "subject_hash", "store", "erased", "started_at", "finished_at")
    for path, rows in (
        (tables.erasure_requests, requests),
        (tables.erasure_log, [dict(zip(keys, row, strict=True)) for row in log]),
    ):
        schema = DeltaTable(path).to_pyarrow_dataset().schema
        write_deltalake(path, pa.Table.from_pylist(rows, schema=schema), mode="append")


@pytest.fixture(scope="module")
def history(
    spark: Any, shared_lake: SharedLake, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[History]:
    # the session's shared lake, taken (round two changes it): one landing file per ingest batch, so
    # listings change between batches, and the versions a later batch superseded before the index query
    # ran are never written (the audit must say so)
    lake = shared_lake.take(spark)
    assert lake.overrides["VECTORLAKE__SOURCES__MAX_FILES_PER_TRIGGER"] == "1"
    landing = lake.landing
    duckdb_path = tmp_path_factory.mktemp("warehouse") / "history.duckdb"
    cfg = lake.config(VECTORLAKE__WAREHOUSE__DUCKDB_PATH=str(duckdb_path))
    try:
        first = _round(cfg, warehouse.build(cfg))

        # round two, newer than anything before: new titles for some served listings and a DELETE of
        # another in one file; in a second file (the next ingest batch) another new title for one of
        # them, so its first new version is superseded before the index query runs
        served = sorted(_newest(first.versions).query("served").index)
        picked = random.Random(5).sample(served, UPDATED + 1)
        newest_ms = (first.versions["event_ts"].max() - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(
            milliseconds=1
        )
        base = int(newest_ms) + 3_600_000  # an hour after the newest event (a version is not an event time)
        updated = {lid: base + i * 1000 for i, lid in enumerate(picked[:UPDATED])}
        deleted = (picked[UPDATED], base + 10_000)
        superseded = (picked[0], updated[picked[0]])
        updated[picked[0]] = base + 20_000

        def title(lid: str, ts: int) -> dict[str, Any]:
            return {"event_id": f"wh-{lid}-{ts}", "listing_id": lid, "event_ts": ts, "op": "UPSERT",
                    "title": f"Renamed listing {lid} at {ts}"}  # fmt: skip

        first_file = [title(lid, ts) for lid, ts in (superseded, *list(updated.items())[1:])]
        first_file.append({"event_id": f"wh-del-{deleted[0]}", "listing_id": deleted[0],
                           "event_ts": deleted[1], "op": "DELETE"})  # fmt: skip
        now = datetime.now(UTC).timestamp()
        _write_part(landing / "listing_changes", "part-90000.jsonl", first_file, now)
        _write_part(
            landing / "listing_changes", "part-90001.jsonl", [title(picked[0], base + 20_000)], now + 10
        )
        t0 = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
        _add_erasures(cfg, t0)
        stream.run(spark, cfg, "files", once=True, landing_dir=str(landing))
        second = _round(cfg, warehouse.build(cfg))

        def version_at(lid: str, ts: int) -> int:
            """The state version silver recorded when the event at ``ts`` was the listing's newest."""
            v = second.versions
            event_ms = (v["event_ts"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
            (version,) = set(v[(v["listing_id"] == lid) & (event_ms == ts)]["version"])
            return int(version)

        yield History(
            cfg=cfg,
            first=first,
            second=second,
            updated={lid: version_at(lid, ts) for lid, ts in updated.items()},
            superseded=(superseded[0], version_at(*superseded)),
            deleted=(deleted[0], version_at(*deleted)),
            live_index=_live_index(cfg),
            text_label=registry.resolve(cfg, "text").label,
            image_label=registry.resolve(cfg, "image").label,
            erasure_t0=t0,
        )
    finally:
        drop_alias(cfg)


def _newest(versions: pd.DataFrame) -> pd.DataFrame:
    """The newest recorded state of each listing, by listing_id."""
    ordered = versions.sort_values(["recorded_at", "version"])
    return ordered.drop_duplicates("listing_id", keep="last").set_index("listing_id")


def _expected_first_applied(index_log: pd.DataFrame) -> pd.DataFrame:
    """From the raw index log: the first applied index write of each (listing, version, index)."""
    applied = index_log[(index_log["action"] == "index") & (index_log["outcome"] == "applied")]
    ordered = applied.sort_values(["indexed_at", "batch_id"])
    return ordered.drop_duplicates(["listing_id", "version", "index"], keep="first")


def _null(value: Any) -> bool:
    return value is None or bool(pd.isna(value))


def test_build_reports_what_it_ran(history: History) -> None:
    for r in (history.first.run, history.second.run):
        assert r.target == "local" and r.models == 15 and r.snapshots == 1
        assert r.tests >= 90 and r.warnings == 0
        assert r.line().startswith(
            f"warehouse built (local -> {history.cfg.warehouse.duckdb_path}): 15 models"
        )
        assert (r.target_dir / "run_results.json").is_file()
    results = json.loads((history.second.run.target_dir / "run_results.json").read_text())["results"]
    assert {r["status"] for r in results} <= {"success", "pass", "no-op"}  # no-op: the exposure


def test_the_audit_answers_which_model_embedded_a_version_and_since_when(history: History) -> None:
    r = history.second
    audit = r.marts["fct_embedding_audit"]
    expected = _expected_first_applied(r.index_log)
    assert len(expected) > 30
    # every (listing, version) silver recorded is in the audit, and nothing else
    assert set(zip(audit["listing_id"], audit["listing_version"], strict=True)) == set(
        zip(r.versions["listing_id"], r.versions["version"], strict=True)
    )
    # several recorded states can share a version (a late event that moves no clock): counted, not lost
    states = r.versions.groupby(["listing_id", "version"]).size()
    per_version = audit.drop_duplicates(["listing_id", "listing_version"])
    counted = per_version.set_index(["listing_id", "listing_version"])["states_at_version"]
    assert counted.sort_index().tolist() == states.sort_index().tolist()
    searchable = audit[audit["index_outcome"] == "searchable"].set_index(
        ["listing_id", "listing_version", "index_name"]
    )
    assert len(searchable) == len(expected)
    rng = random.Random(11)
    sample = expected.iloc[rng.sample(range(len(expected)), 15)]
    for row in sample.itertuples(index=False):
        got = searchable.loc[(row.listing_id, row.version, row.index)]
        assert got["text_model"] == row.text_model == history.text_label, row.listing_id
        if _null(row.image_model):
            assert _null(got["image_model"]), row.listing_id
        else:
            assert got["image_model"] == row.image_model == history.image_label, row.listing_id
        assert got["searchable_at"] == row.indexed_at, row.listing_id
        assert row.index == history.live_index and got["generation"] == int(row.index.rsplit("_g", 1)[1])
        assert got["written_through_read_alias"]
        states = r.generations.loc[r.generations["index"] == row.index, "state"]
        assert got["generation_state"] == states.iloc[0] if len(states) else _null(got["generation_state"])
    # the question as a person would ask it, for a listing that has an image and one that has none
    with duckdb.connect(history.cfg.warehouse.duckdb_path, read_only=True) as con:
        for has_image in (True, False):
            row = expected[expected["image_model"].notna() == has_image].iloc[0]
            answer = con.execute(
                "select text_model, image_model, searchable_at from marts.fct_embedding_audit "
                "where listing_id = ? and listing_version = ? and written_through_read_alias",
                [row["listing_id"], int(row["version"])],
            ).fetchall()
            assert len(answer) == 1
            text_model, image_model, since = answer[0]
            assert text_model == history.text_label
            assert image_model == (history.image_label if has_image else None)
            assert pd.Timestamp(since) == row["indexed_at"]


def test_versions_the_index_never_served_say_so(history: History) -> None:
    r = history.second
    audit = r.marts["fct_embedding_audit"]
    written = set(zip(r.index_log["listing_id"], r.index_log["version"], strict=True))
    never = audit[
        [(a, b) not in written for a, b in zip(audit["listing_id"], audit["listing_version"], strict=True)]
    ]
    assert len(never) > 0  # versions superseded before the index query ran: the catalog has them
    assert (never["index_outcome"] == "not_written").all() and never["searchable_at"].isna().all()
    assert never["index_name"].isna().all() and never["text_model"].isna().all()
    lid, version = history.superseded
    row = never[(never["listing_id"] == lid) & (never["listing_version"] == version)]
    assert len(row) == 1
    assert (
        row.iloc[0]["superseded_at"]
        == r.versions.query("listing_id == @lid and version > @version")["recorded_at"].min()
    )
    deletes = r.index_log[(r.index_log["action"] == "delete") & (r.index_log["outcome"] == "applied")]
    first_delete = deletes.sort_values("indexed_at").groupby(["listing_id", "version"])["indexed_at"].first()
    removed = audit[audit["index_outcome"] == "removed"].set_index(["listing_id", "listing_version"])
    assert len(first_delete) > 0 and set(removed.index) == set(first_delete.index)
    for key, at in first_delete.items():
        assert removed.loc[key, "removed_at"] == at
        assert not removed.loc[key, "is_served"]


def test_model_dimension_matches_the_cache(history: History) -> None:
    r = history.second
    dim = r.marts["dim_embedding_models"].set_index("model_version")
    assert set(dim.index) == {history.text_label, history.image_label}
    cache = r.embeddings.groupby("model_version").agg(n=("listing_id", "size"), d=("dim", "max"))
    for label, modality, size in ((history.text_label, "text", 384), (history.image_label, "image", 1280)):
        row = dim.loc[label]
        assert row["modality"] == modality and row["dim"] == cache.loc[label, "d"] == size
        assert row["embeddings"] == cache.loc[label, "n"]
        assert row["model_name"] + "/" + row["registry_version"] == label
        live = r.generations[r.generations["state"] == "live"]
        assert row["is_in_live_generation"] == (label in set(live[f"{modality}_model"]))
    applied = r.index_log[(r.index_log["action"] == "index") & (r.index_log["outcome"] == "applied")]
    assert dim.loc[history.text_label, "applied_index_writes"] == applied["text_model"].notna().sum()
    assert dim.loc[history.image_label, "applied_index_writes"] == applied["image_model"].notna().sum()


def test_hourly_freshness_matches_the_index_log(history: History) -> None:
    r = history.second
    log = r.index_log[r.index_log["outcome"] == "applied"].copy()
    log["lag"] = (log["indexed_at"] - log["event_ts"]).dt.total_seconds()
    log["hour"] = log["indexed_at"].dt.floor("h")
    fresh = r.marts["fct_index_freshness"].set_index(["hour_start", "index_name"])
    groups = log.groupby(["hour", "index"])
    assert len(fresh) == len(groups)
    for (hour, index), part in groups:
        row = fresh.loc[(hour, index)]
        assert row["applied_writes"] == len(part)
        assert row["delete_writes"] == (part["action"] == "delete").sum()
        for column, q in (("event_lag_p50_s", 50), ("event_lag_p95_s", 95), ("event_lag_max_s", 100)):
            assert row[column] == pytest.approx(np.percentile(part["lag"], q), abs=1e-3), column


def test_erasures_mart_times_each_request(history: History) -> None:
    assert history.first.marts["fct_erasures"].empty  # built and tested on empty control tables first
    erasures = history.second.marts["fct_erasures"].set_index("request_id")
    t0 = pd.Timestamp(history.erasure_t0)
    assert sorted(erasures.index) == ["r-done", "r-open", "r-slow"]
    done, slow, open_ = erasures.loc["r-done"], erasures.loc["r-slow"], erasures.loc["r-open"]
    assert (done["stores_erased"], done["erased_count"], done["hours_to_erase"]) == (2, 4, 5.0)
    assert done["is_within_sla"] and done["requested_at"] == t0
    assert done["last_store_finished_at"] == t0 + pd.Timedelta(hours=4)
    assert slow["hours_to_erase"] == 80.0 and not slow["is_within_sla"]
    assert open_["request_status"] == "pending" and pd.isna(open_["finished_at"])
    assert pd.isna(open_["is_within_sla"]) and open_["stores_erased"] == 1


def test_the_second_build_extends_the_scd2_history(history: History) -> None:
    before, after = history.first.snapshot, history.second.snapshot
    newest = _newest(history.second.versions)
    changed = {*history.updated, history.deleted[0]}
    assert before["dbt_valid_to"].isna().all() and before["listing_id"].is_unique
    first_rows = before.set_index("listing_id")
    for lid, version in [*history.updated.items(), history.deleted]:
        rows = after[after["listing_id"] == lid].sort_values("dbt_valid_from")
        assert len(rows) == 2, lid
        old, new = rows.iloc[0], rows.iloc[1]
        assert old["dbt_scd_id"] == first_rows.loc[lid, "dbt_scd_id"]
        assert old["listing_version"] == first_rows.loc[lid, "listing_version"] < version
        assert new["listing_version"] == version == newest.loc[lid, "version"]
        assert new["dbt_valid_from"] == newest.loc[lid, "recorded_at"] == old["dbt_valid_to"]
        assert pd.isna(new["dbt_valid_to"])
        assert new["is_live"] == (lid != history.deleted[0])
    unchanged = after[~after["listing_id"].isin(changed)].set_index("listing_id").sort_index()
    assert unchanged.index.is_unique and unchanged["dbt_valid_to"].isna().all()
    kept = first_rows.drop(index=list(changed)).sort_index()
    assert list(unchanged.index) == list(kept.index)
    assert (unchanged["dbt_scd_id"] == kept["dbt_scd_id"]).all()


def test_the_audit_follows_the_new_versions(history: History) -> None:
    r = history.second
    audit = r.marts["fct_embedding_audit"]
    expected = _expected_first_applied(r.index_log).set_index(["listing_id", "version"])
    recorded = r.versions.groupby(["listing_id", "version"])["recorded_at"].min()
    for lid, version in history.updated.items():
        rows = audit[audit["listing_id"] == lid].sort_values("listing_version")
        new = rows[rows["listing_version"] == version].iloc[0]
        assert new["index_outcome"] == "searchable" and new["text_model"] == history.text_label
        assert new["searchable_at"] == expected.loc[(lid, version), "indexed_at"]
        assert pd.isna(new["superseded_at"])
        previous = rows[rows["listing_version"] < version].iloc[-1]
        assert previous["superseded_at"] == recorded.loc[(lid, version)]
    lid, version = history.deleted
    row = audit[(audit["listing_id"] == lid) & (audit["listing_version"] == version)].iloc[0]
    assert row["index_outcome"] == "removed" and not row["is_live"] and pd.isna(row["text_model"])
