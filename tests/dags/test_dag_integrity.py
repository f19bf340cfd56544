"""The DAGs folder loads with no import errors, does no work at import, and every DAG follows the house
rules (STYLE.md rule 4): doc_md, tags, retries >= 2, catchup off, a UTC start date, typed Params for the
manual ones, the intended schedule and task graph. No servers needed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.dags.airflow_env import BUNDLE, DAG_IDS, DAGS_FOLDER
from vectorlake.config import PROJECT_ROOT

SCHEDULES: dict[str, str | None] = {
    "listing_backfill": None,
    "embedding_reindex": None,
    "embedding_rollback": None,
    "index_retention": "@daily",
    "warehouse_history": "@hourly",
    "gdpr_erasure_request": None,
    "gdpr_purge": "@hourly",
    "data_quality": "@hourly",
    "search_canary": "@daily",
}
# Modules a DAG file must not pull in at parse time (the DAG processor parses every file every 30 s).
HEAVY = {"pyspark", "delta", "torch", "sentence_transformers", "open_clip", "mlflow", "opensearchpy",
         "confluent_kafka", "pandas", "numpy", "duckdb", "dbt", "great_expectations", "boto3"}  # fmt: skip


def test_the_dags_folder_loads_every_dag_with_no_import_errors(dagbag: Any) -> None:
    assert dagbag.import_errors == {}
    assert set(dagbag.dag_ids) == DAG_IDS


@pytest.mark.parametrize("dag_id", sorted(DAG_IDS))
def test_every_dag_follows_the_house_rules(dagbag: Any, dag_id: str) -> None:
    dag = dagbag.get_dag(dag_id)
    assert dag.doc_md and f"### {dag_id}" in dag.doc_md  # the doc is this DAG's own
    assert "vectorlake" in dag.tags and len(dag.tags) >= 2
    assert dag.default_args["retries"] >= 2
    assert all(task.retries >= 2 for task in dag.tasks), [(t.task_id, t.retries) for t in dag.tasks]
    assert dag.catchup is False
    assert dag.start_date.utcoffset() == timedelta(0) and dag.start_date.tzinfo.name == "UTC"
    assert dag.schedule == SCHEDULES[dag_id]
    assert dag.max_active_runs == 1
    if SCHEDULES[dag_id] is None:
        assert dag.is_paused_upon_creation is False  # manual only: a trigger runs without unpausing
    else:
        assert dag.is_paused_upon_creation is not False  # scheduled: stays paused until switched on
    for name, param in dag.params.items():
        assert "type" in param.schema, f"{dag_id}.{name} has no type"
        assert param.description, f"{dag_id}.{name} has no description for the trigger form"


def test_listing_backfill_params_validate_the_trigger_form(dagbag: Any) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    params = dagbag.get_dag("listing_backfill").params
    for bound in ("start", "end"):
        param = params.get_param(bound)
        assert param.schema["type"] == "string" and param.schema["format"] == "date-time"
        with pytest.raises(ParamValidationError):
            param.resolve()  # required: no default, the form must fill it in
        assert param.resolve("2026-11-01T00:00:00+00:00") == "2026-11-01T00:00:00+00:00"
    target = params.get_param("target")
    assert target.schema["enum"] == ["silver", "index", "both"] and target.resolve() == "both"
    assert target.resolve("index") == "index"
    with pytest.raises(ParamValidationError):
        target.resolve("gold")


def test_embedding_reindex_params_validate_the_trigger_form(dagbag: Any) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    params = dagbag.get_dag("embedding_reindex").params
    for role in ("text", "image"):
        version = params.get_param(f"{role}_model_version")
        assert version.resolve() is None  # null: the champion alias
        assert version.resolve("2") == "2"
        with pytest.raises(ParamValidationError):
            version.resolve(2)
    auto = params.get_param("auto_cutover")
    assert auto.resolve() is False and auto.resolve(True) is True
    with pytest.raises(ParamValidationError):
        auto.resolve("yes")


def _edges(dag: Any) -> set[tuple[str, str]]:
    return {(up, t.task_id) for t in dag.tasks for up in t.upstream_task_ids}


def test_embedding_reindex_builds_then_validates_then_cuts_over_or_stops(dagbag: Any) -> None:
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator
    from airflow.sdk import XComArg

    dag = dagbag.get_dag("embedding_reindex")
    assert {t.task_id for t in dag.tasks} == {
        "create_generation",
        "reindex",
        "validate",
        "cutover_or_stop",
        "cutover",
        "stop",
    }
    assert {
        ("create_generation", "reindex"),
        ("reindex", "validate"),
        ("validate", "cutover_or_stop"),
        ("cutover_or_stop", "cutover"),
        ("cutover_or_stop", "stop"),
    } <= _edges(dag)
    reindex = dag.get_task("reindex")
    assert isinstance(reindex, SparkSubmitOperator)
    assert reindex.application == str(PROJECT_ROOT / "jobs" / "reindex.py")
    assert Path(reindex.application).is_file()
    flag, generation, no_validate = reindex.application_args
    assert (flag, no_validate) == ("--generation", "--no-validate")
    assert isinstance(generation, XComArg) and generation.operator.task_id == "create_generation"


def test_listing_backfill_submits_the_backfill_job_with_its_params(dagbag: Any) -> None:
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    dag = dagbag.get_dag("listing_backfill")
    (task,) = dag.tasks
    assert isinstance(task, SparkSubmitOperator)
    assert task.application == str(PROJECT_ROOT / "jobs" / "backfill.py")
    assert Path(task.application).is_file()
    assert task.application_args == [
        "--from",
        "{{ params.start }}",
        "--to",
        "{{ params.end }}",
        "--target",
        "{{ params.target }}",
    ]


@pytest.mark.parametrize("dag_id", ["listing_backfill", "embedding_reindex"])
def test_spark_submit_settings_are_computed_when_the_task_renders(dagbag: Any, dag_id: str) -> None:
    """The jars come from the config at render time; the job runs on this venv's Python and spark-submit."""
    from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

    dag = dagbag.get_dag(dag_id)
    (task,) = [t for t in dag.tasks if isinstance(t, SparkSubmitOperator)]
    assert task.jars == "{{ spark_jars() }}"
    assert task.env_vars == {
        "PYSPARK_PYTHON": "{{ python() }}",
        "PYSPARK_DRIVER_PYTHON": "{{ python() }}",
        "PATH": "{{ search_path() }}",
    }
    macros = dag.user_defined_macros
    jars = macros["spark_jars"]().split(",")
    assert any("delta-spark" in Path(j).name for j in jars) and all(Path(j).is_file() for j in jars)
    assert macros["python"]() == sys.executable
    first = macros["search_path"]().split(os.pathsep)[0]
    assert (Path(first) / "spark-submit").is_file() and (Path(first) / "python").is_file()


def test_parsing_the_dag_files_is_fast_and_imports_nothing_heavy(airflow_home: Path) -> None:
    """In a fresh interpreter (this one has Spark loaded): what parsing the DAGs folder costs and pulls in."""
    code = f"""
import json, sys, time
from airflow.dag_processing.dagbag import BundleDagBag
before = set(sys.modules)
t0 = time.monotonic()
bag = BundleDagBag(dag_folder={str(DAGS_FOLDER)!r}, bundle_path={str(DAGS_FOLDER)!r}, bundle_name={BUNDLE!r})
seconds = time.monotonic() - t0
new = sorted({{m.split(".")[0] for m in set(sys.modules) - before}})
errors = list(bag.import_errors)
print(json.dumps({{"seconds": seconds, "dags": sorted(bag.dag_ids), "errors": errors, "new": new}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-3000:]
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert result["errors"] == [] and set(result["dags"]) == DAG_IDS
    assert not HEAVY & set(result["new"]), result["new"]
    assert result["seconds"] < 10, result  # measured about 0.3 s for the five files
