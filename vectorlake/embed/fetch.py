"""Fetch image bytes by URL (``file://``, ``s3://bucket/key``, ``http(s)://``) under a `FetchPolicy`.

Image URLs come from sellers' events, so the policy (config ``fetch:``) bounds what one can reach and how
much of it: the schemes allowed; ``file://`` only for regular files under the configured roots (symlinks
and ``..`` resolved first; FIFOs, devices and folders never); ``s3://`` only in the configured buckets and
never anonymously; ``http(s)`` only to hosts whose every address is public (not loopback, private,
link-local, multicast or reserved) unless the host is allowed, every redirect hop checked the same way and
at most ``max_redirects`` of them, each hop's name looked up once and the connection made to the address
that was checked (no DNS rebinding); a byte cap and a deadline for the whole fetch; and a pixel cap read from
the image header before anything is decoded.

A failure is an `ImageFetchError` whose ``reason`` is one of `FETCH_REASONS` (``refused``: the policy
does not allow the URL; ``too_large``: over the byte or pixel cap), so that callers record it per item
(an embed dead letter, the listing served by its text) instead of failing a batch.
"""

from __future__ import annotations

import functools
import io
import ipaddress
import logging
import os
import socket
import stat
import time
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urljoin, urlparse
from urllib.request import url2pathname

from vectorlake.config import FETCH_SCHEMES
from vectorlake.errors import VectorlakeError

if TYPE_CHECKING:
    from vectorlake.config import Config

log = logging.getLogger(__name__)

FETCH_REASONS = ("unsupported_scheme", "not_found", "fetch_failed", "refused", "too_large")
_S3_MISSING = {"NoSuchKey", "NoSuchBucket", "404", "NotFound"}
_HTTP_MISSING = {404, 410}
_FETCH_THREADS = 8
_CHUNK = 64 * 1024


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


@dataclass(frozen=True)
class FetchPolicy:
    """What an image fetch may reach and read (config ``fetch:``), and how S3 is reached: plain values, so
    it pickles to the Python workers. The defaults allow every scheme, any regular file and any bucket
    (the local profile's tests and tools build one directly); `from_config` is what the pipeline uses."""

    timeout_s: float = 10.0  # connect, and each read (embed.image_fetch_timeout_s)
    schemes: tuple[str, ...] = FETCH_SCHEMES
    file_roots: tuple[str, ...] | None = None  # None: any regular file
    s3_buckets: tuple[str, ...] | None = None  # None: any bucket
    allow_hosts: tuple[str, ...] = ()
    max_bytes: int = 20 * 1024 * 1024
    deadline_s: float = 30.0
    max_pixels: int = 50_000_000
    max_redirects: int = 3
    s3_endpoint_url: str | None = None
    s3_region: str = "us-east-1"
    s3_local_stack: bool = False  # the local stack's moto: sign with its credentials (vectorlake.s3)

    @classmethod
    def from_config(cls, cfg: Config) -> FetchPolicy:
        from vectorlake import s3

        f = cfg.fetch
        buckets = f.s3_buckets if f.s3_buckets is not None else tuple(b for b in (cfg.s3.bucket,) if b)
        return cls(
            timeout_s=cfg.embed.image_fetch_timeout_s,
            schemes=f.schemes,
            file_roots=f.file_roots,
            s3_buckets=buckets,
            allow_hosts=f.allow_hosts,
            max_bytes=f.max_bytes,
            deadline_s=f.deadline_s,
            max_pixels=f.max_pixels,
            max_redirects=f.max_redirects,
            s3_endpoint_url=cfg.s3_endpoint_url,
            s3_region=cfg.s3.region,
            s3_local_stack=s3.is_local_stack(cfg),
        )


def _too_large(url: str, size: int, cap: int) -> ImageFetchError:
    return ImageFetchError("too_large", f"{url[:200]}: over fetch.max_bytes ({cap} bytes; {size} or more)")


