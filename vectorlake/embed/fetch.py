"""Fetch image bytes by URL: ``file://``, ``s3://bucket/key`` and ``http(s)://``.

A failure is an `ImageFetchError` whose ``reason`` is one of `FETCH_REASONS`, so that callers can count
failures by reason and record them per item instead of failing a batch.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse
from urllib.request import url2pathname

from vectorlake.errors import VectorlakeError

log = logging.getLogger(__name__)

FETCH_REASONS = ("unsupported_scheme", "not_found", "fetch_failed")
_S3_MISSING = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}
_HTTP_MISSING = {404, 410}
_FETCH_THREADS = 8


class ImageFetchError(VectorlakeError):
    """An image could not be fetched; ``reason`` is one of `FETCH_REASONS`."""

    def __init__(self, reason: str, detail: str) -> None:
        if reason not in FETCH_REASONS:
            raise ValueError(f"unknown fetch failure reason {reason!r}")
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail

    def __reduce__(self) -> tuple[Any, ...]:  # picklable, to cross process boundaries (Spark workers)
        return (type(self), (self.reason, self.detail))


@functools.lru_cache(maxsize=8)
def _s3_client(
    endpoint_url: str | None, region: str, timeout_s: float, local_stack: bool
) -> tuple[Any, bool]:
    """(boto3 client, anonymous?) once per process and endpoint; anonymous when boto3 finds no credentials
    (never on the local stack: its session signs with the stack's credentials, see `vectorlake.s3`)."""
    from botocore import UNSIGNED
    from botocore.config import Config as BotoConfig

    from vectorlake.s3 import boto_session

    session = boto_session(region, local_stack)
    unsigned = session.get_credentials() is None
    if unsigned:
        log.warning("no AWS credentials found: reading s3 objects anonymously (public buckets only)")
    config = BotoConfig(
        signature_version=UNSIGNED if unsigned else None,
        connect_timeout=timeout_s,
        read_timeout=timeout_s,
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=_FETCH_THREADS * 2,
    )
    client = session.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)
    return client, unsigned


def _fetch_file(url: str) -> bytes:
    parsed = urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        raise ImageFetchError("unsupported_scheme", f"file URL with a remote host: {url}")
    path = Path(url2pathname(parsed.path))
    try:
        return path.read_bytes()
    except FileNotFoundError as e:
        raise ImageFetchError("not_found", f"{url}: no such file") from e
    except OSError as e:
        raise ImageFetchError("fetch_failed", f"{url}: {type(e).__name__}: {e.strerror or e}") from e


def _fetch_s3(url: str, timeout_s: float, endpoint_url: str | None, region: str, local_stack: bool) -> bytes:
    from botocore.exceptions import BotoCoreError, ClientError

    parsed = urlparse(url)
    bucket, key = parsed.netloc, unquote(parsed.path.lstrip("/"))
    if not bucket or not key:
        raise ImageFetchError("fetch_failed", f"{url}: expected s3://bucket/key")
    client, anonymous = _s3_client(endpoint_url, region, timeout_s, local_stack)
    try:
        response = client.get_object(Bucket=bucket, Key=key)
        return bytes(response["Body"].read())
    except ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        if code in _S3_MISSING:
            raise ImageFetchError("not_found", f"{url}: {code}") from e
        hint = " (anonymous request: boto3 found no AWS credentials)" if anonymous else ""
        raise ImageFetchError("fetch_failed", f"{url}: {code or e}{hint}") from e
    except (BotoCoreError, OSError) as e:
        raise ImageFetchError("fetch_failed", f"{url}: {type(e).__name__}: {e}") from e


def _fetch_http(url: str, timeout_s: float) -> bytes:
    import requests

    try:
        response = requests.get(url, timeout=timeout_s)
    except requests.RequestException as e:
        raise ImageFetchError("fetch_failed", f"{url}: {type(e).__name__}: {e}") from e
    if response.status_code in _HTTP_MISSING:
        raise ImageFetchError("not_found", f"{url}: HTTP {response.status_code}")
    if response.status_code != 200:
        raise ImageFetchError("fetch_failed", f"{url}: HTTP {response.status_code}")
    return response.content


def fetch_image(
    url: str,
    timeout_s: float,
    s3_endpoint_url: str | None,
    s3_region: str,
    *,
    s3_local_stack: bool = False,
) -> bytes:
    """The bytes at ``url``; raises `ImageFetchError` (reason in `FETCH_REASONS`) when they cannot be read.

    ``s3_local_stack``: S3 is the local stack's moto (`vectorlake.s3.is_local_stack`), reached with the
    stack's credentials whatever the environment holds."""
    scheme = urlparse(url).scheme.lower()
    if scheme == "file":
        return _fetch_file(url)
    if scheme in ("s3", "s3a"):
        return _fetch_s3(url, timeout_s, s3_endpoint_url, s3_region, s3_local_stack)
    if scheme in ("http", "https"):
        return _fetch_http(url, timeout_s)
    raise ImageFetchError(
        "unsupported_scheme", f"{url[:200]}: scheme {scheme or '(none)'!r} is not supported"
    )


def fetch_many(
    urls: Sequence[str],
    timeout_s: float,
    s3_endpoint_url: str | None,
    s3_region: str,
    threads: int = _FETCH_THREADS,
    *,
    s3_local_stack: bool = False,
) -> list[bytes | ImageFetchError]:
    """`fetch_image` for each URL on a small thread pool; a failure is returned in its place, not raised."""

    def one(url: str) -> bytes | ImageFetchError:
        try:
            return fetch_image(url, timeout_s, s3_endpoint_url, s3_region, s3_local_stack=s3_local_stack)
        except ImageFetchError as e:
            return e

    if len(urls) <= 1:
        return [one(u) for u in urls]
    with ThreadPoolExecutor(min(threads, len(urls))) as pool:
        return list(pool.map(one, urls))
