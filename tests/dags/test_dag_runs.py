"""dag.test() of listing_backfill and embedding_reindex against the local stack, and the reindex DAG's
behaviour when the gate fails.

One small catalog is streamed into a temp lake and a unique index alias (generation 1 goes live); the DAGs
then submit the real jobs (`jobs/backfill.py`, `jobs/reindex.py`) through SparkSubmitOperator on the
`spark_default` connection (local[2]) and call vectorlake.ops.lifecycle in their Python tasks. The
assertions read what the runs left: silver, the documents behind the alias, the aliases and the
generation records.
"""

from __future__ import annotations

import dataclasses
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest

from tests.e2e.test_index_e2e import index_documents
from vectorlake.config import Config, load_config
from vectorlake.embed import registry
from vectorlake.generate import GeneratorSpec, generate, write_landing
from vectorlake.lake import silver
from vectorlake.lake.tables import LakeTables
from vectorlake.pipeline import stream

SPEC = GeneratorSpec(seed=5, listings=40, sellers=6, events=300, suppression_rate=0.2, image_size=(64, 48))
EVENT_RANGE = {"start": "2026-11-01T00:00:00+00:00", "end": "2026-11-03T00:00:00+00:00"}  # the whole catalog


@dataclasses.dataclass(frozen=True)
class Streamed:
    cfg: Config
    tables: LakeTables


@pytest.fixture(scope="module")
def streamed(
    spark: Any, local_stack: None, airflow_home: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Streamed]:
    """A catalog streamed once into a temp lake and a fresh alias; the DAG tasks see the same settings
    through the environment (they load the config themselves, as in production)."""
    tmp = tmp_path_factory.mktemp("dag-runs")
    landing = tmp / "landing"
    catalog = generate(SPEC, image_root=str(landing / "images"))
    write_landing(catalog, landing, files_per_kind=2)
    patch = pytest.MonkeyPatch()
    patch.setenv("VECTORLAKE__LAKE__ROOT", str(tmp / "lake"))
    patch.setenv("VECTORLAKE__INDEX__ALIAS", f"t-dags-{uuid.uuid4().hex[:8]}")
    patch.setenv("VECTORLAKE__SOURCES__LANDING_DIR", str(landing))
    patch.setenv("VECTORLAKE__REINDEX__CHUNKS", "2")  # 40 listings: more buckets only add Spark jobs
    cfg = load_config()
    try:
        registry.register_all(cfg)
        totals = stream.run(spark, cfg, "files", once=True, landing_dir=str(landing))
        assert totals.index is not None and totals.index.rejected == 0
        yield Streamed(cfg, LakeTables(cfg.lake.root))
    finally:
        _drop_family(cfg)
        patch.undo()


def _client(cfg: Config) -> Any:
    from vectorlake.index.client import make_client

    return make_client(cfg)


def _drop_family(cfg: Config) -> None:
    from vectorlake.index import generations

    client = _client(cfg)
    try:
        for index in generations.generations(client, cfg.index.alias):
            client.indices.delete(index=index)
    finally:
        client.close()


def _silver_states(spark: Any, tables: LakeTables) -> dict[str, dict[str, Any]]:
    rows = spark.read.format("delta").load(tables.listings).select(*silver.STATE_COLUMNS).collect()
    return {r["listing_id"]: r.asDict(recursive=True) for r in rows}