@functools.lru_cache(maxsize=8)
def _s3_client(endpoint_url: str | None, region: str, timeout_s: float, local_stack: bool) -> Any:
    """The boto3 client once per process and endpoint, or None when boto3 finds no credentials (never on
    the local stack: its session signs with the stack's credentials, see `vectorlake.s3`)."""
    from botocore.config import Config as BotoConfig

    from vectorlake.s3 import boto_session

    session = boto_session(region, local_stack)
    if session.get_credentials() is None:
        return None
    config = BotoConfig(
        connect_timeout=timeout_s,
        read_timeout=timeout_s,
        retries={"max_attempts": 3, "mode": "standard"},
        max_pool_connections=_FETCH_THREADS * 2,
    )
    return session.client("s3", endpoint_url=endpoint_url, region_name=region, config=config)


def local_path(url: str) -> str | None:
    """The real path (symlinks and ``..`` resolved) of a ``file://`` URL on this machine; None for a
    ``file://`` URL naming another host."""
    parsed = urlparse(url)
    if parsed.netloc not in ("", "localhost"):
        return None
    return os.path.realpath(url2pathname(parsed.path))


def under(path: str, roots: Sequence[str]) -> bool:
    """Whether a real path is one of ``roots`` or inside one (the roots are resolved here too)."""
    return any(
        path == real or path.startswith(real.rstrip("/") + "/") for real in map(os.path.realpath, roots)
    )


def _fetch_file(url: str, policy: FetchPolicy) -> bytes:
    path = local_path(url)  # resolved before the root check
    if path is None:
        raise ImageFetchError("refused", f"file URL with a remote host: {url[:200]}")
    if policy.file_roots is not None and not under(path, policy.file_roots):
        raise ImageFetchError("refused", f"{url[:200]}: {path} is not under fetch.file_roots")
    try:
        # non-blocking: opening a FIFO must not wait for a writer; it is refused below
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_NOFOLLOW", 0))
    except FileNotFoundError as e:
        raise ImageFetchError("not_found", f"{url[:200]}: no such file") from e
    except OSError as e:
        raise ImageFetchError("fetch_failed", f"{url[:200]}: {type(e).__name__}: {e.strerror or e}") from e
    info = os.fstat(fd)
    if not stat.S_ISREG(info.st_mode):
        os.close(fd)
        raise ImageFetchError("refused", f"{url[:200]}: not a regular file")
    if info.st_size > policy.max_bytes:
        os.close(fd)
        raise _too_large(url, info.st_size, policy.max_bytes)
    with os.fdopen(fd, "rb") as f:
        data = f.read(policy.max_bytes + 1)
    if len(data) > policy.max_bytes:
        raise _too_large(url, len(data), policy.max_bytes)
    return data


def _fetch_s3(url: str, policy: FetchPolicy) -> bytes:
    from botocore.exceptions import BotoCoreError, ClientError

    parsed = urlparse(url)
    bucket, key = parsed.netloc, unquote(parsed.path.lstrip("/"))
    if not bucket or not key:
        raise ImageFetchError("fetch_failed", f"{url[:200]}: expected s3://bucket/key")
    if policy.s3_buckets is not None and bucket not in policy.s3_buckets:
        raise ImageFetchError("refused", f"{url[:200]}: bucket {bucket!r} is not in fetch.s3_buckets")
    client = _s3_client(policy.s3_endpoint_url, policy.s3_region, policy.timeout_s, policy.s3_local_stack)
    if client is None:
        raise ImageFetchError("refused", f"{url[:200]}: no AWS credentials (anonymous reads are not made)")
    try:
        response = client.get_object(Bucket=bucket, Key=key)
        size = int(response.get("ContentLength") or 0)
        if size > policy.max_bytes:
            response["Body"].close()
            raise _too_large(url, size, policy.max_bytes)
        data = bytes(response["Body"].read(policy.max_bytes + 1))
    except ClientError as e:
        code = str(e.response.get("Error", {}).get("Code", ""))
        if code in _S3_MISSING:
            raise ImageFetchError("not_found", f"{url[:200]}: {code}") from e
        raise ImageFetchError("fetch_failed", f"{url[:200]}: {code or e}") from e
    except (BotoCoreError, OSError) as e:
        raise ImageFetchError("fetch_failed", f"{url[:200]}: {type(e).__name__}: {e}") from e
    if len(data) > policy.max_bytes:
        raise _too_large(url, len(data), policy.max_bytes)
    return data


