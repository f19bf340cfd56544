from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from vectorlake.config import load_config
from vectorlake.errors import ConfigError
from vectorlake.spark import DELTA_CATALOG, DELTA_EXTENSION, cached_jars, session_conf


def test_session_conf_wires_delta_and_the_cached_jars(tmp_path: Path) -> None:
    for name in (
        "delta-spark_4.2_2.13-4.4.0.jar",
        "delta-storage-4.4.0.jar",
        "spark-sql-kafka-0-10_2.13-4.2.0.jar",
    ):
        (tmp_path / name).write_bytes(b"")
    cfg = load_config(environ={"VECTORLAKE__SPARK__JARS_DIR": str(tmp_path)})
    conf = session_conf(cfg)
    assert conf["spark.sql.extensions"] == DELTA_EXTENSION
    assert conf["spark.sql.catalog.spark_catalog"] == DELTA_CATALOG
    assert conf["spark.jars"].split(",") == sorted(str(p) for p in tmp_path.glob("*.jar"))
    assert conf["spark.sql.session.timeZone"] == "UTC"
    assert "spark.master" not in conf  # the master is never set by the library's settings


def test_config_spark_conf_wins_and_no_jars_when_the_cluster_provides_them() -> None:
    cfg = load_config(environ={"VECTORLAKE__SPARK__JARS_DIR": "null"})
    cfg = replace(cfg, spark=replace(cfg.spark, conf={"spark.sql.shuffle.partitions": "7"}))
    conf = session_conf(cfg)
    assert "spark.jars" not in conf
    assert conf["spark.sql.shuffle.partitions"] == "7"


def test_missing_jars_say_run_make_setup(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match=r"no Delta jars in .*; run `make setup`"):
        cached_jars(str(tmp_path))


def test_s3a_lake_points_hadoop_at_the_local_s3() -> None:
    cfg = load_config(
        environ={"VECTORLAKE__LAKE__ROOT": "s3a://lake/root", "VECTORLAKE__SPARK__JARS_DIR": "null"}
    )
    conf = session_conf(cfg)
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:5001"
    assert conf["spark.hadoop.fs.s3a.path.style.access"] == "true"


def test_a_local_driver_gets_the_log_file_and_the_short_run_jvm_options_and_prod_gets_neither() -> None:
    local = session_conf(load_config(environ={}))["spark.driver.extraJavaOptions"].split()
    assert any(o.startswith("-Dlog4j2.configurationFile=file:") for o in local)
    assert {"-XX:TieredStopAtLevel=1", "-XX:+UseParallelGC"} <= set(local)
    # the client compiler alone would leave a 48 MB code cache, which a few micro-batches fill
    assert "-XX:ReservedCodeCacheSize=240m" in local
    prod = session_conf(load_config(environ={"VECTORLAKE_ENV": "prod"}))
    assert "TieredStopAtLevel" not in prod.get("spark.driver.extraJavaOptions", "")


def test_local_sessions_interpret_row_projections_and_prod_generates_them() -> None:
    assert session_conf(load_config(environ={}))["spark.sql.codegen.factoryMode"] == "NO_CODEGEN"
    prod = session_conf(load_config(environ={"VECTORLAKE_ENV": "prod"}))
    assert "spark.sql.codegen.factoryMode" not in prod
