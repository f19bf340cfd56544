"""
### embedding_rollback

Swaps the read alias back to the previous generation in one atomic `_aliases` request, while that
generation still exists (retired generations are kept for `index.retention_hours`, 48 h by default).
The generation that was live becomes the rollback target in turn. No params: trigger it from the UI.
The same as `vectorlake rollback`.
"""

from __future__ import annotations

import logging

from airflow.sdk import dag, task
from dag_common import DEFAULT_ARGS, START_DATE

log = logging.getLogger(__name__)


@dag(
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=False,  # manual only: unpaused, so a trigger from the UI runs at once
    doc_md=__doc__,
    tags=["vectorlake", "index"],
    default_args=DEFAULT_ARGS,
)
def embedding_rollback() -> None:
    @task
    def target() -> str:
        from vectorlake.config import load_config
        from vectorlake.ops import lifecycle

        return str(lifecycle.rollback_target(load_config()))

    @task
    def rollback(to: str) -> str:
        from vectorlake.config import load_config
        from vectorlake.ops import lifecycle

        # naming the target makes a retry after a successful swap a no-op, not a second swap
        line = str(lifecycle.rollback(load_config(), to).line())
        log.info("%s", line)
        return line

    rollback(target())


embedding_rollback()