def _address(url: str, policy: FetchPolicy) -> str | None:
    """The address to connect to for ``url``: None for an allowed host (connected by name), else the first
    address its name resolves to, once every one of them was found public. The fetch connects to that very
    address, so a name that resolves to a public address for the check and to a private one a moment later
    (DNS rebinding) never reaches the private one."""
    parsed = urlparse(url)
    host = parsed.hostname
    if not host:
        raise ImageFetchError("refused", f"{url[:200]}: no host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    if host in policy.allow_hosts or f"{host}:{port}" in policy.allow_hosts:
        return None
    try:
        infos = socket.getaddrinfo(host, port, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError) as e:
        raise ImageFetchError("fetch_failed", f"{url[:200]}: cannot resolve {host}: {e}") from e
    addresses = [str(info[4][0]).split("%", 1)[0] for info in infos]
    for text in addresses:
        address = ipaddress.ip_address(text)
        mapped = getattr(address, "ipv4_mapped", None)
        if not (mapped or address).is_global:
            raise ImageFetchError(
                "refused", f"{url[:200]}: {host} resolves to {address}, not a public address"
            )
    if not addresses:
        raise ImageFetchError("fetch_failed", f"{url[:200]}: {host} resolves to no address")
    return addresses[0]


def _get(url: str, address: str | None, timeout: float) -> Any:
    """GET ``url`` without following redirects, connected to ``address`` when given (the Host header and,
    for https, the certificate check and SNI still use the URL's host name); a streamed urllib3 response."""
    import urllib3

    parsed = urlparse(url)
    host = parsed.hostname or ""
    https = parsed.scheme.lower() == "https"
    port = parsed.port or (443 if https else 80)
    target = parsed.path or "/"
    if parsed.query:
        target += "?" + parsed.query
    connect_to = address or host
    pool: urllib3.HTTPConnectionPool
    if https:
        import certifi

        pool = urllib3.HTTPSConnectionPool(
            connect_to, port, timeout=timeout, retries=False, cert_reqs="CERT_REQUIRED",
            ca_certs=certifi.where(), assert_hostname=host, server_hostname=host,
        )  # fmt: skip
    else:
        pool = urllib3.HTTPConnectionPool(connect_to, port, timeout=timeout, retries=False)
    netloc = host if parsed.port is None else f"{host}:{parsed.port}"
    if ":" in host:  # an IPv6 literal
        netloc = f"[{host}]" if parsed.port is None else f"[{host}]:{parsed.port}"
    return pool.urlopen(
        "GET", target, headers={"Host": netloc, "Accept-Encoding": "gzip, deflate"},
        redirect=False, preload_content=False, decode_content=True,
    )  # fmt: skip


def _fetch_http(url: str, policy: FetchPolicy) -> bytes:
    import urllib3

    deadline = time.monotonic() + policy.deadline_s
    current = url
    for _ in range(policy.max_redirects + 1):
        hop = urlparse(current).scheme.lower()
        if hop not in ("http", "https") or hop not in policy.schemes:
            raise ImageFetchError(
                "refused", f"{url[:200]}: redirected to a scheme not allowed: {current[:200]}"
            )
        address = _address(current, policy)
        left = deadline - time.monotonic()
        if left <= 0:
            raise ImageFetchError(
                "fetch_failed", f"{url[:200]}: over fetch.deadline_s ({policy.deadline_s:g} s)"
            )
        try:
            response = _get(current, address, min(policy.timeout_s, left))
        except (urllib3.exceptions.HTTPError, OSError, ValueError) as e:
            raise ImageFetchError("fetch_failed", f"{url[:200]}: {type(e).__name__}: {e}") from e
        try:
            if response.status in (301, 302, 303, 307, 308) and response.headers.get("location"):
                current = urljoin(current, response.headers["location"])
                continue
            if response.status in _HTTP_MISSING:
                raise ImageFetchError("not_found", f"{url[:200]}: HTTP {response.status}")
            if response.status != 200:
                raise ImageFetchError("fetch_failed", f"{url[:200]}: HTTP {response.status}")
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > policy.max_bytes:
                raise _too_large(url, int(declared), policy.max_bytes)
            return _read_body(url, response, policy, deadline)
        finally:
            response.close()
    raise ImageFetchError(
        "refused", f"{url[:200]}: more than fetch.max_redirects ({policy.max_redirects}) redirects"
    )


def _read_body(url: str, response: Any, policy: FetchPolicy, deadline: float) -> bytes:
    """The body, read one socket read at a time (so that a server dripping bytes meets the deadline), the
    byte cap applied to the decoded bytes (so that a compressed body cannot expand past it)."""
    body = bytearray()
    try:
        while True:
            chunk = response.read1(_CHUNK, decode_content=True)
            if not chunk:
                return bytes(body)
            body += chunk
            if len(body) > policy.max_bytes:
                raise _too_large(url, len(body), policy.max_bytes)
            if time.monotonic() > deadline:
                raise ImageFetchError(
                    "fetch_failed", f"{url[:200]}: over fetch.deadline_s ({policy.deadline_s:g} s)"
                )
    except ImageFetchError:
        raise
    except Exception as e:  # urllib3's read errors (timeouts, protocol and decoding errors)
        raise ImageFetchError("fetch_failed", f"{url[:200]}: {type(e).__name__}: {e}") from e


def check_pixels(url: str, data: bytes, max_pixels: int) -> None:
    """Refuse an image whose header declares more than ``max_pixels``, before anything decodes it."""
    from PIL import Image

    try:
        with Image.open(io.BytesIO(data)) as img:
            width, height = img.size
    except Image.DecompressionBombError as e:
        raise ImageFetchError("too_large", f"{url[:200]}: {e}") from e
    except Exception:  # not an image PIL can read: the decoder reports it (decode_failed)
        return
    if width * height > max_pixels:
        raise ImageFetchError(
            "too_large", f"{url[:200]}: {width}x{height} pixels, over fetch.max_pixels ({max_pixels})"
        )


def fetch_image(url: str, policy: FetchPolicy) -> bytes:
    """The bytes at ``url`` as `policy` allows; raises `ImageFetchError` (reason in `FETCH_REASONS`)."""
    scheme = urlparse(url).scheme.lower()
    if scheme not in FETCH_SCHEMES:
        raise ImageFetchError(
            "unsupported_scheme", f"{url[:200]}: scheme {scheme or '(none)'!r} is not supported"
        )
    if scheme not in policy.schemes:
        raise ImageFetchError("refused", f"{url[:200]}: scheme {scheme!r} is not in fetch.schemes")
    if scheme == "file":
        data = _fetch_file(url, policy)
    elif scheme in ("s3", "s3a"):
        data = _fetch_s3(url, policy)
    else:
        data = _fetch_http(url, policy)
    check_pixels(url, data, policy.max_pixels)
    return data


def fetch_many(
    urls: Sequence[str], policy: FetchPolicy, threads: int = _FETCH_THREADS
) -> list[bytes | ImageFetchError]:
    """`fetch_image` for each URL on a small thread pool; a failure is returned in its place, not raised."""

    def one(url: str) -> bytes | ImageFetchError:
        try:
            return fetch_image(url, policy)
        except ImageFetchError as e:
            return e

    if len(urls) <= 1:
        return [one(u) for u in urls]
    with ThreadPoolExecutor(min(threads, len(urls))) as pool:
        return list(pool.map(one, urls))
