"""The SparkSession builder and the spark-submit command line: Delta Lake, the Kafka source, s3a.

The master comes from config (`spark.master`, e.g. ``local[2]`` in conf/local.yaml) for a session a
command builds itself. A job that spark-submit started keeps the launcher's master and memory: its JVM is
running before the job reads any config, so `submit_command` puts everything that must be known at JVM
start (master, memory, jars, class path, the executors' Python) on spark-submit's command line, and
`build_session` never overrides it. Nothing is downloaded at session start.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from vectorlake import s3
from vectorlake.config import PROJECT_ROOT, Config
from vectorlake.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

T = TypeVar("T")

DELTA_EXTENSION = "io.delta.sql.DeltaSparkSessionExtension"
DELTA_CATALOG = "org.apache.spark.sql.delta.catalog.DeltaCatalog"


def cached_jars(jars_dir: str | None) -> list[str]:
    """The jars Spark must load (Delta, spark-sql-kafka and what they need that pyspark lacks)."""
    if jars_dir is None:
        return []
    found = sorted(str(p) for p in Path(jars_dir).glob("*.jar"))
    if not any("delta-spark" in Path(j).name for j in found):
        raise ConfigError(
            f"spark.jars_dir: no Delta jars in {jars_dir}; run `make setup` (or set it to null when the "
            f"cluster provides Delta and the Kafka connector)"
        )
    return found


def session_conf(cfg: Config) -> dict[str, str]:
    """Every Spark setting vectorlake applies, as plain key/values (pure, so it can be tested)."""
    conf = {
        "spark.sql.extensions": DELTA_EXTENSION,
        "spark.sql.catalog.spark_catalog": DELTA_CATALOG,
        "spark.sql.shuffle.partitions": str(cfg.spark.shuffle_partitions),
        "spark.driver.memory": cfg.spark.driver_memory,
        "spark.sql.session.timeZone": "UTC",
        # Delta's change data feed on every new table is decided per table, not here
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        "spark.sql.streaming.stateStore.providerClass": (
            "org.apache.spark.sql.execution.streaming.state.RocksDBStateStoreProvider"
        ),
    }
    # rows per Arrow batch handed to the embedding pandas UDFs (one model call covers a batch)
    conf["spark.sql.execution.arrow.maxRecordsPerBatch"] = str(cfg.embed.arrow_batch_size)
    jars = cached_jars(cfg.spark.jars_dir)
    if jars:
        conf["spark.jars"] = ",".join(jars)
    if uses_s3a(cfg):
        conf.update(s3.hadoop_conf(cfg))  # the endpoint and, on the local stack, its credentials
        if cfg.spark.s3a_jars_dir:
            # installed at the same path on every node (as a cluster image has them), never shipped:
            # the AWS SDK bundle alone is about 690 MB
            class_path = s3a_class_path(cfg.spark.s3a_jars_dir)
            conf["spark.driver.extraClassPath"] = class_path
            conf["spark.executor.extraClassPath"] = class_path
    user_conf = dict(cfg.spark.conf)
    if (cfg.spark.master or "").startswith("local"):
        # A local run logs the JVM to a file and shows only errors (conf/log4j2.properties); the
        # options reach the driver because pyspark launches it with this conf (not so on a cluster).
        options = (
            f"-Dlog4j2.configurationFile=file:{PROJECT_ROOT / 'conf' / 'log4j2.properties'} "
            f"-Dvectorlake.log.dir={cfg.state_dir / 'logs'}"
        )
        extra = user_conf.pop("spark.driver.extraJavaOptions", "")
        conf["spark.driver.extraJavaOptions"] = f"{options} {extra}".strip()
    conf.update(user_conf)
    return conf


def uses_s3a(cfg: Config) -> bool:
    """Whether Spark reads or writes ``s3a://`` paths (the lake, its checkpoints or the landing folder)."""
    return any(p.startswith("s3a://") for p in (cfg.lake.root, cfg.checkpoint_root, cfg.sources.landing_dir))


def s3a_class_path(jars_dir: str) -> str:
    if not any(Path(jars_dir).glob("hadoop-aws-*.jar")):
        raise ConfigError(
            f"spark.s3a_jars_dir: no hadoop-aws jar in {jars_dir}; run `make setup` (or set it to null when "
            f"the cluster provides hadoop-aws and the AWS SDK)"
        )
    return f"{jars_dir}/*"


