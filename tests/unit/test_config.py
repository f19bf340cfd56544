from __future__ import annotations

import re
from pathlib import Path

import pytest

from vectorlake.config import PROJECT_ROOT, load_config, normalize_path
from vectorlake.errors import ConfigError

REAL_CONF = PROJECT_ROOT / "conf"


def _conf_dir(tmp_path: Path, local: str = "", extra: dict[str, str] | None = None) -> Path:
    d = tmp_path / "conf"
    d.mkdir()
    (d / "base.yaml").write_text((REAL_CONF / "base.yaml").read_text())
    (d / "local.yaml").write_text(local)
    for name, text in (extra or {}).items():
        (d / name).write_text(text)
    return d


def test_layers_apply_in_order_base_then_env_file_then_environment(tmp_path: Path) -> None:
    d = _conf_dir(
        tmp_path,
        local="index:\n  alias: from_local\n  m: 32\nkafka:\n  partitions: 3\n",
    )
    cfg = load_config(conf_dir=d, environ={"VECTORLAKE__INDEX__ALIAS": "from_env"})
    assert cfg.env == "local"
    assert cfg.index.alias == "from_env"  # environment beats conf/local.yaml
    assert cfg.index.m == 32  # conf/local.yaml beats conf/base.yaml
    assert cfg.kafka.partitions == 3
    assert cfg.index.ef_search == 100  # untouched keys keep the base value


def test_required_overrides_for_operators_and_tests(tmp_path: Path) -> None:
    cfg = load_config(
        environ={
            "VECTORLAKE__LAKE__ROOT": str(tmp_path / "lake"),
            "VECTORLAKE__SOURCES__LANDING_DIR": str(tmp_path / "landing"),
            "VECTORLAKE__INDEX__ALIAS": "listings_test",
        }
    )
    assert cfg.lake.root == str(tmp_path / "lake")
    assert cfg.sources.landing_dir == str(tmp_path / "landing")
    assert cfg.index.alias == "listings_test"
    assert cfg.checkpoint_root == f"{tmp_path / 'lake'}/_checkpoints"


def test_env_values_are_parsed_as_the_field_type() -> None:
    cfg = load_config(
        environ={
            "VECTORLAKE__OPENSEARCH__PORT": "19200",
            "VECTORLAKE__OPENSEARCH__VERIFY_CERTS": "false",
            "VECTORLAKE__OPENSEARCH__HOSTS": "https://a:443,https://b:443",
            "VECTORLAKE__SPARK__CONF": '{"spark.sql.ansi.enabled": "true"}',
            "VECTORLAKE__SOURCES__TOPICS__MEDIA": "media_v2",
            "VECTORLAKE__MLFLOW__TRACKING_URI": "null",
        }
    )
    assert cfg.opensearch.port == 19200
    assert cfg.opensearch.verify_certs is False
    assert cfg.opensearch_hosts == ("https://a:443", "https://b:443")
    assert dict(cfg.spark.conf) == {"spark.sql.ansi.enabled": "true"}
    assert cfg.sources.topics.media == "media_v2"
    assert cfg.mlflow.tracking_uri is None


def test_local_addresses_follow_the_configured_ports() -> None:
    cfg = load_config(environ={"VECTORLAKE__OPENSEARCH__PORT": "19200", "VECTORLAKE__KAFKA__PORT": "19092"})
    assert cfg.opensearch_hosts == ("http://127.0.0.1:19200",)
    assert cfg.kafka_bootstrap_servers == "127.0.0.1:19092"
    assert cfg.s3_endpoint_url == "http://127.0.0.1:5001"


def test_relative_paths_resolve_against_the_project_root(tmp_path: Path) -> None:
    d = _conf_dir(tmp_path, local="lake:\n  root: data/lake\n")
    cfg = load_config(conf_dir=d, environ={})
    assert cfg.lake.root == str(tmp_path / "data" / "lake")
    cfg = load_config(conf_dir=d, environ={"VECTORLAKE__LAKE__ROOT": "s3a://bucket/lake"})
    assert cfg.lake.root == "s3a://bucket/lake"  # URIs are left alone


# Every key that holds a path or storage URI (issue 16: each must come out absolute and normalized).
PATH_KEYS = [
    "stack__state_dir",
    "stack__java_home",
    "lake__root",
    "lake__checkpoint_root",
    "sources__landing_dir",
    "reference__categories",
    "reference__locales",
    "spark__jars_dir",
    "warehouse__duckdb_path",
    "embed__model_cache_dir",
    "airflow__home",
    "gate__labelled_queries",
    "mlflow__artifact_root",
]


def _value(cfg: object, key: str) -> object:
    for part in key.split("__"):
        cfg = getattr(cfg, part)
    return cfg


