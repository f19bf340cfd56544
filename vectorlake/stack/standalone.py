"""A local Spark standalone cluster as an optional part of the stack: `vectorlake stack up --with spark`.

A master and ``standalone.workers`` workers, started from pyspark's own jars (``bin/spark-class``: the
wheel has no ``sbin/`` scripts), bound to ``stack.host`` on the ports in ``standalone:``. Started by root,
the workers and so their executors run as ``stack.run_as`` in their own work folders: an executor cannot
read the driver's private folders (the state folder's data, the model cache), as on separate machines, so
whatever a job's executors need must reach them the way it would on a cluster (an object store, the
artifact store, a path installed on every node). Jobs go there with `vectorlake submit --master
spark://<host>:<master_port>`.
"""

from __future__ import annotations

import importlib.util
import json
import os
import pwd
import subprocess
import sys
import sysconfig
import urllib.request
from pathlib import Path

from vectorlake.config import Config
from vectorlake.errors import StackError
from vectorlake.stack.process import ServerSpec, first_untraversable
from vectorlake.stack.servers import java_home

NAME = "spark"
MASTER_CLASS = "org.apache.spark.deploy.master.Master"
WORKER_CLASS = "org.apache.spark.deploy.worker.Worker"


def spark_home() -> Path:
    """pyspark's install folder, a whole Spark home (bin/spark-class, jars/); found without importing it."""
    found = importlib.util.find_spec("pyspark")
    if found is None or found.origin is None:
        raise StackError("pyspark is not installed in this environment; run `make setup` first")
    return Path(found.origin).parent


def _get_json(url: str) -> dict[str, object]:
    with urllib.request.urlopen(url, timeout=5) as resp:  # noqa: S310 - loopback URL from config
        found = json.loads(resp.read())
    if not isinstance(found, dict):
        raise RuntimeError(f"{url} answered {type(found).__name__}, not an object")
    return found


def master_state(cfg: Config) -> dict[str, object]:
    """The master's own account of the cluster (its web UI's JSON): status, alive workers, applications."""
    return _get_json(f"http://{cfg.stack.host}:{cfg.standalone.webui_port}/json/")


def _environment(cfg: Config, base: Path) -> dict[str, str]:
    return {
        "JAVA_HOME": str(java_home(cfg)),
        "SPARK_HOME": str(spark_home()),
        "SPARK_LOCAL_IP": cfg.stack.host,
        "SPARK_LOG_DIR": str(base),
        "SPARK_DAEMON_MEMORY": "512m",
        "SPARK_CONF_DIR": str(base / "conf"),  # empty: no spark-defaults from anywhere else
    }


def node_environment(cfg: Config) -> Path:
    """The Python the workers' executors run (`Config.standalone_python`), made once.

    The workers' user cannot always run this venv's interpreter (a venv links to its base Python, which
    may live in root's home), just as another machine would not have it. So, as a cluster image would,
    the nodes get an environment of their own: a venv (no pip) made from a Python of the same minor
    version that the user can run, which sees this venv's packages through a .pth file.
    """
    python = Path(cfg.standalone_python)
    if python.exists():
        return python
    base = _runnable_python(cfg)
    env = python.parent.parent
    subprocess.run([str(base), "-m", "venv", "--without-pip", str(env)], check=True, capture_output=True)
    purelib = Path(sysconfig.get_paths()["purelib"])  # this venv's site-packages
    site = next((env / "lib").glob("python3*/site-packages"))
    (site / "vectorlake-venv.pth").write_text(f"import site; site.addsitedir({str(purelib)!r})\n")
    return python


def _runnable_python(cfg: Config) -> Path:
    """A python3.X (this one's minor version) that the workers' user can run."""
    name = f"python{sys.version_info.major}.{sys.version_info.minor}"
    user = cfg.stack.run_as if os.geteuid() == 0 else None
    uid = pwd.getpwnam(user).pw_uid if user else os.geteuid()
    candidates = [
        Path(sys.base_prefix) / "bin" / name,
        Path("/usr/bin") / name,
        Path("/usr/local/bin") / name,
    ]
    for candidate in candidates:
        real = candidate.resolve()
        if real.is_file() and first_untraversable(real, uid) is None and real.stat().st_mode & 0o001:
            return real
    raise StackError(
        f"the Spark workers run as '{user}', who can run none of {', '.join(map(str, candidates))}; "
        f"install {name} where every user can run it (e.g. apt-get install {name})"
    )


