"""
### index_retention

Daily: deletes the retired index generations older than `index.retention_hours` (48 h by default), the
window in which `embedding_rollback` can still return to them. Live and building generations are never
touched. Returns (XCom) the names of the deleted indexes.
"""

from __future__ import annotations

import logging

from airflow.sdk import dag, task
from dag_common import DEFAULT_ARGS, START_DATE

log = logging.getLogger(__name__)


@dag(
    schedule="@daily",
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    doc_md=__doc__,
    tags=["vectorlake", "index", "maintenance"],
    default_args=DEFAULT_ARGS,
)
def index_retention() -> None:
    @task
    def retention() -> list[str]:
        from vectorlake.config import load_config
        from vectorlake.ops import lifecycle

        deleted = [str(name) for name in lifecycle.retention(load_config())]
        log.info("deleted %d retired generation(s): %s", len(deleted), ", ".join(deleted) or "none")
        return deleted

    retention()


index_retention()
