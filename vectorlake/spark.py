"""The SparkSession builder: Delta Lake and the Kafka source from jars cached by `make setup`.

No master is chosen here: it comes from config (`spark.master`, e.g. ``local[2]`` in conf/local.yaml) or,
when that is null, from spark-submit or the cluster. Nothing is downloaded at session start.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
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
    if cfg.lake.root.startswith("s3a://"):
        conf.update(s3.hadoop_conf(cfg))  # the endpoint and, on the local stack, its credentials
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


def build_session(cfg: Config, app_name: str | None = None) -> SparkSession:
    """Get or create the SparkSession for ``cfg``; the master is config's (or the launcher's) choice."""
    from pyspark.sql import SparkSession

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
