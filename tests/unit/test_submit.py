"""`vectorlake submit`'s spark-submit command, the standalone cluster's servers, executors' model copies."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from vectorlake.config import PROJECT_ROOT, Config, load_config
from vectorlake.embed.artifacts import ArtifactError, ModelArtifact, folder_sha256, materialize
from vectorlake.spark import LAUNCH_KEYS, job_script, submit_command
from vectorlake.stack import standalone


def _option(command: list[str], name: str) -> list[str]:
    """Every value given to ``name`` on the command line (``--conf`` may repeat)."""
    return [command[i + 1] for i, part in enumerate(command[:-1]) if part == name]


def _confs(command: list[str]) -> dict[str, str]:
    return dict(c.split("=", 1) for c in _option(command, "--conf"))


def test_local_submit_takes_master_memory_jars_and_python_from_config() -> None:
    cfg = load_config(environ={})
    command = submit_command(cfg, "stream", ["--source", "kafka", "--once"])
    assert command[0] == str(Path(sys.executable).parent / "spark-submit")
    assert _option(command, "--master") == ["local[2]"]  # conf/local.yaml
    assert _option(command, "--driver-memory") == [cfg.spark.driver_memory]
    assert _option(command, "--executor-memory") == []  # no executors in local mode
    jars = _option(command, "--jars")[0].split(",")
    assert any("delta-spark" in j for j in jars) and all(Path(j).is_file() for j in jars)
    confs = _confs(command)
    assert confs["spark.pyspark.python"] == sys.executable
    assert "-Dlog4j2.configurationFile" in confs["spark.driver.extraJavaOptions"]  # JVM start options
    # the job's script and its own arguments come last, untouched
    assert command[-4:] == [str(PROJECT_ROOT / "jobs" / "stream_listings.py"), "--source", "kafka", "--once"]


def test_a_cluster_master_gets_executor_resources_and_the_node_python() -> None:
    cfg = load_config(environ={"VECTORLAKE__LAKE__ROOT": "s3a://lake/root"})
    command = submit_command(cfg, "reindex", ["--no-validate"], master=cfg.standalone_master_url)
    assert _option(command, "--master") == ["spark://127.0.0.1:7077"]
    assert _option(command, "--deploy-mode") == ["client"]
    assert _option(command, "--executor-memory") == ["1g"]
    assert _option(command, "--executor-cores") == ["1"]
    confs = _confs(command)
    # the local standalone cluster's executors run the node environment `stack up --with spark` made
    assert confs["spark.pyspark.python"] == cfg.standalone_python
    # s3a: hadoop-aws and the SDK from a path on every node, never shipped with --jars
    s3a = f"{cfg.spark.s3a_jars_dir}/*"
    assert confs["spark.driver.extraClassPath"] == s3a == confs["spark.executor.extraClassPath"]
    assert not any("bundle-" in j for j in _option(command, "--jars")[0].split(","))
    assert "-Dlog4j2.configurationFile" not in confs.get("spark.driver.extraJavaOptions", "")


def test_prod_submit_leaves_the_master_to_the_launcher_and_ships_packages() -> None:
    cfg = load_config(
        environ={
            "VECTORLAKE_ENV": "prod",
            "VECTORLAKE__SPARK__PACKAGES": '["io.delta:delta-spark_4.2_2.13:4.4.0"]',
            "VECTORLAKE__SPARK__ARCHIVES": '["s3://bucket/env.tar.gz#env"]',
            "VECTORLAKE__SPARK__EXECUTOR_PYTHON": "./env/bin/python",
        }
    )
    command = submit_command(cfg, "purge", [])
    assert "--master" not in command  # spark-submit's own default (spark-defaults.conf, the cluster's)
    packages = _option(command, "--packages")[0].split(",")
    assert packages == ["io.delta:delta-spark_4.2_2.13:4.4.0", "software.amazon.msk:aws-msk-iam-auth:2.4.0"]
    assert _option(command, "--archives") == ["s3://bucket/env.tar.gz#env"]
    assert "--jars" not in command  # prod: jars_dir null, the cluster provides them
    assert _confs(command)["spark.pyspark.python"] == "./env/bin/python"
    assert command[-1] == str(PROJECT_ROOT / "jobs" / "gdpr_purge.py")


def test_cluster_deploy_mode_of_a_python_job_on_a_standalone_master_is_a_one_line_error() -> None:
    from vectorlake.errors import ConfigError

    cfg = load_config(environ={})
    with pytest.raises(ConfigError, match="Spark supports it on YARN and Kubernetes only"):
        submit_command(cfg, "stream", [], master=cfg.standalone_master_url, deploy_mode="cluster")
    yarn = submit_command(cfg, "stream", [], master="yarn", deploy_mode="cluster")
    assert _option(yarn, "--deploy-mode") == ["cluster"]


def test_jobs_by_name_or_path_and_nothing_else() -> None:
    assert job_script("backfill") == PROJECT_ROOT / "jobs" / "backfill.py"
    assert job_script("jobs/reindex.py") == PROJECT_ROOT / "jobs" / "reindex.py"
    for bad in ("strem", "vectorlake/cli.py", "jobs/nope.py", "/etc/passwd"):
        with pytest.raises(ValueError, match="unknown job"):
            job_script(bad)


def test_the_launch_settings_are_the_ones_a_running_jvm_ignores() -> None:
    assert {"spark.master", "spark.driver.memory", "spark.jars", "spark.driver.extraClassPath"} <= set(
        LAUNCH_KEYS
    )


def test_cli_rejects_an_unknown_job_in_one_line_and_prints_a_command() -> None:
    bad = subprocess.run(
        [sys.executable, "-m", "vectorlake.cli", "submit", "strem"], capture_output=True, text=True
    )
    assert bad.returncode == 2
    assert (
        bad.stderr.strip().splitlines()[-1].startswith("vectorlake submit: error: argument JOB: unknown job")
    )
    shown = subprocess.run(
        [sys.executable, "-m", "vectorlake.cli", "submit", "--print", "stream", "--", "--source", "files"],
        capture_output=True,
        text=True,
    )
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.strip().endswith("jobs/stream_listings.py --source files")


def test_memory_sizes_are_checked_at_load_time() -> None:
    from vectorlake.errors import ConfigError

    with pytest.raises(ConfigError, match=r"spark\.executor_memory: expected a JVM memory size"):
        load_config(environ={"VECTORLAKE__SPARK__EXECUTOR_MEMORY": "lots"})


# ------------------------------------------------------------------------------------- standalone cluster


def test_standalone_servers_bind_the_stack_host_on_their_ports_and_workers_drop_root() -> None:
    cfg: Config = load_config(environ={"VECTORLAKE__STANDALONE__WORKERS": "3"})
    master, *workers = standalone.specs(cfg)
    assert master.command[1] == standalone.MASTER_CLASS
    assert master.command[master.command.index("--port") + 1] == "7077"
    assert master.run_as is None
    assert [w.command[w.command.index("--port") + 1] for w in workers] == ["7078", "7079", "7080"]
    assert [w.command[w.command.index("--webui-port") + 1] for w in workers] == ["8091", "8092", "8093"]
    for i, w in enumerate(workers):
        assert w.command[2] == "spark://127.0.0.1:7077"
        assert w.run_as == cfg.stack.run_as
        work = Path(w.command[w.command.index("--work-dir") + 1])
        assert work.parent == cfg.state_dir / "spark" / f"worker-{i}"
        assert work in w.owned_paths and Path(w.env["HOME"]) in w.owned_paths
        assert w.marker and str(work) in w.marker  # each worker's pid is told apart by its folder


# ------------------------------------------------------------------------------------ executors' models


def test_a_readable_local_artifact_is_used_in_place_and_a_remote_one_is_copied_once(tmp_path: Path) -> None:
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "weights.bin").write_bytes(b"w" * 10)
    local = ModelArtifact("m", "1", str(folder), folder_sha256(folder))
    assert materialize(local, cache_dir=tmp_path / "cache") == str(folder)
    assert materialize(ModelArtifact("m", "1", folder.as_uri(), None), tmp_path / "cache") == str(folder)
    with pytest.raises(ArtifactError, match="not a folder this process can read"):
        materialize(ModelArtifact("m", "1", str(tmp_path / "missing"), None), tmp_path / "cache")
    with pytest.raises(ArtifactError, match="from s3:// or a shared folder, not https://"):
        materialize(ModelArtifact("m", "1", "https://example.invalid/m", None), tmp_path / "cache")
    # a verified copy already on this node is reused without asking the store
    sha = "ab" * 32
    done = tmp_path / "cache" / "m" / f"2-{sha[:16]}"
    done.mkdir(parents=True)
    (done / ".vectorlake-complete").write_text(f"{sha}\ns3://b/m\n")
    assert materialize(ModelArtifact("m", "2", "s3://b/m", sha), tmp_path / "cache") == str(done)


# ------------------------------------------------------------------------------------ MSK IAM, GPUs


def test_msk_iam_sets_the_sasl_options_and_ships_the_login_module() -> None:
    from vectorlake.lake.sources import kafka_options
    from vectorlake.spark import MSK_IAM_PACKAGE

    prod = load_config(environ={"VECTORLAKE_ENV": "prod"})
    assert prod.kafka.auth == "iam"
    opts = kafka_options(prod)
    assert opts["kafka.security.protocol"] == "SASL_SSL"
    assert opts["kafka.sasl.mechanism"] == "AWS_MSK_IAM"
    assert opts["kafka.sasl.jaas.config"] == "software.amazon.msk.auth.iam.IAMLoginModule required;"
    assert opts["kafka.sasl.client.callback.handler.class"].endswith("IAMClientCallbackHandler")
    assert _option(submit_command(prod, "stream", []), "--packages") == [MSK_IAM_PACKAGE]
    local = load_config(environ={})
    assert "kafka.sasl.jaas.config" not in kafka_options(local)
    assert "--packages" not in submit_command(local, "stream", [])
    from vectorlake.errors import ConfigError

    with pytest.raises(ConfigError, match=r"kafka\.auth iam needs kafka\.security_protocol SASL_SSL"):
        load_config(environ={"VECTORLAKE__KAFKA__AUTH": "iam"})


def test_topics_are_created_on_the_local_stack_only() -> None:
    from vectorlake.lake.sources import ensure_topics

    # a broker nobody listens on: a create attempt would fail; outside the local stack none is made
    remote = load_config(
        environ={
            "VECTORLAKE_ENV": "prod",
            "VECTORLAKE__KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1",
        }
    )
    ensure_topics(remote, timeout_s=1)  # returns without contacting anything
    from vectorlake.errors import VectorlakeError

    local = load_config(environ={"VECTORLAKE__KAFKA__BOOTSTRAP_SERVERS": "127.0.0.1:1"})
    with pytest.raises(VectorlakeError, match="cannot create Kafka topics"):
        ensure_topics(local, timeout_s=1)


def test_each_task_embeds_on_the_gpu_spark_assigned_it() -> None:
    from vectorlake.embed.device import choose_device, spark_task_resources, task_device

    assert task_device("auto", {"gpu": ["3"]}) == "cuda:3"
    assert task_device("cuda", {"gpu": ["1", "2"]}) == "cuda:1"
    assert task_device("auto", {}) == "auto"  # no GPU scheduling: torch picks
    assert task_device("cpu", {"gpu": ["0"]}) == "cpu"  # an explicit CPU run stays on CPU
    assert spark_task_resources() == {}  # outside a Spark task
    if not __import__("torch").cuda.is_available():  # CI: a GPU that is not there is a clear error
        with pytest.raises(ValueError, match="torch sees no CUDA device"):
            choose_device("cuda:3")
    with pytest.raises(ValueError, match="must be auto, cpu or cuda"):
        choose_device("tpu")


def test_prod_schedules_gpus_with_a_discovery_script_that_reports_them(tmp_path: Path) -> None:
    from vectorlake.spark import session_conf

    conf = session_conf(load_config(environ={"VECTORLAKE_ENV": "prod"}))
    assert conf["spark.executor.resource.gpu.amount"] == "1"
    assert float(conf["spark.task.resource.gpu.amount"]) <= 1
    script = conf["spark.executor.resource.gpu.discoveryScript"]
    assert Path(script).name == "gpu_discovery.sh"
    fake = tmp_path / "nvidia-smi"  # the discovery script on a node with two GPUs
    fake.write_text("#!/bin/sh\nprintf '0\\n1\\n'\n")
    fake.chmod(0o755)
    done = subprocess.run(
        ["bash", str(PROJECT_ROOT / "scripts" / "gpu_discovery.sh")],
        env={"PATH": f"{tmp_path}:/usr/bin:/bin"},
        capture_output=True,
        text=True,
        check=True,
    )
    import json

    assert json.loads(done.stdout) == {"name": "gpu", "addresses": ["0", "1"]}
