"""What every vectorlake DAG shares: default args, the start date, and the spark-submit task factory.

Not a DAG file (`.airflowignore` keeps the DAG processor from parsing it); the DAG files import it from
the DAGs folder, which Airflow puts on ``sys.path``. Nothing here reads the config at import: the jars
and the Python for spark-submit are macros, computed when a task's templates are rendered.
"""

from __future__ import annotations

import os
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from airflow.providers.apache.spark.operators.spark_submit import SparkSubmitOperator

JOBS_DIR = Path(__file__).resolve().parent.parent / "jobs"

START_DATE = datetime(2026, 11, 1, tzinfo=UTC)
DEFAULT_ARGS: dict[str, Any] = {
    "owner": "vectorlake",
    "retries": 2,
    "retry_delay": timedelta(minutes=2),
    "retry_exponential_backoff": True,
}


def spark_jars() -> str:
    """The cached Delta and Kafka jars, comma-separated, for spark-submit's --jars (empty on a cluster
    that provides them: `spark.jars_dir: null`)."""
    from vectorlake.config import load_config
    from vectorlake.spark import cached_jars

    return ",".join(cached_jars(load_config().spark.jars_dir))


def python() -> str:
    """The interpreter tasks run in (the project's venv): Spark's driver and workers must use it too."""
    return sys.executable


def search_path() -> str:
    """PATH with the venv's bin first, where `spark-submit` is."""
    return f"{Path(sys.executable).parent}{os.pathsep}{os.environ.get('PATH', '')}"


# Handed to every DAG that submits Spark jobs as `user_defined_macros`; rendered when the task runs.
MACROS: dict[str, Any] = {"spark_jars": spark_jars, "python": python, "search_path": search_path}


def spark_job(task_id: str, script: str, args: list[Any]) -> SparkSubmitOperator:
    """A spark-submit of ``jobs/<script>`` on connection ``spark_default`` (the stack sets it to the local
    master; on a cluster it names the cluster), with the project's Python and cached jars."""
    return SparkSubmitOperator(
        task_id=task_id,
        application=str(JOBS_DIR / script),
        application_args=args,
        conn_id="spark_default",
        name=f"vectorlake-{task_id}",
        jars="{{ spark_jars() }}",
        env_vars={
            "PYSPARK_PYTHON": "{{ python() }}",
            "PYSPARK_DRIVER_PYTHON": "{{ python() }}",
            "PATH": "{{ search_path() }}",
        },
    )
