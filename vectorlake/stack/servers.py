"""The local servers of the stack, described from the config: OpenSearch with k-NN, Kafka (KRaft), moto S3.

Each server keeps its data, config, log and pid file under ``<stack.state_dir>/<server>/``; everything
binds to ``stack.host`` (127.0.0.1). `make setup` installs the programs; nothing here downloads.
"""

from __future__ import annotations

import base64
import json
import os
import shutil
import sqlite3
import subprocess
import sys
import urllib.request
import uuid
from dataclasses import dataclass
from pathlib import Path

from vectorlake.config import Config
from vectorlake.errors import StackError
from vectorlake.stack.process import ServerSpec

OPENSEARCH_VERSION = "2.19.6"
KAFKA_MAIN = "kafka.Kafka"
KAFKA_STORAGE_TOOL = "kafka.tools.StorageTool"


def java_home(cfg: Config) -> Path:
    """The JDK every JVM server runs on: stack.java_home, else $JAVA_HOME, else the one `java` is from."""
    if cfg.stack.java_home:
        return Path(cfg.stack.java_home)
    if os.environ.get("JAVA_HOME"):
        return Path(os.environ["JAVA_HOME"])
    java = shutil.which("java")
    if java is None:
        raise StackError("no Java found: install a Java 17 JDK or set JAVA_HOME")
    return Path(java).resolve().parent.parent


def _http_json(url: str, timeout: float = 3.0) -> object:
    with urllib.request.urlopen(url, timeout=timeout) as resp:  # noqa: S310 - loopback URL from config
        return json.loads(resp.read())


# ----------------------------------------------------------------------------------------------- OpenSearch


def opensearch_home(cfg: Config) -> Path:
    return cfg.state_dir / "opt" / f"opensearch-{OPENSEARCH_VERSION}"


def opensearch(cfg: Config) -> ServerSpec:
    home = opensearch_home(cfg)
    base = cfg.state_dir / "opensearch"
    conf, data, logs, tmp = base / "config", base / "data", base / "logs", base / "tmp"
    host, port = cfg.stack.host, cfg.opensearch.port
    url = f"http://{host}:{port}"

    def prepare() -> None:
        for d in (data, logs, tmp):
            d.mkdir(parents=True, exist_ok=True)
        if not (conf / "log4j2.properties").exists():
            shutil.copytree(home / "config", conf, dirs_exist_ok=True)
        (conf / "opensearch.yml").write_text(_opensearch_yml(cfg, data, logs))
        (conf / "jvm.options").write_text(_opensearch_jvm_options(cfg, logs))

    return ServerSpec(
        name="opensearch",
        address=url,
        host=host,
        ports={"opensearch.port": port, "opensearch.transport_port": cfg.opensearch.transport_port},
        command=[str(home / "bin" / "opensearch")],
        env={
            "JAVA_HOME": str(java_home(cfg)),
            "OPENSEARCH_PATH_CONF": str(conf),
            "OPENSEARCH_TMPDIR": str(tmp),
            "OPENSEARCH_JAVA_OPTS": "",
        },
        workdir=home,
        log_path=base / "opensearch.log",
        pid_path=base / "opensearch.pid",
        health=lambda: _opensearch_health(url),
        prepare=prepare,
        installed=lambda: (home / "plugins" / "opensearch-knn").is_dir(),
        run_as=cfg.stack.run_as,
        owned_paths=(conf, data, logs, tmp),
    )


def _opensearch_yml(cfg: Config, data: Path, logs: Path) -> str:
    return "\n".join(
        [
            "# written by `vectorlake stack up` from the config; edits are overwritten",
            "cluster.name: vectorlake-local",
            "node.name: local",
            f"network.host: {cfg.stack.host}",
            f"http.port: {cfg.opensearch.port}",
            f"transport.port: {cfg.opensearch.transport_port}",
            "discovery.type: single-node",
            f"path.data: {data}",
            f"path.logs: {logs}",
            # indexes are created on purpose, from mapping templates, and reached through aliases
            "action.auto_create_index: false",
            "cluster.routing.allocation.disk.threshold_enabled: false",
            "",
        ]
    )


