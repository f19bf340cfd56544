"""One typed, frozen configuration object for every part of vectorlake.

Layers, later wins: ``conf/base.yaml``, ``conf/<env>.yaml`` (``VECTORLAKE_ENV``, default ``local``), then
environment variables ``VECTORLAKE__<SECTION>__<KEY>`` (nested keys add more ``__<KEY>`` parts; values are
parsed as the field's type, mappings and lists as JSON). An unknown key or a value of the wrong type
fails at load time with a message naming the key. Every path-valued key is normalized once, by
`normalize_path`: absolute, relative ones taken against the project root, one spelling per location.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import yaml

from vectorlake.errors import ConfigError

ENV_PREFIX = "VECTORLAKE__"
PROJECT_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class StackConfig:
    local: bool
    state_dir: str
    host: str
    run_as: str
    java_home: str | None
    startup_timeout_s: int


@dataclass(frozen=True)
class OpenSearchConfig:
    hosts: tuple[str, ...] | None
    port: int
    transport_port: int
    heap_mb: int
    auth: Literal["none", "basic", "sigv4"]
    username_env: str
    password_env: str
    region: str | None
    service: Literal["es", "aoss"]
    verify_certs: bool
    timeout_s: int


@dataclass(frozen=True)
class IndexConfig:
    alias: str
    engine: Literal["lucene", "faiss", "nmslib"]
    space_type: Literal["cosinesimil", "l2", "innerproduct"]
    m: int
    ef_construction: int
    ef_search: int
    shards: int
    replicas: int
    refresh_interval: str
    build_gc_deletes: str
    retention_hours: float
    concurrent_segment_search: Literal["auto", "all", "none"]
    gc_deletes_s: int = 3600

    def __post_init__(self) -> None:
        if (
            isinstance(self.gc_deletes_s, bool)
            or not isinstance(self.gc_deletes_s, int)
            or self.gc_deletes_s < 60
        ):
            raise ConfigError(
                f"index.gc_deletes_s: expected whole seconds, at least 60, got {self.gc_deletes_s!r}"
            )

    @property
    def max_state_age_s(self) -> float:
        """How old a listing state may be when it is written: half the time OpenSearch remembers a delete
        (``gc_deletes_s``), so a delete applied after the state was read is still there to reject it."""
        return self.gc_deletes_s / 2

    @property
    def next_alias(self) -> str:
        """The alias of the generation being built (written by the stream, read by the gate)."""
        return f"{self.alias}_next"

    @property
    def prev_alias(self) -> str:
        """The alias of the generation a rollback returns to (still written by the stream)."""
        return f"{self.alias}_prev"


@dataclass(frozen=True)
class ModelConfig:
    name: str
    alias: str
    source: str


@dataclass(frozen=True)
class FusionConfig:
    text_weight: float
    image_weight: float


@dataclass(frozen=True)
class EmbedConfig:
    text_model: ModelConfig
    image_model: ModelConfig
    text_attributes: tuple[str, ...]
    chunk_overlap_tokens: int
    batch_size: int
    arrow_batch_size: int
    device: Literal["auto", "cpu", "cuda"]
    torch_threads: int | None
    fusion: FusionConfig
    image_fetch_timeout_s: float
    model_cache_dir: str | None
    trigger_interval: str
    max_files_per_trigger: int | None


@dataclass(frozen=True)
class SinkConfig:
    bulk_docs: int
    bulk_bytes: int
    max_retries: int
    backoff_initial_s: float
    backoff_max_s: float
    restart_delay_s: float
    restart_max_delay_s: float = 300.0  # the restart delay doubles per failure in a row, up to this


@dataclass(frozen=True)
class ReindexConfig:
    chunks: int
    bulk_docs: int


@dataclass(frozen=True)
class GateConfig:
    max_count_gap: float
    max_missing_vectors: float
    golden_queries: int
    min_recall_at_10: float
    max_relevance_drop: float
    max_norm_error: float
    labelled_queries: str | None
    max_canary_drop: float = (
        0.02  # `vectorlake canary`: recall@10 or hit@10 this far below the baseline fails
    )

    def __post_init__(self) -> None:
        if not 0.0 <= self.max_canary_drop <= 1.0:
            raise ConfigError(f"gate.max_canary_drop: expected a share in [0, 1], got {self.max_canary_drop}")


@dataclass(frozen=True)
class AirflowConfig:
    port: int
    home: str | None
    admin_user: str
    parallelism: int


@dataclass(frozen=True)
class KafkaConfig:
    bootstrap_servers: str | None
    port: int
    controller_port: int
    heap_mb: int
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_SSL"]
    sasl_mechanism: str | None
    partitions: int
    auth: Literal["none", "iam"] = "none"  # iam: MSK IAM (SASL_SSL, AWS_MSK_IAM, the aws-msk-iam-auth jar)

    def __post_init__(self) -> None:
        if self.auth == "iam" and self.security_protocol != "SASL_SSL":
            raise ConfigError(
                f"kafka.auth iam needs kafka.security_protocol SASL_SSL, got {self.security_protocol}"
            )


@dataclass(frozen=True)
class S3Config:
    endpoint_url: str | None
    port: int
    region: str
    bucket: str


@dataclass(frozen=True)
class MlflowConfig:
    tracking_uri: str | None
    artifact_root: str | None


@dataclass(frozen=True)
class LakeConfig:
    root: str
    checkpoint_root: str | None


@dataclass(frozen=True)
class TopicsConfig:
    listing_changes: str
    media: str
    seller_policy: str


@dataclass(frozen=True)
class SourcesConfig:
    landing_dir: str
    starting_offsets: Literal["earliest", "latest"]
    topics: TopicsConfig
    dedup_watermark: str
    trigger_interval: str
    max_files_per_trigger: int | None
    max_offsets_per_trigger: int | None
    fail_on_data_loss: bool


@dataclass(frozen=True)
class ReferenceConfig:
    categories: str
    locales: str


@dataclass(frozen=True)
class SparkConfig:
    master: str | None
    app_name: str
    driver_memory: str
    shuffle_partitions: int
    jars_dir: str | None
    conf: Mapping[str, str] = field(default_factory=dict)
    # what `vectorlake submit` hands spark-submit (a session setting is too late for any of these)
    deploy_mode: Literal["client", "cluster"] = "client"
    executor_memory: str = "1g"
    executor_cores: int = 1
    executor_python: str | None = None  # null: this interpreter's path, the same on every node
    packages: tuple[str, ...] = ()  # Maven coordinates the cluster fetches (--packages)
    archives: tuple[str, ...] = ()  # e.g. a packed environment, env.tar.gz#env (--archives)
    s3a_jars_dir: str | None = None  # hadoop-aws and the AWS SDK, installed at this path on every node

    def __post_init__(self) -> None:
        if self.executor_cores < 1:
            raise ConfigError(f"spark.executor_cores: expected at least 1, got {self.executor_cores}")
        for name in ("driver_memory", "executor_memory"):
            if not re.fullmatch(r"[0-9]+[kmgt]?", getattr(self, name).lower()):
                raise ConfigError(
                    f"spark.{name}: expected a JVM memory size like 2g, got {getattr(self, name)!r}"
                )


@dataclass(frozen=True)
class StandaloneConfig:
    """The local Spark standalone cluster (`vectorlake stack up --with spark`): a master and workers."""

    master_port: int = 7077
    webui_port: int = 8090
    workers: int = 2
    worker_port: int = 7078  # worker i listens on worker_port + i, its web UI on worker_webui_port + i
    worker_webui_port: int = 8091
    worker_cores: int = 1
    worker_memory: str = "2g"

    def __post_init__(self) -> None:
        if not 1 <= self.workers <= 8:
            raise ConfigError(f"standalone.workers: expected 1 to 8, got {self.workers}")
        if self.worker_cores < 1:
            raise ConfigError(f"standalone.worker_cores: expected at least 1, got {self.worker_cores}")


@dataclass(frozen=True)
class WarehouseConfig:
    target: Literal["duckdb", "snowflake"]
    duckdb_path: str


@dataclass(frozen=True)
class ErasureConfig:
    deadline_hours: float = 60.0  # a request older than this and not verified fails the purge job
    vacuum_retention_hours: float = 0.0  # VACUUM RETAIN after an erasure (< 168 disables Delta's check)
    catch_up_index: bool = True  # run the index stream once before vacuuming, if it is behind


@dataclass(frozen=True)
class ContractsConfig:
    """Bounds on what one event may hold (`vectorlake.contracts`); an event past one is quarantined."""

    max_future_skew_s: int = 900  # event_ts at most this far after the time vectorlake received it
    max_id_bytes: int = 256  # event_id, listing_id, seller_id, image_id and each of image_ids
    max_title_bytes: int = 1024
    max_description_bytes: int = 20 * 1024
    max_url_bytes: int = 2048
    max_text_bytes: int = 256  # locale, category_id, sha256, reason, op, status
    max_image_ids: int = 32
    max_attributes: int = 64  # attribute keys in one event
    max_attribute_key_bytes: int = 64
    max_attribute_value_bytes: int = 1024

    def __post_init__(self) -> None:
        for name, value in dataclasses.asdict(self).items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise ConfigError(f"contracts.{name}: expected a positive integer, got {value!r}")
        if self.max_id_bytes > 512:  # OpenSearch refuses a document _id over 512 bytes
            raise ConfigError(
                f"contracts.max_id_bytes: at most 512 (OpenSearch's _id limit), got {self.max_id_bytes}"
            )


FETCH_SCHEMES = ("file", "s3", "s3a", "http", "https")  # every scheme the image fetch knows


@dataclass(frozen=True)
class FetchConfig:
    """What an image URL may reach and how much of it (`vectorlake.embed.fetch.FetchPolicy`); a URL the
    policy refuses is an embed dead letter (reason ``refused`` or ``too_large``), never a failed batch."""

    schemes: tuple[str, ...] = FETCH_SCHEMES
    file_roots: tuple[str, ...] | None = None  # file:// only under these folders; None: any regular file
    s3_buckets: tuple[str, ...] | None = None  # s3:// only in these buckets; None: s3.bucket only
    allow_hosts: tuple[str, ...] = ()  # http(s) hosts (or host:port) reached even at a non-public address
    max_bytes: int = 20 * 1024 * 1024  # an image body larger than this is refused (too_large)
    deadline_s: float = 30.0  # the whole fetch of one image, every redirect and read included
    max_pixels: int = 50_000_000  # width x height above this is refused before it is decoded (too_large)
    max_redirects: int = 3  # http(s) redirects followed, each hop checked like the first URL

    def __post_init__(self) -> None:
        unknown = sorted(set(self.schemes) - set(FETCH_SCHEMES))
        if unknown:
            raise ConfigError(
                f"fetch.schemes: {unknown[0]!r} is not one of {', '.join(sorted(FETCH_SCHEMES))}"
            )
        for name in ("max_bytes", "max_pixels"):
            if getattr(self, name) < 1:
                raise ConfigError(f"fetch.{name}: expected a positive integer, got {getattr(self, name)}")
        if self.deadline_s <= 0:
            raise ConfigError(
                f"fetch.deadline_s: expected a positive number of seconds, got {self.deadline_s}"
            )
        if self.max_redirects < 0:
            raise ConfigError(f"fetch.max_redirects: expected 0 or more, got {self.max_redirects}")


@dataclass(frozen=True)
class ServeConfig:
    """`vectorlake serve`: the HTTP query service (`vectorlake.serve`), its limits and how it follows the
    alias."""

    host: str = "127.0.0.1"  # bind address; keep it local unless a load balancer fronts it
    port: int = 8000
    max_request_bytes: int = 8 * 1024 * 1024  # a request body over this is refused (413) before it is read
    max_text_chars: int = 2000  # a longer text query is refused (422)
    refresh_s: float = 2.0  # how often the service reads the alias (a cutover is followed within this)
    image_hosts: tuple[str, ...] = ()  # hosts (or host:port) an image_url may name at a non-public address

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"serve.port: expected 1..65535, got {self.port}")
        for name in ("max_request_bytes", "max_text_chars"):
            if getattr(self, name) < 1:
                raise ConfigError(f"serve.{name}: expected a positive integer, got {getattr(self, name)}")
        if self.refresh_s <= 0:
            raise ConfigError(f"serve.refresh_s: expected a positive number of seconds, got {self.refresh_s}")


@dataclass(frozen=True)
class MetricsConfig:
    """`vectorlake metrics serve` (Prometheus text format) and the windows `vectorlake status` reports."""

    host: str = "127.0.0.1"  # bind address of the exposition endpoint; keep it local unless scraped remotely
    port: int = 9464
    status_window_minutes: int = 60  # `vectorlake status`: lag percentiles over this many recent minutes

    def __post_init__(self) -> None:
        if not 1 <= self.port <= 65535:
            raise ConfigError(f"metrics.port: expected 1..65535, got {self.port}")
        if self.status_window_minutes < 1:
            raise ConfigError(
                f"metrics.status_window_minutes: expected >= 1, got {self.status_window_minutes}"
            )


@dataclass(frozen=True)
class QualityConfig:
    """Thresholds of the great-expectations suites in ``expectations/`` (`vectorlake quality`)."""

    sample_rows: int = 20000  # rows per table read into a suite (whole Parquet files, up to this many)
    key_mostly: float = 0.999  # ids, event times, ops: share of rows that must be non-null
    field_mostly: float = 0.9  # served listings that must have a title, seller, locale and category
    locale_mostly: float = 0.99  # locales (normalized) that must be in the reference locale table
    category_mostly: float = 0.9  # served listings whose category_id must be in the reference taxonomy
    max_norm_error: float = 0.001  # | ||v|| - 1 | of every sampled vector
    max_mean_shift: float = 0.1  # drift: L2 distance of the sample's mean vector from the baseline's

    def __post_init__(self) -> None:
        if self.sample_rows < 1:
            raise ConfigError(f"quality.sample_rows: expected a positive integer, got {self.sample_rows}")
        for name in ("key_mostly", "field_mostly", "locale_mostly", "category_mostly"):
            value = getattr(self, name)
            if not 0.0 < value <= 1.0:
                raise ConfigError(f"quality.{name}: expected a share in (0, 1], got {value}")
        for name in ("max_norm_error", "max_mean_shift"):
            if getattr(self, name) <= 0.0:
                raise ConfigError(f"quality.{name}: expected a positive number, got {getattr(self, name)}")


@dataclass(frozen=True)
class Config:
    env: str
    stack: StackConfig
    opensearch: OpenSearchConfig
    index: IndexConfig
    embed: EmbedConfig
    sink: SinkConfig
    reindex: ReindexConfig
    gate: GateConfig
    airflow: AirflowConfig
    kafka: KafkaConfig
    s3: S3Config
    mlflow: MlflowConfig
    lake: LakeConfig
    sources: SourcesConfig
    reference: ReferenceConfig
    spark: SparkConfig
    warehouse: WarehouseConfig
    erasure: ErasureConfig = field(default_factory=ErasureConfig)
    contracts: ContractsConfig = field(default_factory=ContractsConfig)
    fetch: FetchConfig = field(default_factory=FetchConfig)
    quality: QualityConfig = field(default_factory=QualityConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    serve: ServeConfig = field(default_factory=ServeConfig)
    standalone: StandaloneConfig = field(default_factory=StandaloneConfig)

    @property
    def state_dir(self) -> Path:
        return Path(self.stack.state_dir)

    @property
    def checkpoint_root(self) -> str:
        return self.lake.checkpoint_root or f"{self.lake.root.rstrip('/')}/_checkpoints"

    @property
    def model_cache_dir(self) -> Path:
        return Path(self.embed.model_cache_dir or self.state_dir / "models")

    @property
    def opensearch_hosts(self) -> tuple[str, ...]:
        if self.opensearch.hosts:
            return self.opensearch.hosts
        if not self.stack.local:
            raise ConfigError("opensearch.hosts: required when stack.local is false")
        return (f"http://{self.stack.host}:{self.opensearch.port}",)

    @property
    def kafka_bootstrap_servers(self) -> str:
        if self.kafka.bootstrap_servers:
            return self.kafka.bootstrap_servers
        if not self.stack.local:
            raise ConfigError("kafka.bootstrap_servers: required when stack.local is false")
        return f"{self.stack.host}:{self.kafka.port}"

    @property
    def s3_endpoint_url(self) -> str | None:
        if self.s3.endpoint_url:
            return self.s3.endpoint_url
        return f"http://{self.stack.host}:{self.s3.port}" if self.stack.local else None

    @property
    def serve_url(self) -> str:
        """Where the query service answers: ``serve.host`` (loopback for a bind-all host), ``serve.port``."""
        host = "127.0.0.1" if self.serve.host in ("0.0.0.0", "") else self.serve.host  # noqa: S104
        return f"http://{host}:{self.serve.port}"

    @property
    def standalone_master_url(self) -> str:
        return f"spark://{self.stack.host}:{self.standalone.master_port}"

    @property
    def standalone_python(self) -> str:
        """The executors' Python on the local standalone cluster (made by `stack up --with spark`)."""
        return str(self.state_dir / "spark" / "node-env" / "bin" / "python")

    @property
    def airflow_home(self) -> Path:
        return Path(self.airflow.home or self.state_dir / "airflow")

    @property
    def labelled_queries(self) -> Path:
        return Path(self.gate.labelled_queries or Path(self.sources.landing_dir) / "queries.jsonl")

    @property
    def mlflow_tracking_uri(self) -> str:
        return self.mlflow.tracking_uri or f"sqlite:///{self.state_dir / 'mlflow' / 'mlflow.db'}"

    @property
    def mlflow_artifact_root(self) -> str:
        return self.mlflow.artifact_root or str(self.state_dir / "mlflow" / "artifacts")