def _without_indexed_at(docs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {lid: {k: v for k, v in doc.items() if k != "indexed_at"} for lid, doc in docs.items()}


def _task_states(run: Any) -> dict[str, str | None]:
    return {ti.task_id: (str(ti.state) if ti.state else None) for ti in run.get_task_instances()}


def _dag_test(dagbag: Any, dag_id: str, conf: dict[str, Any], **kwargs: Any) -> tuple[Any, float]:
    t0 = time.monotonic()
    run = dagbag.get_dag(dag_id).test(run_conf=conf, **kwargs)
    return run, time.monotonic() - t0


def test_listing_backfill_replays_silver_unchanged_and_restores_a_lost_document(
    dagbag: Any, streamed: Streamed, spark: Any
) -> None:
    cfg, tables = streamed.cfg, streamed.tables
    silver_before = _silver_states(spark, tables)
    docs_before, versions_before = index_documents(cfg)
    assert len(docs_before) > 10
    # lose one document (a delete at its own external version, as if a write had never arrived)
    lost = sorted(docs_before)[0]
    client = _client(cfg)
    try:
        client.delete(
            index=cfg.index.alias,
            id=lost,
            params={"version": versions_before[lost], "version_type": "external_gte", "refresh": "true"},
        )
    finally:
        client.close()
    assert lost not in index_documents(cfg)[0]

    run, seconds = _dag_test(dagbag, "listing_backfill", {**EVENT_RANGE, "target": "both"})
    print(f"listing_backfill dag.test: {seconds:.1f} s")

    assert _task_states(run) == {"backfill": "success"}
    assert run.state == "success"
    # silver: replaying events it has seen changes nothing
    assert _silver_states(spark, tables) == silver_before
    # index: the listings of the range are written again from silver, the lost one included
    docs_after, versions_after = index_documents(cfg)
    assert versions_after == versions_before
    assert _without_indexed_at(docs_after) == _without_indexed_at(docs_before)


def test_embedding_reindex_with_auto_cutover_makes_a_new_generation_live(
    dagbag: Any, streamed: Streamed
) -> None:
    from vectorlake.index import generations
    from vectorlake.ops import lifecycle

    cfg = streamed.cfg
    client = _client(cfg)
    try:
        old = generations.live_index(client, cfg.index.alias)
    finally:
        client.close()
    assert old is not None
    docs_before, versions_before = index_documents(cfg)
    conf = {"text_model_version": None, "image_model_version": None, "auto_cutover": True}

    run, seconds = _dag_test(dagbag, "embedding_reindex", conf)
    print(f"embedding_reindex dag.test: {seconds:.1f} s")

    assert _task_states(run) == {
        "create_generation": "success",
        "reindex": "success",
        "validate": "success",
        "cutover_or_stop": "success",
        "cutover": "success",
        "stop": "skipped",
    }
    assert run.state == "success"
    text, image = registry.resolve(cfg, "text"), registry.resolve(cfg, "image")  # the champions
    client = _client(cfg)
    try:
        new = generations.live_index(client, cfg.index.alias)
        assert new is not None and new != old
        assert (generations.generation_number(cfg.index.alias, new) or 0) > (
            generations.generation_number(cfg.index.alias, old) or 0
        )
        meta = generations.generation_meta(client, new)
        assert generations.live_index(client, cfg.index.prev_alias) == old  # kept for rollback
        assert generations.live_index(client, cfg.index.next_alias) is None  # nothing left building
    finally:
        client.close()
    assert (meta["text_model"], meta["image_model"]) == (text.label, image.label)
    assert generations.model_version(meta, "text") == text.version
    assert generations.model_version(meta, "image") == image.version
    recorded = {g.index: g for g in lifecycle.list_generations(cfg)}
    assert recorded[new].state == "live" and recorded[new].validation == "passed"
    assert recorded[old].state == "retired" and recorded[old].retired_at is not None
    # the new generation serves the same listings at the same state versions
    docs_after, versions_after = index_documents(cfg)
    assert versions_after == versions_before
    assert {lid: d["title"] for lid, d in docs_after.items()} == {
        lid: d["title"] for lid, d in docs_before.items()
    }


@dataclasses.dataclass(frozen=True)
class FailedGate:
    index: str
    passed: bool = False
    failures: tuple[str, ...] = ("recall_at_10: 0.4100 (>= 0.9) FAILED - ANN misses the exact neighbours",)
    run_id: str = "run-0123"

    def line(self) -> str:
        return f"gate {self.index}: FAILED (1 of 5 checks)"


def test_a_failing_gate_fails_validate_at_once_and_nothing_cuts_over(
    dagbag: Any, airflow_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The DAG's side of a failed gate (the gate itself is tested in tests/integration): the validate task
    fails on its first try with the report, and neither cutover nor stop runs. The lifecycle calls are
    stand-ins and the Spark job is marked done, so this needs no servers."""
    from airflow.sdk.exceptions import AirflowFailException

    from vectorlake.ops import gate, lifecycle

    index = "t-gate_g2"
    cutovers: list[str] = []
    monkeypatch.setattr(lifecycle, "create_generation", lambda cfg, t, i: SimpleNamespace(index=index))
    monkeypatch.setattr(gate, "validate", lambda cfg, idx: FailedGate(idx))
    monkeypatch.setattr(lifecycle, "cutover", lambda cfg, idx: cutovers.append(idx))

    dag = dagbag.get_dag("embedding_reindex")
    failed = r"t-gate_g2 failed the validation gate: recall_at_10"
    with pytest.raises(AirflowFailException, match=failed) as e:
        dag.get_task("validate").python_callable(index)
    assert "run-0123" in str(e.value) and "FAILED (1 of 5 checks)" in str(e.value)

    conf = {"text_model_version": "2", "image_model_version": None, "auto_cutover": True}
    run, _ = _dag_test(dagbag, "embedding_reindex", conf, mark_success_pattern="reindex")

    assert _task_states(run) == {
        "create_generation": "success",
        "reindex": "success",
        "validate": "failed",
        "cutover_or_stop": "upstream_failed",
        "cutover": "upstream_failed",
        "stop": "upstream_failed",
    }
    assert run.state == "failed"
    (validate,) = [ti for ti in run.get_task_instances() if ti.task_id == "validate"]
    assert validate.try_number == 1  # no retry of a gate verdict
    assert cutovers == []


def test_data_quality_passes_on_the_streamed_lake_and_records_its_verdicts(
    dagbag: Any, streamed: Streamed
) -> None:
    from vectorlake.control import quality_baselines_table, quality_results_table

    run, seconds = _dag_test(dagbag, "data_quality", {"write_baseline": True})
    print(f"data_quality dag.test: {seconds:.1f} s")

    assert _task_states(run) == {"bronze": "success", "silver": "success", "embeddings": "success"}
    assert run.state == "success"
    rows = [r for r in quality_results_table(streamed.cfg).rows() if r["run_id"] == run.run_id]
    assert {r["suite"] for r in rows} == {
        "bronze_listing_changes",
        "bronze_media",
        "bronze_seller_policy",
        "silver_listings",
        "embeddings",
    }
    assert all(r["status"] in ("passed", "skipped") for r in rows), [
        r for r in rows if r["status"] == "failed"
    ]
    assert {r["table"] for r in rows if r["suite"] == "silver_listings"} == {"silver/listings"}
    assert all(r["rows"] > 0 for r in rows if r["suite"] in ("silver_listings", "embeddings"))
    assert quality_baselines_table(streamed.cfg).rows(), "write_baseline stored the distribution"


def test_gdpr_purge_erases_a_requested_listing_everywhere_and_nothing_else(
    dagbag: Any, streamed: Streamed, spark: Any
) -> None:
    """The whole gdpr_purge DAG, its spark-submit of jobs/gdpr_purge.py included: a listing requested for
    erasure leaves silver and every generation, the request ends verified, everyone else is unchanged."""
    from vectorlake.control import requests_table
    from vectorlake.index import generations
    from vectorlake.ops import erasure

    cfg, tables = streamed.cfg, streamed.tables
    docs_before, versions_before = index_documents(cfg)
    gone = sorted(docs_before)[-1]
    silver_before = _silver_states(spark, tables)
    assert gone in silver_before
    request = erasure.record_request(cfg, "listing", gone)

    run, seconds = _dag_test(dagbag, "gdpr_purge", {})
    print(f"gdpr_purge dag.test: {seconds:.1f} s")

    assert _task_states(run) == {"purge": "success", "check_deadline": "success"}
    assert run.state == "success"
    row = {r["request_id"]: r for r in requests_table(cfg).rows()}[request.request_id]
    assert row["status"] == "done" and row["subject_id"] is None
    silver_after = _silver_states(spark, tables)
    assert gone not in silver_after
    assert silver_after == {lid: s for lid, s in silver_before.items() if lid != gone}
    assert index_documents(cfg)[1] == {lid: v for lid, v in versions_before.items() if lid != gone}
    client = _client(cfg)
    try:
        family = generations.generations(client, cfg.index.alias)
    finally:
        client.close()
    for index in family:  # the live generation, and the rollback target when the reindex test made one
        assert gone not in index_documents(cfg, index)[0], index
