from __future__ import annotations

from pathlib import Path

import pytest

from vectorlake.config import PROJECT_ROOT, load_config
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
    text = (REAL_CONF / "prod.yaml").read_text().lower()
    for word in ("password:", "secret:", "token:", "private_key:"):
        assert word not in text