# Keys holding a local path or a storage URI; every one goes through `normalize_path` in `load_config`.
_PATH_KEYS = {
    ("stack", "state_dir"),
    ("stack", "java_home"),
    ("lake", "root"),
    ("lake", "checkpoint_root"),
    ("sources", "landing_dir"),
    ("reference", "categories"),
    ("reference", "locales"),
    ("spark", "jars_dir"),
    ("spark", "s3a_jars_dir"),
    ("warehouse", "duckdb_path"),
    ("embed", "model_cache_dir"),
    ("airflow", "home"),
    ("gate", "labelled_queries"),
    ("fetch", "file_roots"),
    ("mlflow", "artifact_root"),
}

_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]+):(.*)$", re.DOTALL)  # two letters at least: not C:
_BUCKET_SCHEMES = {"s3", "s3a", "s3n", "gs", "abfs", "abfss", "wasb", "wasbs"}


def normalize_path(value: str, base: Path, key: str = "path") -> str:
    """One spelling per location: an absolute local path, or ``scheme://authority/path`` for storage.

    Local paths (and ``file:`` URIs, which become plain paths: Spark, delta-rs and pathlib all take
    those) expand ``~``, are taken relative to ``base``, and are resolved (``.``, ``..``, symlinks,
    repeated and trailing slashes). Other URIs keep scheme and authority (bucket); their path is
    normalized without touching storage, and a ``..`` above the bucket is a ConfigError naming ``key``,
    as is an empty value. Idempotent: ``normalize_path(normalize_path(v)) == normalize_path(v)``.
    """
    if not value.strip():
        raise ConfigError(f"{key}: an empty path; give a folder or file, or null where the key allows it")
    uri = _SCHEME.match(value)
    if uri is None:
        return str((base / Path(value).expanduser()).resolve())
    scheme, rest = uri.group(1).lower(), uri.group(2)
    authority: str | None = None
    if rest.startswith("//"):
        authority, slash, rest = rest[2:].partition("/")
        rest = slash + rest
    if scheme == "file":
        if authority not in (None, "", "localhost") or not rest.startswith("/"):
            raise ConfigError(f"{key}: {value!r} is not a local file: URI; write file:///<absolute path>")
        return str(Path(rest).resolve())
    if authority is None and not rest.startswith("/"):
        raise ConfigError(f"{key}: {value!r} has no absolute path after {scheme}:; write {scheme}:/<path>")
    if not authority and scheme in _BUCKET_SCHEMES:
        raise ConfigError(f"{key}: {value!r} names no bucket; write {scheme}://<bucket>/<path>")
    parts: list[str] = []
    for part in rest.split("/"):
        if part == "..":
            if not parts:
                top = f"the bucket {authority!r}" if authority else f"the root of {scheme}:"
                raise ConfigError(f"{key}: {value!r} goes above {top}; remove the '..'")
            parts.pop()
        elif part not in ("", "."):
            parts.append(part)
    path = "/" + "/".join(parts) if parts or not authority else ""
    return f"{scheme}:{path}" if authority is None else f"{scheme}://{authority}{path}"


