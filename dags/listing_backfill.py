"""
### listing_backfill

Replays the bronze events of a time range into silver (an idempotent event-time merge) and/or re-indexes
the listings that changed in that range, with one `spark-submit` of `jobs/backfill.py`:

    jobs/backfill.py --from START --to END --target silver|index|both

**Params** (the trigger form):

| param | type | meaning |
|---|---|---|
| `start` | ISO-8601 date-time with a zone | first event time of the range (inclusive) |
| `end` | ISO-8601 date-time with a zone | end of the range |
| `target` | `silver`, `index` or `both` (default) | what to rebuild |

A rerun of the same range is harmless: silver merges by (event time, event id) and the index writes
carry external versions, so replays converge. Runs on connection `spark_default` (the local stack points
it at `local[2]`); the job reads the vectorlake config the Airflow processes were started with.
"""

from __future__ import annotations

from airflow.sdk import Param, dag
from dag_common import DEFAULT_ARGS, MACROS, START_DATE, spark_job


@dag(
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=False,  # manual only: unpaused, so a trigger from the UI form runs at once
    doc_md=__doc__,
    tags=["vectorlake", "lake", "index", "spark"],
    default_args=DEFAULT_ARGS,
    user_defined_macros=MACROS,
    params={
        "start": Param(
            type="string",
            format="date-time",
            title="From",
            description="First event time of the range, ISO-8601 with a zone (e.g. 2026-11-01T00:00:00Z).",
        ),
        "end": Param(
            type="string",
            format="date-time",
            title="To",
            description="End of the range, ISO-8601 with a zone.",
        ),
        "target": Param(
            "both",
            type="string",
            enum=["silver", "index", "both"],
            title="Target",
            description="silver: replay bronze into silver; index: re-index the listings changed in the "
            "range; both: silver, then index.",
        ),
    },
)
def listing_backfill() -> None:
    spark_job(
        "backfill",
        "backfill.py",
        ["--from", "{{ params.start }}", "--to", "{{ params.end }}", "--target", "{{ params.target }}"],
    )


listing_backfill()
