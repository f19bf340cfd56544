"""
### gdpr_erasure_request

Records a GDPR/CCPA erasure request for a seller (and every listing it ever named) or one listing, as
`vectorlake erase --seller ID | --listing ID` does; the hourly `gdpr_purge` DAG
(dags/gdpr_purge_hourly.py) carries it out. Triggering twice for the same subject records one request.
Returns (XCom) the request id, which holds no personal data.

**Params** (the trigger form):

| param | type | meaning |
|---|---|---|
| `subject_type` | `seller` or `listing` | what is to be erased |
| `subject_id` | string | the seller's or listing's id |

The subject id stays in this run's conf in the Airflow metadata database: `airflow db clean` (run by the
platform's retention job) removes old runs; see the runbook.
"""

from __future__ import annotations

from airflow.sdk import Param, dag, task
from dag_common import DEFAULT_ARGS, START_DATE


@dag(
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=False,  # manual only: unpaused, so a trigger from the UI form runs at once
    doc_md=__doc__,
    tags=["vectorlake", "gdpr"],
    default_args=DEFAULT_ARGS,
    params={
        "subject_type": Param(
            "seller",
            type="string",
            enum=["seller", "listing"],
            title="Subject type",
            description="seller: the seller and every listing it ever named; listing: one listing.",
        ),
        "subject_id": Param(
            type="string",
            minLength=1,
            pattern=r"^\S+$",
            title="Subject id",
            description="The seller's or the listing's id, exactly as in the events.",
        ),
    },
)
def gdpr_erasure_request() -> None:
    @task
    def record(subject_type: str, subject_id: str) -> str:
        from vectorlake.config import load_config
        from vectorlake.ops import erasure

        return erasure.record_request(load_config(), subject_type, subject_id).request_id

    record("{{ params.subject_type }}", "{{ params.subject_id }}")


gdpr_erasure_request()
