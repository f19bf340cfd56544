"""The one way S3 clients are built (`vectorlake.s3`): the local stack's own credentials whatever the shell
holds, boto3's chain elsewhere, and a one-line error (before anything is erased) when that chain is empty.
No server: requests are caught as botocore is about to send them."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path
from typing import Any

import pytest

from vectorlake import s3
from vectorlake.config import Config, load_config
from vectorlake.embed import fetch
from vectorlake.errors import VectorlakeError
from vectorlake.ops import erasure


class _Caught(Exception):
    """Raised instead of sending a request: carries its headers."""

    def __init__(self, headers: dict[str, str]) -> None:
        super().__init__("request not sent")
        self.headers = headers


def _sent_headers(client: Any) -> dict[str, str]:
    """The headers of a signed ListBuckets request from ``client``, caught before it leaves."""

    def catch(request: Any, **_: Any) -> None:
        raise _Caught({k: v.decode() if isinstance(v, bytes) else v for k, v in request.headers.items()})

    client.meta.events.register("before-send.s3.*", catch)
    with pytest.raises(_Caught) as caught:
        client.list_buckets()
    return caught.value.headers


def _no_aws(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """A shell without AWS: no AWS_* variable, no config or credentials file, no instance metadata."""
    for name in [n for n in os.environ if n.startswith("AWS_")]:
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")


def _bogus_aws(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "bogus")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "bogus")
    monkeypatch.setenv("AWS_SESSION_TOKEN", "bogus-token")
    monkeypatch.setenv("AWS_PROFILE", "nonexistent")


@pytest.fixture
def prod() -> Config:
    return load_config(env="prod", environ={})


def test_the_local_stack_is_reached_with_its_own_credentials_whatever_the_shell_holds(
    cfg: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    _bogus_aws(monkeypatch)
    assert s3.is_local_stack(cfg)
    client = s3.client(cfg)
    assert client.meta.endpoint_url == f"http://{cfg.stack.host}:{cfg.s3.port}" == cfg.s3_endpoint_url
    assert client.meta.region_name == cfg.s3.region
    headers = _sent_headers(client)
    assert f"Credential={s3.LOCAL_ACCESS_KEY_ID}/" in headers["Authorization"]
    assert "X-Amz-Security-Token" not in headers  # the shell's session token is not sent either
    s3.require_credentials(cfg)  # nothing to require locally

    options = s3.storage_options(cfg)
    assert options["AWS_ACCESS_KEY_ID"] == s3.LOCAL_ACCESS_KEY_ID
    assert options["AWS_SECRET_ACCESS_KEY"] == s3.LOCAL_SECRET_ACCESS_KEY
    assert options["AWS_ENDPOINT_URL"] == cfg.s3_endpoint_url and options["AWS_ALLOW_HTTP"] == "true"
    hadoop = s3.hadoop_conf(cfg)
    assert hadoop["spark.hadoop.fs.s3a.access.key"] == s3.LOCAL_ACCESS_KEY_ID
    assert hadoop["spark.hadoop.fs.s3a.endpoint"] == cfg.s3_endpoint_url


def test_the_local_stack_needs_no_aws_variables_at_all(
    cfg: Config, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _no_aws(monkeypatch, tmp_path)
    assert f"Credential={s3.LOCAL_ACCESS_KEY_ID}/" in _sent_headers(s3.client(cfg))["Authorization"]
    fetch._s3_client.cache_clear()
    try:
        image_client = fetch._s3_client(cfg.s3_endpoint_url, cfg.s3.region, 5.0, True)
        assert image_client is not None
        assert f"Credential={s3.LOCAL_ACCESS_KEY_ID}/" in _sent_headers(image_client)["Authorization"]
        # outside the local stack, no credentials means no client: the fetch refuses, never reads anonymously
        assert fetch._s3_client(cfg.s3_endpoint_url, cfg.s3.region, 5.0, False) is None
    finally:
        fetch._s3_client.cache_clear()


def test_elsewhere_the_environment_credentials_are_used(
    prod: Config, cfg: Config, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _no_aws(monkeypatch, tmp_path)
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDFROMSHELL")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    # an explicit endpoint that is not the stack's (e.g. MinIO) is not the local stack, even locally
    minio = dataclasses.replace(cfg, s3=dataclasses.replace(cfg.s3, endpoint_url="https://minio.example"))
    for config in (prod, minio):
        assert not s3.is_local_stack(config)
        s3.require_credentials(config)
        client = s3.client(config)
        assert client.meta.region_name == config.s3.region
        assert "Credential=AKIDFROMSHELL/" in _sent_headers(client)["Authorization"]
        assert "AWS_ACCESS_KEY_ID" not in s3.storage_options(config)
    assert prod.s3_endpoint_url is None and s3.hadoop_conf(prod) == {}
    assert s3.storage_options(minio)["AWS_ALLOW_HTTP"] == "false"


def test_missing_credentials_outside_the_stack_are_a_one_line_error(
    prod: Config, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _no_aws(monkeypatch, tmp_path)
    with pytest.raises(s3.S3CredentialsError) as missing:
        s3.require_credentials(prod)
    assert isinstance(missing.value, VectorlakeError)  # the CLI prints it as one line, no traceback
    message = str(missing.value)
    assert "\n" not in message and "no AWS credentials" in message and "AWS_PROFILE" in message

    monkeypatch.setenv("AWS_PROFILE", "nonexistent")
    with pytest.raises(s3.S3CredentialsError, match="nonexistent") as bad_profile:
        s3.require_credentials(prod)
    assert "\n" not in str(bad_profile.value)


def test_purge_and_verify_fail_on_missing_credentials_before_touching_any_store(
    prod: Config, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _no_aws(monkeypatch, tmp_path)

    class NoSpark:
        def __getattr__(self, name: str) -> Any:
            raise AssertionError(f"a store was reached (spark.{name}) before the credential check")

    with pytest.raises(s3.S3CredentialsError):
        erasure.purge(NoSpark(), prod)  # type: ignore[arg-type]
    with pytest.raises(s3.S3CredentialsError):
        erasure.verify(NoSpark(), prod, "some-request")  # type: ignore[arg-type]
    with pytest.raises(s3.S3CredentialsError):  # the control tables of prod's lake are on S3
        erasure.record_request(prod, "seller", "s-1")


def test_mlflow_gets_the_stack_credentials_for_s3_artifacts_only_while_it_needs_them(
    cfg: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    _bogus_aws(monkeypatch)
    before = dict(os.environ)
    with s3.mlflow_artifacts(cfg, "/tmp/mlflow/artifacts/1"):
        assert dict(os.environ) == before
    with s3.mlflow_artifacts(cfg, "s3://vectorlake/mlflow/1/model"):
        assert os.environ["MLFLOW_S3_ENDPOINT_URL"] == cfg.s3_endpoint_url
        assert os.environ["AWS_ACCESS_KEY_ID"] == s3.LOCAL_ACCESS_KEY_ID
        assert "AWS_PROFILE" not in os.environ and "AWS_SESSION_TOKEN" not in os.environ
    assert dict(os.environ) == before