@pytest.mark.parametrize("key", PATH_KEYS)
def test_every_path_key_comes_out_absolute_and_normalized(key: str) -> None:
    cfg = load_config(environ={f"VECTORLAKE__{key.upper()}": "./x/../y//z/"})
    assert _value(cfg, key) == str(PROJECT_ROOT / "y" / "z")
    cfg = load_config(environ={f"VECTORLAKE__{key.upper()}": "s3a://bucket//a/./b/../c/"})
    assert _value(cfg, key) == "s3a://bucket/a/c"


@pytest.mark.parametrize("env", ["local", "prod"])
def test_shipped_path_values_are_already_normal(env: str) -> None:
    cfg = load_config(env=env, environ={})
    for key in PATH_KEYS:
        value = _value(cfg, key)
        if value is not None:
            assert isinstance(value, str)
            assert value.startswith(("/", "s3a://")), (key, value)
            assert normalize_path(value, Path("/elsewhere")) == value, (key, value)
    if env == "local":
        assert cfg.lake.root == str(PROJECT_ROOT / ".vectorlake" / "lake")
        assert cfg.checkpoint_root == str(PROJECT_ROOT / ".vectorlake" / "lake" / "_checkpoints")
        assert cfg.reference.categories == str(PROJECT_ROOT / "conf" / "reference" / "categories.csv")
    else:
        assert cfg.lake.root == "s3a://vectorlake-prod-lake/lake"
        assert cfg.sources.landing_dir == "s3a://vectorlake-prod-landing/events"


def test_a_lake_root_with_dotdot_from_the_environment_is_collapsed(tmp_path: Path) -> None:
    (tmp_path / "runs").mkdir()
    cfg = load_config(environ={"VECTORLAKE__LAKE__ROOT": f"{tmp_path}/runs/../lake/"})
    assert cfg.lake.root == str(tmp_path / "lake")
    assert cfg.checkpoint_root == f"{tmp_path}/lake/_checkpoints"


@pytest.mark.parametrize(
    ("value", "want"),
    [
        ("lake", "{base}/lake"),  # relative: against the base (the project root in load_config)
        ("./a/./b", "{base}/a/b"),
        ("a/../../up", "{base_parent}/up"),
        ("a//b///", "{base}/a/b"),  # repeated and trailing slashes
        ("/abs/runs/../lake", "/abs/lake"),
        ("//abs//lake/", "/abs/lake"),
        ("/abs/lake/.", "/abs/lake"),
        ("/..", "/"),  # POSIX: the parent of / is /
        ("~/lake/../cache", "{home}/cache"),
        ("~", "{home}"),
        ("file:/abs/lake/", "/abs/lake"),  # file: URIs become plain paths
        ("file:///abs/runs/../lake", "/abs/lake"),
        ("file://localhost/abs//lake", "/abs/lake"),
        ("FILE:///abs/lake", "/abs/lake"),
        ("s3a://bucket/a/../b/", "s3a://bucket/b"),
        ("s3a://bucket//a///b/./c", "s3a://bucket/a/b/c"),
        ("s3a://bucket/", "s3a://bucket"),
        ("s3a://bucket/a/..", "s3a://bucket"),
        ("S3A://Bucket/Key", "s3a://Bucket/Key"),  # the scheme is case-insensitive, bucket and key are not
        ("s3://bucket/x/", "s3://bucket/x"),
        ("hdfs://namenode:8020/data/../lake", "hdfs://namenode:8020/lake"),
        ("hdfs:///data/./lake/", "hdfs:///data/lake"),  # no authority: the default file system
        ("dbfs:/mnt/../lake", "dbfs:/lake"),
    ],
)
def test_normalize_path(value: str, want: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    base = tmp_path / "repo"
    expected = want.format(base=base, base_parent=tmp_path, home=home)
    got = normalize_path(value, base)
    assert got == expected
    assert normalize_path(got, base) == got  # idempotent
    assert normalize_path(got, tmp_path / "elsewhere") == got  # a normal value no longer depends on the base


def test_local_paths_resolve_symlinks_before_dotdot(tmp_path: Path) -> None:
    # what the OS (and so Spark and delta-rs) opens: link/.. is the parent of link's target
    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "link").symlink_to(tmp_path / "real" / "sub")
    assert normalize_path(f"{tmp_path}/link/../lake", Path("/")) == str(tmp_path / "real" / "lake")
    assert normalize_path("link/", tmp_path) == str(tmp_path / "real" / "sub")


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("s3a://b/../x", "lake.root: 's3a://b/../x' goes above the bucket 'b'; remove the '..'"),
        ("s3a://b/a/../../x", "lake.root: 's3a://b/a/../../x' goes above the bucket 'b'"),
        ("hdfs:///..", "lake.root: 'hdfs:///..' goes above the root of hdfs:"),
        ("s3a:///lake", "lake.root: 's3a:///lake' names no bucket"),
        ("file://otherhost/lake", "lake.root: 'file://otherhost/lake' is not a local file: URI"),
        ("file:lake", "lake.root: 'file:lake' is not a local file: URI"),
        ("dbfs:lake", "lake.root: 'dbfs:lake' has no absolute path after dbfs:"),
    ],
)
def test_bad_path_values_fail_naming_the_key(value: str, message: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(message)) as e:
        load_config(environ={"VECTORLAKE__LAKE__ROOT": value})
    assert "\n" not in str(e.value)  # one line