def load_config(
    env: str | None = None,
    conf_dir: Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> Config:
    """Build the config from the YAML layers and the environment; raise ConfigError naming a bad key."""
    environ = os.environ if environ is None else environ
    env = env or environ.get("VECTORLAKE_ENV", "local")
    conf_dir = conf_dir or Path(environ.get("VECTORLAKE_CONF_DIR", PROJECT_ROOT / "conf"))
    base = _read_yaml(conf_dir / "base.yaml", required=True)
    overlay = _read_yaml(conf_dir / f"{env}.yaml", required=env != "local")
    merged = _deep_merge(base, overlay)
    merged = _apply_env_overrides(merged, environ)
    merged["env"] = env
    _normalize_paths(merged, conf_dir.resolve().parent)
    return typing.cast(Config, _build(Config, merged, ""))


def _read_yaml(path: Path, required: bool) -> dict[str, Any]:
    if not path.exists():
        if required:
            raise ConfigError(f"config file {path} does not exist (is VECTORLAKE_ENV right?)")
        return {}
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as e:
        raise ConfigError(f"{path} is not valid YAML: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must hold a mapping of sections, not {type(data).__name__}")
    return data


def _deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


def _apply_env_overrides(data: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    out: dict[str, Any] = json.loads(json.dumps(data))  # a deep copy of plain YAML data
    for name, raw in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        parts = [p.lower() for p in name[len(ENV_PREFIX) :].split("__")]
        if len(parts) < 2 or not all(parts):
            raise ConfigError(f"{name}: expected VECTORLAKE__<SECTION>__<KEY>")
        hint = _field_type(Config, parts, name)
        node = out
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = _parse_env_value(raw, hint, name)
    return out


def _field_type(cls: Any, parts: list[str], origin: str) -> Any:
    """The declared type at a dotted path, or ConfigError if the path names no field."""
    current = cls
    for i, part in enumerate(parts):
        hints = typing.get_type_hints(current) if dataclasses.is_dataclass(current) else {}
        if part not in hints or part == "env":
            if _is_mapping(current):
                return str
            path = ".".join(parts[: i + 1])
            raise ConfigError(f"{origin}: unknown config key '{path}'")
        current = hints[part]
    return current


def _parse_env_value(raw: str, hint: Any, name: str) -> Any:
    base, optional = _unwrap_optional(hint)
    if optional and raw.strip().lower() in ("", "null", "none"):
        return None
    if _is_mapping(base) or typing.get_origin(base) is tuple:
        try:
            return json.loads(raw)
        except json.JSONDecodeError as e:
            if typing.get_origin(base) is tuple:
                return [item.strip() for item in raw.split(",") if item.strip()]
            raise ConfigError(f"{name}: expected a JSON object, got {raw!r}") from e
    if base is bool:
        lowered = raw.strip().lower()
        if lowered in ("1", "true", "yes", "on"):
            return True
        if lowered in ("0", "false", "no", "off"):
            return False
        raise ConfigError(f"{name}: expected true or false, got {raw!r}")
    if base is int:
        try:
            return int(raw)
        except ValueError as e:
            raise ConfigError(f"{name}: expected an integer, got {raw!r}") from e
    if base is float:
        try:
            return float(raw)
        except ValueError as e:
            raise ConfigError(f"{name}: expected a number, got {raw!r}") from e
    return raw


def _normalize_paths(data: dict[str, Any], base: Path) -> None:
    for section, key in sorted(_PATH_KEYS):
        node = data.get(section)
        if isinstance(node, dict) and isinstance(node.get(key), str):
            node[key] = normalize_path(node[key], base, f"{section}.{key}")
        elif isinstance(node, dict) and isinstance(node.get(key), list):  # a list of folders
            node[key] = [
                normalize_path(v, base, f"{section}.{key}[{i}]") if isinstance(v, str) else v
                for i, v in enumerate(node[key])
            ]


def _unwrap_optional(hint: Any) -> tuple[Any, bool]:
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        return (args[0] if len(args) == 1 else hint), type(None) in typing.get_args(hint)
    return hint, False


def _is_mapping(hint: Any) -> bool:
    return typing.get_origin(hint) in (Mapping, dict) or hint in (dict, Mapping)


def _type_name(hint: Any) -> str:
    if typing.get_origin(hint) is Literal:
        return " | ".join(repr(a) for a in typing.get_args(hint))
    return getattr(hint, "__name__", str(hint))


def _build(hint: Any, value: Any, path: str) -> Any:
    """Check ``value`` against ``hint`` and build dataclasses; ConfigError names the offending key."""
    where = path or "config"
    base, optional = _unwrap_optional(hint)
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{where}: a value is required ({_type_name(base)})")
    if dataclasses.is_dataclass(base):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a section (mapping), got {type(value).__name__}")
        hints = typing.get_type_hints(base)
        names = {f.name for f in dataclasses.fields(base)}
        unknown = sorted(set(value) - names)
        if unknown:
            raise ConfigError(f"{path + '.' if path else ''}{unknown[0]}: unknown config key")
        kwargs = {}
        for f in dataclasses.fields(base):
            sub = f"{path}.{f.name}" if path else f.name
            if f.name not in value:
                if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING:
                    continue
                raise ConfigError(f"{sub}: missing config key")
            kwargs[f.name] = _build(hints[f.name], value[f.name], sub)
        return typing.cast(Any, base)(**kwargs)
    if typing.get_origin(base) is Literal:
        if value not in typing.get_args(base):
            raise ConfigError(f"{where}: expected one of {_type_name(base)}, got {value!r}")
        return value
    if typing.get_origin(base) is tuple:
        if not isinstance(value, list | tuple):
            raise ConfigError(f"{where}: expected a list, got {type(value).__name__} {value!r}")
        item_type = typing.get_args(base)[0]
        return tuple(_build(item_type, v, f"{where}[{i}]") for i, v in enumerate(value))
    if _is_mapping(base):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(value).__name__} {value!r}")
        return types.MappingProxyType({str(k): str(v) for k, v in value.items()})
    if base is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {type(value).__name__} {value!r}")
        return value
    if base is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {type(value).__name__} {value!r}")
        return value
    if base is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ConfigError(f"{where}: expected a number, got {type(value).__name__} {value!r}")
        return float(value)
    if base is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {type(value).__name__} {value!r}")
        return value
    raise ConfigError(f"{where}: unsupported config type {_type_name(base)}")
