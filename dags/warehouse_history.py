"""
### warehouse_history

Hourly: the dbt history models over the lake tables (DuckDB locally, Snowflake in production):
**build** runs `dbt snapshot`, `dbt build` and the tests beside the models (which model version embedded
which listing version, and when it became searchable); **docs** runs `dbt docs generate` (lineage).
The same as `vectorlake warehouse build` and `vectorlake warehouse docs`.
"""

from __future__ import annotations

import logging

from airflow.sdk import dag, task
from dag_common import DEFAULT_ARGS, START_DATE

log = logging.getLogger(__name__)


@dag(
    schedule="@hourly",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["vectorlake", "warehouse", "dbt"],
    default_args=DEFAULT_ARGS,
)
def warehouse_history() -> None:
    @task
    def build() -> str:
        from vectorlake import warehouse
        from vectorlake.config import load_config

        line = str(warehouse.build(load_config()).line())
        log.info("%s", line)
        return line

    @task
    def docs() -> str:
        from vectorlake import warehouse
        from vectorlake.config import load_config

        target = warehouse.docs(load_config())
        log.info("dbt docs in %s", target)
        return str(target)

    build() >> docs()


warehouse_history()