@pytest.mark.parametrize("spelling", ["''", "'   '"])
def test_an_empty_path_is_a_config_error(tmp_path: Path, spelling: str) -> None:
    d = _conf_dir(tmp_path, local=f"sources:\n  landing_dir: {spelling}\n")
    with pytest.raises(ConfigError, match=r"^sources\.landing_dir: an empty path"):
        load_config(conf_dir=d, environ={})


def test_config_is_frozen() -> None:
    cfg = load_config(environ={})
    with pytest.raises(AttributeError):
        cfg.index.alias = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        cfg.spark.conf["x"] = "y"  # type: ignore[index]


@pytest.mark.parametrize(
    ("local", "message"),
    [
        ("index:\n  aliass: x\n", "index.aliass: unknown config key"),
        ("nonsense:\n  a: 1\n", "nonsense: unknown config key"),
        ("kafka:\n  port: nine\n", "kafka.port: expected an integer, got str 'nine'"),
        ("opensearch:\n  verify_certs: 'yes'\n", "opensearch.verify_certs: expected true or false"),
        ("opensearch:\n  auth: kerberos\n", "opensearch.auth: expected one of 'none' | 'basic' | 'sigv4'"),
        ("index:\n  alias: null\n", "index.alias: a value is required"),
        ("sources:\n  topics: [a, b]\n", "sources.topics: expected a section"),
        ("- just\n- a list\n", "must hold a mapping of sections"),
        ("index: {alias: [unclosed\n", "is not valid YAML"),
    ],
)
def test_bad_files_fail_naming_the_key(tmp_path: Path, local: str, message: str) -> None:
    d = _conf_dir(tmp_path, local=local)
    with pytest.raises(ConfigError, match=message.replace("|", r"\|").replace("(", r"\(")):
        load_config(conf_dir=d, environ={})


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"VECTORLAKE__LAKE__ROOTT": "/x"}, "VECTORLAKE__LAKE__ROOTT: unknown config key 'lake.roott'"),
        ({"VECTORLAKE__NOPE__X": "1"}, "VECTORLAKE__NOPE__X: unknown config key 'nope'"),
        ({"VECTORLAKE__LAKE": "/x"}, "VECTORLAKE__LAKE: expected VECTORLAKE__<SECTION>__<KEY>"),
        ({"VECTORLAKE__INDEX__M": "many"}, "VECTORLAKE__INDEX__M: expected an integer, got 'many'"),
        ({"VECTORLAKE__OPENSEARCH__VERIFY_CERTS": "maybe"}, "expected true or false, got 'maybe'"),
        ({"VECTORLAKE__INDEX__ENGINE": "annoy"}, "index.engine: expected one of"),
        ({"VECTORLAKE__SPARK__CONF": "not json"}, "VECTORLAKE__SPARK__CONF: expected a JSON object"),
    ],
)
def test_bad_environment_overrides_fail_naming_the_key(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace("|", r"\|")):
        load_config(environ=environ)


def test_missing_environment_file_is_an_error_except_for_local(tmp_path: Path) -> None:
    d = _conf_dir(tmp_path)
    (d / "local.yaml").unlink()
    assert load_config(conf_dir=d, environ={}).env == "local"
    with pytest.raises(ConfigError, match=r"staging\.yaml does not exist"):
        load_config(conf_dir=d, environ={"VECTORLAKE_ENV": "staging"})