def master(cfg: Config) -> ServerSpec:
    sc, host = cfg.standalone, cfg.stack.host
    base = cfg.state_dir / "spark" / "master"
    spark_class = spark_home() / "bin" / "spark-class"

    def health() -> str:
        found = master_state(cfg)
        if found.get("status") != "ALIVE":
            raise RuntimeError(f"master status {found.get('status')}")
        return f"Spark master {cfg.standalone_master_url}, {found.get('aliveworkers')} worker(s) alive"

    def prepare() -> None:
        (base / "conf").mkdir(parents=True, exist_ok=True)
        node_environment(cfg)  # before any worker can be sent an application

    return ServerSpec(
        name="spark-master",
        address=cfg.standalone_master_url,
        host=host,
        ports={"standalone.master_port": sc.master_port, "standalone.webui_port": sc.webui_port},
        command=[
            str(spark_class),
            MASTER_CLASS,
            "--host",
            host,
            "--port",
            str(sc.master_port),
            "--webui-port",
            str(sc.webui_port),
        ],
        env=_environment(cfg, base),
        workdir=base,
        log_path=base / "master.log",
        pid_path=base / "master.pid",
        health=health,
        prepare=prepare,
        installed=spark_class.exists,
        marker=MASTER_CLASS,
    )


def worker(cfg: Config, i: int) -> ServerSpec:
    sc, host = cfg.standalone, cfg.stack.host
    base = cfg.state_dir / "spark" / f"worker-{i}"
    work, tmp, home = base / "work", base / "tmp", base / "home"
    port, webui = sc.worker_port + i, sc.worker_webui_port + i
    spark_class = spark_home() / "bin" / "spark-class"

    def health() -> str:
        mine = [
            w
            for w in _as_list(master_state(cfg).get("workers"))
            if w.get("port") == port and w.get("state") == "ALIVE"
        ]
        if not mine:
            raise RuntimeError(f"not registered with the master at {cfg.standalone_master_url} yet")
        return f"Spark worker {host}:{port}, {mine[0].get('cores')} core(s), {mine[0].get('memory')} MiB"

    def prepare() -> None:
        for d in (base / "conf", work, tmp, home):
            d.mkdir(parents=True, exist_ok=True)

    env = _environment(cfg, base) | {
        "SPARK_WORKER_DIR": str(work),
        "SPARK_LOCAL_DIRS": str(tmp),  # shuffle and block files, the executors' scratch space
        "HOME": str(home),  # caches (~/.cache: the executors' model copies) in the worker's own folder
        # finished applications' folders (fetched jars, executor logs) go after an hour
        "SPARK_WORKER_OPTS": (
            "-Dspark.worker.cleanup.enabled=true -Dspark.worker.cleanup.interval=600 "
            "-Dspark.worker.cleanup.appDataTtl=3600"
        ),
    }
    return ServerSpec(
        name=f"spark-worker-{i}",
        address=f"{host}:{port}",
        host=host,
        ports={"standalone.worker_port": port, "standalone.worker_webui_port": webui},  # (+ i)
        command=[
            str(spark_class),
            WORKER_CLASS,
            cfg.standalone_master_url,
            "--host",
            host,
            "--port",
            str(port),
            "--webui-port",
            str(webui),
            "--cores",
            str(sc.worker_cores),
            "--memory",
            sc.worker_memory,
            "--work-dir",
            str(work),
        ],
        env=env,
        workdir=base,
        log_path=base / "worker.log",
        pid_path=base / "worker.pid",
        health=health,
        prepare=prepare,
        installed=spark_class.exists,
        run_as=cfg.stack.run_as,
        owned_paths=(work, tmp, home),
        marker=f"--work-dir {work}",
    )


def _as_list(value: object) -> list[dict[str, object]]:
    return [v for v in value if isinstance(v, dict)] if isinstance(value, list) else []


def specs(cfg: Config) -> list[ServerSpec]:
    """The master, then its workers (started after it: they register with it at start-up and retry)."""
    return [master(cfg), *(worker(cfg, i) for i in range(cfg.standalone.workers))]