def _opensearch_jvm_options(cfg: Config, logs: Path) -> str:
    return "\n".join(
        [
            f"-Xms{cfg.opensearch.heap_mb}m",
            f"-Xmx{cfg.opensearch.heap_mb}m",
            "-XX:+UseG1GC",
            "-Djava.io.tmpdir=${OPENSEARCH_TMPDIR}",
            f"-XX:ErrorFile={logs}/hs_err_pid%p.log",
            "18-:-Djava.security.manager=allow",
            "20-:--add-modules=jdk.incubator.vector",
            "-Djava.util.concurrent.ForkJoinPool.common.threadFactory="
            "org.opensearch.secure_sm.SecuredForkJoinWorkerThreadFactory",
            "",
        ]
    )


def _opensearch_health(url: str) -> str:
    info = _http_json(url)
    health = _http_json(f"{url}/_cluster/health")
    plugins = _http_json(f"{url}/_cat/plugins?format=json")
    assert isinstance(info, dict) and isinstance(health, dict) and isinstance(plugins, list)
    if health.get("status") not in ("green", "yellow"):
        raise RuntimeError(f"cluster status {health.get('status')}")
    names = sorted({p["component"] for p in plugins})
    return f"OpenSearch {info['version']['number']}, cluster {health['status']}, plugins: {', '.join(names)}"


# ---------------------------------------------------------------------------------------------------- Kafka

_KAFKA_LOG4J = (
    "log4j.rootLogger=INFO, stdout\n"
    "log4j.appender.stdout=org.apache.log4j.ConsoleAppender\n"
    "log4j.appender.stdout.layout=org.apache.log4j.PatternLayout\n"
    "log4j.appender.stdout.layout.ConversionPattern=[%d] %p %m (%c)%n\n"
    "log4j.logger.kafka=INFO\nlog4j.logger.org.apache.kafka=WARN\n"
)


def kafka(cfg: Config) -> ServerSpec:
    libs = cfg.state_dir / "jars" / "kafka"
    base = cfg.state_dir / "kafka"
    data, props, log4j = base / "data", base / "server.properties", base / "log4j.properties"
    host, port, cport = cfg.stack.host, cfg.kafka.port, cfg.kafka.controller_port
    java = str(java_home(cfg) / "bin" / "java")
    jvm = [f"-Xms{cfg.kafka.heap_mb}m", f"-Xmx{cfg.kafka.heap_mb}m", f"-Dlog4j.configuration=file:{log4j}"]
    classpath = ["-cp", f"{libs}/*"]

    def prepare() -> None:
        data.mkdir(parents=True, exist_ok=True)
        props.write_text(_kafka_properties(cfg, data))
        log4j.write_text(_KAFKA_LOG4J)
        if not (data / "meta.properties").exists():
            _format_kafka_storage([java, *jvm, *classpath], base / "cluster.id", props)

    return ServerSpec(
        name="kafka",
        address=f"{host}:{port}",
        host=host,
        ports={"kafka.port": port, "kafka.controller_port": cport},
        command=[java, *jvm, *classpath, KAFKA_MAIN, str(props)],
        env={},
        workdir=base,
        log_path=base / "kafka.log",
        pid_path=base / "kafka.pid",
        health=lambda: _kafka_health(f"{host}:{port}"),
        prepare=prepare,
        installed=lambda: any(libs.glob("kafka_2.13-*.jar")),
    )


def _kafka_properties(cfg: Config, data: Path) -> str:
    host, port, cport = cfg.stack.host, cfg.kafka.port, cfg.kafka.controller_port
    return "\n".join(
        [
            "# written by `vectorlake stack up` from the config; edits are overwritten",
            "process.roles=broker,controller",
            "node.id=1",
            f"controller.quorum.voters=1@{host}:{cport}",
            f"listeners=PLAINTEXT://{host}:{port},CONTROLLER://{host}:{cport}",
            f"advertised.listeners=PLAINTEXT://{host}:{port}",
            "controller.listener.names=CONTROLLER",
            "inter.broker.listener.name=PLAINTEXT",
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT",
            f"log.dirs={data}",
            f"num.partitions={cfg.kafka.partitions}",
            "offsets.topic.replication.factor=1",
            "transaction.state.log.replication.factor=1",
            "transaction.state.log.min.isr=1",
            "group.initial.rebalance.delay.ms=0",
            "auto.create.topics.enable=true",
            "",
        ]
    )


