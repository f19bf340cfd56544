"""Airflow 3 standalone as an optional server of the local stack: `vectorlake stack up --with airflow`.

``airflow standalone`` runs the api-server, scheduler, dag-processor and triggerer under one parent process,
with the LocalExecutor and a SQLite metadata database under ``airflow.home`` (default
``<stack.state_dir>/airflow``). The DAGs folder is the repository's ``dags/``; the example DAGs stay out.
Tasks run in this venv and inherit the environment ``stack up`` ran in (``VECTORLAKE_*`` included), so
they load the same config as the CLI. The simple auth manager writes the admin password to
``$AIRFLOW_HOME/simple_auth_manager_passwords.json.generated``; `stack status --with airflow` shows it.
"""

from __future__ import annotations

import json
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from vectorlake.config import PROJECT_ROOT, Config
from vectorlake.stack.process import ServerSpec, venv_bin

NAME = "airflow"
GENERATED_LOGINS = "simple_auth_manager_passwords.json.generated"  # written by the api-server
SIMPLE_AUTH_MANAGER = "airflow.api_fastapi.auth.managers.simple.simple_auth_manager.SimpleAuthManager"
COMPONENTS = ("metadatabase", "scheduler", "triggerer", "dag_processor")


@dataclass(frozen=True)
class AdminLogin:
    """Where to log in and with what; the password is None until the api-server has generated it."""

    url: str
    user: str
    password: str | None
    password_file: Path


def base_url(cfg: Config) -> str:
    return f"http://{cfg.stack.host}:{cfg.airflow.port}"


def dags_folder() -> Path:
    return PROJECT_ROOT / "dags"


def spark_connection(cfg: Config) -> str:
    """AIRFLOW_CONN_SPARK_DEFAULT: SparkSubmitOperator's master, the local one from config (local[2])."""
    return json.dumps({"conn_type": "spark", "host": cfg.spark.master or "local[2]"})


def environment(cfg: Config) -> dict[str, str]:
    """Airflow's settings for the local stack, as AIRFLOW__* variables (they win over airflow.cfg)."""
    home = cfg.airflow_home
    url = base_url(cfg)
    python = str(venv_bin() / "python")
    return {
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags_folder()),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
        "AIRFLOW__CORE__PARALLELISM": str(cfg.airflow.parallelism),
        "AIRFLOW__CORE__AUTH_MANAGER": SIMPLE_AUTH_MANAGER,
        "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{cfg.airflow.admin_user}:admin",
        "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
        "AIRFLOW__API__HOST": cfg.stack.host,
        "AIRFLOW__API__PORT": str(cfg.airflow.port),
        # tasks reach the execution API at <base_url>/execution/: it must name the port actually bound
        "AIRFLOW__API__BASE_URL": url,
        "AIRFLOW__API__WORKERS": "1",  # one uvicorn worker: two cores, shared with Spark and OpenSearch
        "AIRFLOW__SCHEDULER__ENABLE_HEALTH_CHECK": "False",
        # a loaded api-server can take over 10 s to mark a task running; with the default 5 s the worker
        # retries, gets "already running" (400) and kills its own task
        "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
        # `airflow standalone` starts its components as `airflow ...` from PATH; spark-submit is found there
        "PATH": f"{venv_bin()}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYSPARK_PYTHON": python,
        "PYSPARK_DRIVER_PYTHON": python,
        "AIRFLOW_CONN_SPARK_DEFAULT": spark_connection(cfg),
    }


def admin_login(cfg: Config) -> AdminLogin:
    """The admin user from config and the password the simple auth manager generated for it."""
    path = cfg.airflow_home / GENERATED_LOGINS
    try:
        passwords = json.loads(path.read_text())
    except (OSError, ValueError):
        passwords = {}
    password = passwords.get(cfg.airflow.admin_user) if isinstance(passwords, dict) else None
    return AdminLogin(base_url(cfg), cfg.airflow.admin_user, password, path)


def _get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback URL from config
        return json.loads(resp.read())


def spec(cfg: Config) -> ServerSpec:
    home = cfg.airflow_home
    host, port = cfg.stack.host, cfg.airflow.port
    url = base_url(cfg)
    airflow = venv_bin() / "airflow"

    def health() -> str:
        # the api-server's monitor endpoint reports the database and each component's heartbeat
        health = _get_json(f"{url}/api/v2/monitor/health")
        version = _get_json(f"{url}/api/v2/version")
        assert isinstance(health, dict) and isinstance(version, dict)
        states = {c: (health.get(c) or {}).get("status") for c in COMPONENTS}
        down = [f"{c} {s or 'missing'}" for c, s in states.items() if s != "healthy"]
        if down:
            raise RuntimeError(f"not every component is healthy: {', '.join(down)}")
        return f"Airflow {version.get('version')}, {', '.join(COMPONENTS)} healthy"

    return ServerSpec(
        name=NAME,
        address=url,
        host=host,
        ports={"airflow.port": port},
        command=[str(airflow), "standalone"],
        env=environment(cfg),
        workdir=home,
        log_path=home / "standalone.log",
        pid_path=home / "standalone.pid",
        health=health,
        prepare=lambda: home.mkdir(parents=True, exist_ok=True),
        installed=airflow.exists,
        # Airflow runs as root without complaint (unlike OpenSearch): no run_as, its files stay the caller's
    )
