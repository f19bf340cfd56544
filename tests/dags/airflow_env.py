"""What the DAG tests share: the DAGs folder, its DAG ids, and the Airflow settings they run under."""

from __future__ import annotations

import os
from pathlib import Path

from vectorlake.config import PROJECT_ROOT, load_config
from vectorlake.stack import airflow as airflow_stack

DAGS_FOLDER = PROJECT_ROOT / "dags"
BUNDLE = "dags-folder"  # the bundle Airflow makes of [core] dags_folder
DAG_IDS = {
    "listing_backfill",
    "embedding_reindex",
    "embedding_rollback",
    "index_retention",
    "warehouse_history",
    "gdpr_erasure_request",
    "gdpr_purge",
    "data_quality",
    "search_canary",
}


def airflow_environment(home: Path) -> dict[str, str]:
    """The stack's Airflow settings (DAGs folder, executor, auth, spark_default, PATH) under ``home``."""
    cfg = load_config(environ={**os.environ, "VECTORLAKE__AIRFLOW__HOME": str(home)})
    env = airflow_stack.environment(cfg)
    return {k: v for k, v in env.items() if not k.startswith("AIRFLOW__API__")}