def under_launcher() -> bool:
    """Whether spark-submit started this process: its JVM (master, memory, class path) is already set."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def build_session(cfg: Config, app_name: str | None = None) -> SparkSession:
    """Get or create the SparkSession for ``cfg``: config's master, or the launcher's under spark-submit."""
    from pyspark.sql import SparkSession

    if under_launcher():
        return _launched_session(cfg, app_name)
    if (cfg.spark.master or "").startswith("local") and "PYSPARK_PYTHON" not in os.environ:
        # Python workers run the encoders: in local mode they must be this interpreter (the venv) as the
        # driver is; PySpark reads only the environment variable. On a cluster, the cluster's setting.
        os.environ["PYSPARK_PYTHON"] = sys.executable
    if (cfg.spark.master or "").startswith("local"):
        # bind the local driver to the stack's address: no "hostname resolves to a loopback" warning
        os.environ.setdefault("SPARK_LOCAL_IP", cfg.stack.host)
    builder = SparkSession.builder.appName(app_name or cfg.spark.app_name)
    if cfg.spark.master:
        builder = builder.master(cfg.spark.master)
    for key, value in session_conf(cfg).items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


def _launched_session(cfg: Config, app_name: str | None) -> SparkSession:
    """The session of a job spark-submit started: config's settings, the launcher's master and memory."""
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name or cfg.spark.app_name)
    for key, value in session_conf(cfg).items():
        if key not in LAUNCH_KEYS:  # fixed when the JVM started: spark-submit's, never overridden
            builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    return spark


# Settings that take effect only when the driver's JVM starts: spark-submit must be given them.
LAUNCH_KEYS = (
    "spark.master",
    "spark.submit.deployMode",
    "spark.driver.memory",
    "spark.driver.extraJavaOptions",
    "spark.driver.extraClassPath",
    "spark.jars",
)

MSK_IAM_PACKAGE = "software.amazon.msk:aws-msk-iam-auth:2.4.0"

# `vectorlake submit JOB`: the job names and their entry points under jobs/
JOBS = {
    "stream": "stream_listings.py",
    "reindex": "reindex.py",
    "backfill": "backfill.py",
    "purge": "gdpr_purge.py",
}


def job_script(job: str) -> Path:
    """The entry point of ``job``: a name in JOBS, or a path to one of jobs/*.py."""
    if job in JOBS:
        return PROJECT_ROOT / "jobs" / JOBS[job]
    path = Path(job) if Path(job).is_absolute() else PROJECT_ROOT / job
    if path.suffix == ".py" and path.resolve().parent == (PROJECT_ROOT / "jobs").resolve() and path.is_file():
        return path.resolve()
    raise ValueError(f"unknown job '{job}': expected one of {', '.join(JOBS)} (or jobs/<name>.py)")


def submit_command(
    cfg: Config,
    job: str,
    args: Sequence[str] = (),
    master: str | None = None,
    deploy_mode: str | None = None,
) -> list[str]:
    """The spark-submit command line for ``job``: master (``master``, else config's; none: the launcher's
    defaults), deploy mode, memory, executors' Python, jars or packages, class path, then the job's args."""
    sc = cfg.spark
    master = master or sc.master
    deploy_mode = deploy_mode or sc.deploy_mode
    if deploy_mode == "cluster" and (master or "").startswith(("spark://", "local")):
        raise ConfigError(
            f"deploy mode 'cluster' cannot run a Python job on {master} (Spark supports it on YARN and "
            f"Kubernetes only); use --deploy-mode client"
        )
    command = [str(Path(sys.executable).parent / "spark-submit")]
    if master:
        command += ["--master", master]
    command += ["--deploy-mode", deploy_mode, "--name", f"{sc.app_name}-{job_name(job)}"]
    command += ["--driver-memory", sc.driver_memory]
    if not (master or "").startswith("local"):
        command += ["--executor-memory", sc.executor_memory, "--executor-cores", str(sc.executor_cores)]
    python = sc.executor_python or (
        cfg.standalone_python if master == cfg.standalone_master_url else sys.executable
    )
    command += [
        "--conf",
        f"spark.pyspark.python={python}",
        "--conf",
        f"spark.pyspark.driver.python={sys.executable}",
    ]
    packages = [*sc.packages]
    if cfg.kafka.auth == "iam" and not any(p.startswith(MSK_IAM_PACKAGE.rsplit(":", 1)[0]) for p in packages):
        packages.append(MSK_IAM_PACKAGE)  # the Kafka source's IAM login module
    if packages:
        command += ["--packages", ",".join(packages)]
    if sc.archives:
        command += ["--archives", ",".join(sc.archives)]
    session = session_conf(_with_master(cfg, master))
    if "spark.jars" in session:
        command += ["--jars", session["spark.jars"]]
    for key in (
        "spark.driver.extraJavaOptions",
        "spark.driver.extraClassPath",
        "spark.executor.extraClassPath",
    ):
        if key in session:
            command += ["--conf", f"{key}={session[key]}"]
    return [*command, str(job_script(job)), *args]


def job_name(job: str) -> str:
    return job if job in JOBS else Path(job).stem


def _with_master(cfg: Config, master: str | None) -> Config:
    import dataclasses

    return dataclasses.replace(cfg, spark=dataclasses.replace(cfg.spark, master=master))


def concurrently(spark: SparkSession, *steps: Callable[[], T]) -> list[T]:
    """Run independent Spark steps (e.g. commits to different Delta tables) at once; their results in order.

    A small Delta commit spends most of its time on the driver (planning, reading and writing the log) and
    in tiny tasks, so independent commits overlap even on two cores. The threads inherit the caller's
    local properties (job group, the streaming query's ids) and the session's tags. Every step runs to
    its end before the first failure is raised, so a failed batch never leaves a step running behind it;
    the steps are idempotent writes, and the replay of the batch redoes whatever did not commit.
    """
    if len(steps) <= 1:
        return [step() for step in steps]
    from concurrent.futures import ThreadPoolExecutor

    from pyspark import inheritable_thread_target

    with ThreadPoolExecutor(max_workers=len(steps), thread_name_prefix="vectorlake-step") as pool:
        futures = [pool.submit(inheritable_thread_target(spark)(step)) for step in steps]
    for future in futures:
        error = future.exception()
        if error is not None:
            raise error
    return [f.result() for f in futures]