def _format_kafka_storage(java_command: list[str], cluster_id_file: Path, props: Path) -> None:
    """Format the KRaft log directory once, with a cluster id kept beside it across re-formats."""
    if not cluster_id_file.exists():
        # Kafka's own Uuid text form: url-safe base64 of 16 random bytes, unpadded
        cluster_id_file.write_text(base64.urlsafe_b64encode(uuid.uuid4().bytes).decode().rstrip("="))
    subprocess.run(
        [
            *java_command,
            KAFKA_STORAGE_TOOL,
            "format",
            "-t",
            cluster_id_file.read_text(),
            "-c",
            str(props),
            "--ignore-formatted",
        ],
        check=True,
        capture_output=True,
    )


def _kafka_health(bootstrap: str) -> str:
    from confluent_kafka.admin import AdminClient

    # log_level 2: a refused connection is this check's answer (the status row), not librdkafka log lines
    admin = AdminClient({"bootstrap.servers": bootstrap, "socket.timeout.ms": 3000, "log_level": 2})
    meta = admin.list_topics(timeout=3)
    return f"Kafka KRaft, {len(meta.brokers)} broker(s), {len(meta.topics)} topic(s)"


# ------------------------------------------------------------------------------------------------- moto S3


def moto_s3(cfg: Config) -> ServerSpec:
    base = cfg.state_dir / "moto"
    host, port = cfg.stack.host, cfg.s3.port
    url = f"http://{host}:{port}"

    def health() -> str:
        # an S3 ListBuckets call: the same API the pipeline uses, answered without credentials by moto
        with urllib.request.urlopen(f"{url}/", timeout=3) as resp:  # noqa: S310 - loopback URL from config
            body = resp.read().decode()
        if "ListAllMyBucketsResult" not in body:
            raise RuntimeError(f"unexpected answer to ListBuckets: {body[:80]!r}")
        return f"moto S3, {body.count('<Bucket>')} bucket(s)"

    return ServerSpec(
        name="s3 (moto)",
        address=url,
        host=host,
        ports={"s3.port": port},
        command=[sys.executable, "-m", "moto.server", "-H", host, "-p", str(port)],
        env={},
        workdir=base,
        log_path=base / "moto.log",
        pid_path=base / "moto.pid",
        health=health,
    )


# -------------------------------------------------------------------------------------------------- mlflow


@dataclass(frozen=True)
class MlflowStore:
    """mlflow needs no server here: the tracking and registry store is a SQLite file in the state folder."""

    uri: str
    artifact_root: str

    @classmethod
    def from_config(cls, cfg: Config) -> MlflowStore:
        return cls(cfg.mlflow_tracking_uri, cfg.mlflow_artifact_root)

    @property
    def db_path(self) -> Path | None:
        return Path(self.uri.removeprefix("sqlite:///")) if self.uri.startswith("sqlite:///") else None

    def prepare(self) -> None:
        if self.db_path is not None:
            self.db_path.parent.mkdir(parents=True, exist_ok=True)
        if "://" not in self.artifact_root:
            Path(self.artifact_root).mkdir(parents=True, exist_ok=True)

    def health(self) -> str:
        if self.db_path is None:
            return f"remote tracking store {self.uri}"
        if not self.db_path.parent.is_dir():
            raise RuntimeError(f"{self.db_path.parent} does not exist; run `vectorlake stack up`")
        with sqlite3.connect(self.db_path) as db:
            tables = db.execute("select count(*) from sqlite_master where type = 'table'").fetchone()[0]
        return f"SQLite store, {'initialised' if tables else 'empty until first use'}"


def all_servers(cfg: Config) -> list[ServerSpec]:
    return [opensearch(cfg), kafka(cfg), moto_s3(cfg)]
