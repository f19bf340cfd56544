"""dag.test() of the GDPR DAGs: the intake DAG records a request from its Params, and gdpr_purge's deadline
check fails the run (without retries) on a request older than erasure.deadline_hours that is not verified.

The purge itself (`jobs/gdpr_purge.py`, the same code as `vectorlake purge`) is tested against the real
stack in tests/integration/test_erasure.py; here its spark-submit task is marked done, so these runs need
no servers: the control tables live in a temp lake (delta-rs, no Spark).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from vectorlake.config import Config, load_config
from vectorlake.ops import erasure


@pytest.fixture
def lake_cfg(airflow_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Config:
    """The tasks load the config themselves, as in production: the temp lake reaches them by the env."""
    monkeypatch.setenv("VECTORLAKE__LAKE__ROOT", str(tmp_path / "lake"))
    return load_config()


def _states(run: Any) -> dict[str, str | None]:
    return {ti.task_id: (str(ti.state) if ti.state else None) for ti in run.get_task_instances()}


def _requests(cfg: Config) -> dict[str, dict[str, Any]]:
    from vectorlake.control import requests_table

    return {r["request_id"]: r for r in requests_table(cfg).rows()}


def test_the_intake_dag_records_one_pending_request_per_subject(dagbag: Any, lake_cfg: Config) -> None:
    dag = dagbag.get_dag("gdpr_erasure_request")
    conf = {"subject_type": "seller", "subject_id": "seller-dag-1"}
    run = dag.test(run_conf=conf)
    assert _states(run) == {"record": "success"} and run.state == "success"
    dag.test(run_conf=conf)  # a second trigger: the same request

    rid = erasure.request_id_for("seller", "seller-dag-1")
    rows = _requests(lake_cfg)
    assert list(rows) == [rid]
    assert rows[rid]["status"] == "pending" and rows[rid]["subject_id"] == "seller-dag-1"
    assert rows[rid]["subject_hash"] == erasure.subject_hash("seller", "seller-dag-1")


def test_the_intake_dag_rejects_an_unknown_subject_type(dagbag: Any) -> None:
    from airflow.sdk.exceptions import ParamValidationError

    params = dagbag.get_dag("gdpr_erasure_request").params
    kind = params.get_param("subject_type")
    assert kind.schema["enum"] == ["seller", "listing"] and kind.resolve("listing") == "listing"
    with pytest.raises(ParamValidationError):
        kind.resolve("buyer")
    subject = params.get_param("subject_id")
    with pytest.raises(ParamValidationError):
        subject.resolve()  # required: no default (first: a resolved value is remembered)
    for bad in ("", "two words"):
        with pytest.raises(ParamValidationError):
            subject.resolve(bad)
    assert subject.resolve("seller-7") == "seller-7"


def test_gdpr_purge_fails_loudly_on_an_overdue_request_only(dagbag: Any, lake_cfg: Config) -> None:
    from vectorlake.control import requests_table

    dag = dagbag.get_dag("gdpr_purge")
    young = erasure.record_request(lake_cfg, "listing", "listing-young")
    run = dag.test(mark_success_pattern="^purge$")
    assert _states(run) == {"purge": "success", "check_deadline": "success"}
    assert run.state == "success"

    old = erasure.record_request(
        lake_cfg, "seller", "seller-old", now=datetime.now(UTC) - timedelta(hours=61)
    )
    assert requests_table(lake_cfg).rows()  # both pending
    run = dag.test(mark_success_pattern="^purge$")
    assert _states(run) == {"purge": "success", "check_deadline": "failed"}
    assert run.state == "failed"
    (check,) = [ti for ti in run.get_task_instances() if ti.task_id == "check_deadline"]
    assert check.try_number == 1  # no retries for a missed deadline
    with pytest.raises(erasure.ErasureOverdue, match=old.request_id) as e:
        erasure.check_deadline(lake_cfg)
    assert young.request_id not in str(e.value) and "seller-old" not in str(e.value)
