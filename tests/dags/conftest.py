"""Airflow for the DAG tests: an isolated AIRFLOW_HOME (a temp folder, `airflow db migrate`d once per session)
whose DAGs folder is the repository's dags/, with the same AIRFLOW__* settings `stack up --with airflow`
uses. No Airflow server is needed: DagBag and dag.test() run in this process. The dag.test() runs that
submit Spark jobs need the local stack (OpenSearch, mlflow) and fail loudly when it is down.

Airflow reads its config when first imported, so nothing here imports it before the session fixture has
set the environment; a test session that imported Airflow earlier with other settings fails with a reason.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dags.airflow_env import BUNDLE, DAGS_FOLDER, airflow_environment
from vectorlake.stack.process import venv_bin


@pytest.fixture(scope="session")
def airflow_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    home = tmp_path_factory.mktemp("airflow-home")
    env = airflow_environment(home)
    if "airflow" in sys.modules:
        from airflow.configuration import conf

        if Path(conf.get("core", "dags_folder")) != DAGS_FOLDER:
            pytest.fail(
                f"Airflow was imported before tests/dags set its environment (dags_folder is "
                f"{conf.get('core', 'dags_folder')}); run tests/dags in a session that imports it later",
                pytrace=False,
            )
    patch = pytest.MonkeyPatch()
    for key, value in env.items():
        patch.setenv(key, value)
    migrated = subprocess.run(
        [str(venv_bin() / "airflow"), "db", "migrate"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    if migrated.returncode != 0:
        patch.undo()
        pytest.fail(f"`airflow db migrate` failed in {home}:\n{migrated.stdout[-3000:]}", pytrace=False)
    yield home
    patch.undo()


@pytest.fixture(scope="session")
def dagbag(airflow_home: Path) -> Any:
    """The DAGs folder loaded as the DAG processor loads it (as a bundle, its folder on sys.path), with
    config loading, Spark sessions and OpenSearch clients made to raise: a DAG file that does work at
    import shows up as an import error."""
    from unittest import mock

    from airflow.dag_processing.dagbag import BundleDagBag

    def no_work(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("a DAG file did work at import (config, Spark or OpenSearch)")

    with (
        mock.patch("vectorlake.config.load_config", no_work),
        mock.patch("vectorlake.spark.build_session", no_work),
        mock.patch("vectorlake.index.client.make_client", no_work),
        mock.patch("opensearchpy.OpenSearch.__init__", no_work),
    ):
        return BundleDagBag(dag_folder=DAGS_FOLDER, bundle_path=DAGS_FOLDER, bundle_name=BUNDLE)
