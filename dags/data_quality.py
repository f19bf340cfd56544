"""
### data_quality

Hourly: the great-expectations suites in `expectations/` over samples of the lake tables (`vectorlake
quality`): **bronze** (the event contract: columns and types, no null explosion in key columns, known ops,
statuses and locales), **silver** (one row per listing, served listings have their fields, locales and
categories from the reference data) and **embeddings** (the model's dimension, unit norm, no NaN, no drift
of each model version's mean vector from its stored baseline). Each expectation's verdict goes to
`control/quality_results` under this run's id, so a retry replaces its rows. A failed suite fails its task
without retries (bad data is not fixed by running the check again).

Trigger with **write_baseline** on to store the current embedding distribution per model version as the
drift baseline (after a model upgrade, once its vectors are in the cache).
"""

from __future__ import annotations

import logging

from airflow.sdk import Param, dag, task
from dag_common import DEFAULT_ARGS, START_DATE

log = logging.getLogger(__name__)


def _check(layer: str, write_baseline: bool = False) -> list[str]:
    """Run the suites of one lake layer (`vectorlake.ops.quality.SUITES_BY_LAYER`, the one list of them)."""
    from airflow.sdk import get_current_context
    from airflow.sdk.exceptions import AirflowFailException

    from vectorlake.config import load_config
    from vectorlake.ops import quality

    run_id = str(get_current_context()["run_id"])
    suites = list(quality.SUITES_BY_LAYER[layer])
    report = quality.run(load_config(), suites, write_baseline=write_baseline, run_id=run_id)
    lines = report.lines()
    for line in lines:
        log.info("%s", line)
    if not report.success:
        failed = [s.line() for s in report.suites if not s.success]
        raise AirflowFailException("; ".join(failed))
    return lines


@dag(
    schedule="@hourly",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["vectorlake", "quality", "lake"],
    default_args=DEFAULT_ARGS,
    params={
        "write_baseline": Param(
            False,
            type="boolean",
            description="Store the current embedding distribution per model version as the drift baseline.",
        ),
    },
)
def data_quality() -> None:
    @task
    def bronze() -> list[str]:
        return _check("bronze")

    @task
    def silver() -> list[str]:
        return _check("silver")

    @task
    def embeddings(params: dict[str, object] | None = None) -> list[str]:
        return _check("embeddings", bool((params or {}).get("write_baseline", False)))

    bronze()
    silver()
    embeddings()


data_quality()
