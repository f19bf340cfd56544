"""Every S3 client of vectorlake, built one way: endpoint, region and credentials from the config.

    s3 = client(cfg)                          # boto3 (erasure, tests)
    DeltaTable(uri, storage_options=storage_options(cfg))   # delta-rs (control tables)
    with mlflow_artifacts(cfg, uri): ...      # mlflow's own S3 client (artifacts on s3://)
    require_credentials(cfg)                  # before a command changes anything

Against the local stack (``stack.local`` with the S3 endpoint the stack's own moto server) every client
signs with the stack's fixed credentials and ignores the shell's ``AWS_*`` variables, profile and config
files: moto accepts any credentials, and what a shell happens to hold must not decide whether a command
works. Anywhere else credentials come from boto3's chain (environment, profile, instance or task role);
`require_credentials` turns their absence into a one-line error instead of a traceback halfway through.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from typing import Any

from vectorlake.config import Config
from vectorlake.errors import VectorlakeError

# The local moto server's credentials: it accepts any, these only make every request signed the same way.
LOCAL_ACCESS_KEY_ID = "vectorlake-local"
LOCAL_SECRET_ACCESS_KEY = "vectorlake-local"  # noqa: S105 - a local demo server's, not a secret

# botocore session variables that would read the shell's profile and AWS config files
_NO_SHELL_CONFIG = {
    "profile": (None, None, None, None),
    "config_file": (None, None, os.devnull, None),
    "credentials_file": (None, None, os.devnull, None),
}

_CREDENTIALS_HINT = (
    "set AWS_PROFILE or AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run with an instance/task role"
)


class S3CredentialsError(VectorlakeError):
    """No usable AWS credentials for S3 outside the local stack."""


def is_local_stack(cfg: Config) -> bool:
    """Whether S3 is the local stack's moto server (then the stack's credentials are used)."""
    return cfg.stack.local and cfg.s3_endpoint_url == f"http://{cfg.stack.host}:{cfg.s3.port}"


def boto_session(region: str, local_stack: bool) -> Any:
    """A boto3 session: the stack's fixed credentials, isolated from the shell, or boto3's default chain."""
    import boto3

    if not local_stack:
        return boto3.session.Session(region_name=region)
    import botocore.session

    return boto3.session.Session(
        aws_access_key_id=LOCAL_ACCESS_KEY_ID,
        aws_secret_access_key=LOCAL_SECRET_ACCESS_KEY,
        region_name=region,
        botocore_session=botocore.session.Session(session_vars=_NO_SHELL_CONFIG),
    )


def client(cfg: Config, config: Any = None) -> Any:
    """A boto3 S3 client for ``cfg`` (``config``: an optional ``botocore.config.Config``)."""
    session = boto_session(cfg.s3.region, is_local_stack(cfg))
    return session.client("s3", endpoint_url=cfg.s3_endpoint_url, region_name=cfg.s3.region, config=config)


def storage_options(cfg: Config) -> dict[str, str]:
    """delta-rs (object_store) options for ``s3://`` paths: region, endpoint, and the stack's credentials."""
    options = {"AWS_REGION": cfg.s3.region}
    endpoint = cfg.s3_endpoint_url
    if endpoint:
        options["AWS_ENDPOINT_URL"] = endpoint
        options["AWS_ALLOW_HTTP"] = str(endpoint.startswith("http://")).lower()
    if is_local_stack(cfg):
        options["AWS_ACCESS_KEY_ID"] = LOCAL_ACCESS_KEY_ID
        options["AWS_SECRET_ACCESS_KEY"] = LOCAL_SECRET_ACCESS_KEY
    return options


def hadoop_conf(cfg: Config) -> dict[str, str]:
    """Spark (hadoop-aws s3a) settings for the endpoint and, locally, the stack's credentials."""
    endpoint = cfg.s3_endpoint_url
    if not endpoint:
        return {}
    conf = {"spark.hadoop.fs.s3a.endpoint": endpoint, "spark.hadoop.fs.s3a.path.style.access": "true"}
    if is_local_stack(cfg):
        conf |= {
            # moto's server answers "Expect: 100-continue" with a status the AWS SDK v2 takes for an error:
            # no such header from the sync client, and file uploads (RocksDB state files) through it too
            # instead of the transfer manager's async client
            "spark.hadoop.fs.s3a.connection.expect.continue": "false",
            "spark.hadoop.fs.s3a.optimized.copy.from.local.enabled": "false",
            "spark.hadoop.fs.s3a.aws.credentials.provider": (
                "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
            ),
            "spark.hadoop.fs.s3a.access.key": LOCAL_ACCESS_KEY_ID,
            "spark.hadoop.fs.s3a.secret.key": LOCAL_SECRET_ACCESS_KEY,
        }
    return conf


def require_credentials(cfg: Config) -> None:
    """Raise S3CredentialsError (one line) when S3 outside the local stack has no credentials to use."""
    if is_local_stack(cfg):
        return
    from botocore.exceptions import BotoCoreError

    try:
        credentials = boto_session(cfg.s3.region, local_stack=False).get_credentials()
    except BotoCoreError as e:  # e.g. AWS_PROFILE names a profile that does not exist
        raise S3CredentialsError(f"AWS credentials for S3 cannot be loaded ({e}): {_CREDENTIALS_HINT}") from e
    if credentials is None:
        where = cfg.s3_endpoint_url or f"AWS S3 in {cfg.s3.region}"
        raise S3CredentialsError(f"no AWS credentials found for S3 ({where}): {_CREDENTIALS_HINT}")


@contextlib.contextmanager
def mlflow_artifacts(cfg: Config, uri: str) -> Iterator[None]:
    """While mlflow reads or writes artifacts at ``uri``: its S3 client gets the configured endpoint and,
    locally, the stack's credentials. mlflow reads these only from the environment, so they are set there
    for the duration and restored after; a non-S3 ``uri`` leaves everything as it is."""
    if not uri.startswith(("s3://", "s3a://")):
        yield
        return
    wanted: dict[str, str | None] = {}
    if cfg.s3_endpoint_url:
        wanted["MLFLOW_S3_ENDPOINT_URL"] = cfg.s3_endpoint_url
    if is_local_stack(cfg):
        wanted |= {
            "AWS_ACCESS_KEY_ID": LOCAL_ACCESS_KEY_ID,
            "AWS_SECRET_ACCESS_KEY": LOCAL_SECRET_ACCESS_KEY,
            "AWS_DEFAULT_REGION": cfg.s3.region,
            "AWS_SESSION_TOKEN": None,
            "AWS_PROFILE": None,
            "AWS_DEFAULT_PROFILE": None,
            "AWS_CONFIG_FILE": os.devnull,
            "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
        }
    before = {name: os.environ.get(name) for name in wanted}
    try:
        _set_environ(wanted)
        yield
    finally:
        _set_environ(before)


def _set_environ(values: dict[str, str | None]) -> None:
    for name, value in values.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
