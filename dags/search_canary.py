"""
### search_canary

Daily: the generator's labelled queries (`gate.labelled_queries`) against the live index generation
(`vectorlake canary`). Records recall@10 (HNSW against exact search) and hit@10 (a relevant listing in the
top 10) as an mlflow run (experiment `vectorlake-canary`), and fails when either is more than
`gate.max_canary_drop` (two points) below the generation's baseline: HNSW recall decays silently under
continuous deletes. A generation's first run records its baseline; trigger with **write_baseline** on to
record a new one (after a cutover). A failed check fails the task without retries (running it again does
not fix the index).
"""

from __future__ import annotations

import logging

from airflow.sdk import Param, dag, task
from dag_common import DEFAULT_ARGS, START_DATE

log = logging.getLogger(__name__)


@dag(
    schedule="@daily",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["vectorlake", "index", "search"],
    default_args=DEFAULT_ARGS,
    params={
        "write_baseline": Param(
            False,
            type="boolean",
            description="Record this run as the live generation's baseline (after a cutover).",
        ),
    },
)
def search_canary() -> None:
    @task
    def canary(params: dict[str, object] | None = None) -> list[str]:
        from airflow.sdk.exceptions import AirflowFailException

        from vectorlake.config import load_config
        from vectorlake.ops import canary as search

        report = search.run(load_config(), write_baseline=bool((params or {}).get("write_baseline")))
        lines = report.lines()
        for line in lines:
            log.info("%s", line)
        if not report.passed:
            raise AirflowFailException("; ".join(lines))
        return lines

    canary()


search_canary()
