"""The OpenSearch client, built from config: local (no auth), basic auth, or AWS SigV4 (managed domains)."""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from vectorlake.config import Config, OpenSearchConfig
from vectorlake.errors import ConfigError

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

log = logging.getLogger(__name__)

# Enough pooled connections for the sink's parallel bulk requests and a few searches beside them.
POOL_MAXSIZE = 16


def make_client(cfg: Config, environ: Mapping[str, str] | None = None) -> OpenSearch:
    """An OpenSearch client for ``cfg.opensearch_hosts``; secrets from ``environ`` (default os.environ)."""
    return client_for(cfg.opensearch, cfg.opensearch_hosts, environ)


def client_for(
    os_cfg: OpenSearchConfig, hosts: Sequence[str], environ: Mapping[str, str] | None = None
) -> OpenSearch:
    """The client of ``make_client`` from the OpenSearch section and resolved hosts alone (Spark workers).

    The client never retries by itself (``max_retries=0``): the sink retries only the failed items, with
    its own backoff. TLS certificates of https hosts are verified unless ``opensearch.verify_certs`` is
    false (a local demo only).
    """
    from opensearchpy import OpenSearch

    if not hosts:
        raise ConfigError("opensearch.hosts: at least one host URL is required")
    environ = os.environ if environ is None else environ
    kwargs: dict[str, Any] = {
        "hosts": list(hosts),
        "timeout": os_cfg.timeout_s,
        "max_retries": 0,
        "retry_on_timeout": False,
        "retry_on_status": (),
        "verify_certs": os_cfg.verify_certs,
        "pool_maxsize": POOL_MAXSIZE,
    }
    if os_cfg.auth == "basic":
        kwargs["http_auth"] = _basic_credentials(os_cfg, environ)
    elif os_cfg.auth == "sigv4":
        from opensearchpy import AWSV4SignerAuth, RequestsHttpConnection

        region = _region(os_cfg)
        kwargs["http_auth"] = AWSV4SignerAuth(_aws_credentials(), region, os_cfg.service)
        kwargs["connection_class"] = RequestsHttpConnection
    if not os_cfg.verify_certs and any(h.startswith("https://") for h in hosts):
        log.warning("opensearch.verify_certs is false: TLS certificates are not checked (local demo only)")
    return OpenSearch(**kwargs)


def _basic_credentials(os_cfg: OpenSearchConfig, environ: Mapping[str, str]) -> tuple[str, str]:
    names = (os_cfg.username_env, os_cfg.password_env)
    missing = [name for name in names if not environ.get(name)]
    if missing:
        raise ConfigError(
            f"opensearch.auth is basic but {' and '.join(missing)} is not set in the environment: "
            "export the user name and password there"
        )
    return environ[names[0]], environ[names[1]]


def _region(os_cfg: OpenSearchConfig) -> str:
    if not os_cfg.region:
        raise ConfigError("opensearch.region: required when opensearch.auth is sigv4 (e.g. us-east-1)")
    return os_cfg.region


def _aws_credentials() -> Any:
    import boto3

    credentials = boto3.Session().get_credentials()
    if credentials is None:
        raise ConfigError(
            "opensearch.auth is sigv4 but boto3 found no AWS credentials: set AWS_PROFILE or "
            "AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, or run with an instance/task role"
        )
    return credentials