def test_prod_names_real_services_and_holds_no_secrets() -> None:
    cfg = load_config(env="prod", environ={})
    assert cfg.stack.local is False
    assert cfg.lake.root.startswith("s3a://")
    assert cfg.opensearch.auth == "sigv4" and cfg.opensearch.verify_certs is True
    assert all(h.startswith("https://") for h in cfg.opensearch_hosts)
    assert cfg.kafka.security_protocol == "SASL_SSL"
    assert cfg.s3_endpoint_url is None
    assert cfg.spark.master is None and cfg.spark.jars_dir is None
    assert cfg.warehouse.target == "snowflake"
    # GPU executors get model batches the size the GPU bench measured best, and Arrow batches that hold them
    assert cfg.embed.batch_size == 1024 and cfg.embed.arrow_batch_size >= cfg.embed.batch_size
    # the runbook's production erasure settings (4.5): no vacuum of files a live writer or reader needs
    assert cfg.erasure.vacuum_retention_hours >= 24 and cfg.erasure.catch_up_index is False
    text = (REAL_CONF / "prod.yaml").read_text().lower()
    for word in ("password:", "secret:", "token:", "private_key:"):
        assert word not in text


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        (
            {"VECTORLAKE__INDEX__GC_DELETES_S": "30"},
            "index.gc_deletes_s: expected whole seconds, at least 60",
        ),
        ({"VECTORLAKE__CONTRACTS__MAX_ID_BYTES": "600"}, "contracts.max_id_bytes: at most 512"),
        (
            {"VECTORLAKE__CONTRACTS__MAX_TITLE_BYTES": "0"},
            "contracts.max_title_bytes: expected a positive integer",
        ),
    ],
)
def test_contract_bounds_are_checked_when_the_config_loads(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=re.escape(message)):
        load_config(environ=environ)
    assert (
        load_config(environ={"VECTORLAKE__CONTRACTS__MAX_TITLE_BYTES": "300"}).contracts.max_title_bytes
        == 300
    )


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"VECTORLAKE__FETCH__SCHEMES": "https,ftp"}, "fetch.schemes: 'ftp' is not one of"),
        ({"VECTORLAKE__FETCH__MAX_BYTES": "0"}, "fetch.max_bytes: expected a positive integer"),
        ({"VECTORLAKE__FETCH__DEADLINE_S": "-1"}, "fetch.deadline_s: expected a positive number"),
        ({"VECTORLAKE__FETCH__MAX_REDIRECTS": "-1"}, "fetch.max_redirects: expected 0 or more"),
    ],
)
def test_the_fetch_policy_is_checked_when_the_config_loads(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(message)) as e:
        load_config(environ=environ)
    assert "\n" not in str(e.value)


def test_fetch_roots_are_normalized_and_prod_reads_only_its_image_bucket_over_https() -> None:
    from vectorlake.embed.fetch import FetchPolicy

    local = load_config(environ={"VECTORLAKE__FETCH__FILE_ROOTS": "data/images/,/srv/x/../images"})
    assert local.fetch.file_roots == (str(PROJECT_ROOT / "data/images"), "/srv/images")
    policy = FetchPolicy.from_config(load_config(environ={}))
    assert policy.file_roots is None and policy.s3_buckets == ("vectorlake",)  # s3.bucket by default
    assert policy.s3_local_stack
    prod = FetchPolicy.from_config(load_config(environ={"VECTORLAKE_ENV": "prod"}))
    assert prod.schemes == ("s3", "https") and prod.file_roots == ()
    assert prod.s3_buckets == ("vectorlake-prod-images",) and not prod.s3_local_stack


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"VECTORLAKE__SERVE__PORT": "70000"}, "serve.port: expected 1..65535"),
        (
            {"VECTORLAKE__SERVE__MAX_REQUEST_BYTES": "0"},
            "serve.max_request_bytes: expected a positive integer",
        ),
        ({"VECTORLAKE__SERVE__MAX_TEXT_CHARS": "-5"}, "serve.max_text_chars: expected a positive integer"),
        ({"VECTORLAKE__SERVE__REFRESH_S": "0"}, "serve.refresh_s: expected a positive number"),
    ],
)
def test_the_query_service_settings_are_checked_when_the_config_loads(
    environ: dict[str, str], message: str
) -> None:
    with pytest.raises(ConfigError, match="^" + re.escape(message)):
        load_config(environ=environ)


def test_the_query_service_takes_only_public_http_images_from_outside() -> None:
    from vectorlake.serve.app import image_policy

    cfg = load_config(environ={"VECTORLAKE__SERVE__IMAGE_HOSTS": "127.0.0.1:8088"})
    policy = image_policy(cfg)
    assert cfg.fetch.schemes != policy.schemes and set(policy.schemes) == {"http", "https"}
    assert policy.allow_hosts == ("127.0.0.1:8088",) and policy.max_bytes == cfg.fetch.max_bytes
    assert image_policy(load_config(environ={"VECTORLAKE_ENV": "prod"})).schemes == ("https",)


def test_the_query_service_url_is_where_clients_reach_it() -> None:
    assert load_config(environ={}).serve_url == "http://127.0.0.1:8000"
    bind_all = {"VECTORLAKE__SERVE__HOST": "0.0.0.0", "VECTORLAKE__SERVE__PORT": "8123"}  # noqa: S104
    cfg = load_config(environ=bind_all)
    assert cfg.serve_url == "http://127.0.0.1:8123"  # a bind-all service is reached on loopback
