"""
### gdpr_purge

Hourly: carries out every pending GDPR/CCPA erasure request (`vectorlake purge`, one `spark-submit` of
`jobs/gdpr_purge.py`): the subject is erased from bronze, quarantine, silver, gold, the landing files, the S3
image objects (every version), every index generation and the warehouse; Delta history is vacuumed; each
request is verified by a scan of every store, then marked done with its `subject_id` cleared. What was
removed is in `control/erasure_log` (hashes and counts only).

Then `check_deadline` fails the run, without retries, when any request older than
`erasure.deadline_hours` (60 h) is still not verified: 12 hours left of the 72 h the law allows. It runs
even when the purge failed, so an overdue request is reported either way. Intake: the `gdpr_erasure_request`
DAG or `vectorlake erase`.
"""

from __future__ import annotations

import logging

from airflow.sdk import dag, task
from dag_common import DEFAULT_ARGS, MACROS, START_DATE, spark_job

log = logging.getLogger(__name__)


@dag(
    schedule="@hourly",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["vectorlake", "gdpr", "lake", "index", "spark"],
    default_args=DEFAULT_ARGS,
    user_defined_macros=MACROS,
)
def gdpr_purge() -> None:
    purge = spark_job("purge", "gdpr_purge.py", ["--no-deadline-check"])

    @task(trigger_rule="all_done")
    def check_deadline() -> None:
        from airflow.sdk.exceptions import AirflowFailException

        from vectorlake.config import load_config
        from vectorlake.ops import erasure

        try:
            erasure.check_deadline(load_config())
        except erasure.ErasureOverdue as e:
            raise AirflowFailException(str(e)) from e  # a deadline is not fixed by retrying

    purge >> check_deadline()


gdpr_purge()
