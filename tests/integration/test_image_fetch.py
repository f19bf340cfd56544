"""The image fetch under its policy (issue 20), against real servers: a hostile HTTP server started here on
127.0.0.1 (redirects to loopback and link-local addresses, a dripping body, an endless body, a gzip bomb, a
pixel bomb), the local file system (paths outside the roots, symlinks, a FIFO, /dev/zero) and the stack's
S3 (moto). Every refused URL is an `ImageFetchError` with its reason, raised within the deadline."""

from __future__ import annotations

import gzip
import http.server
import io
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from vectorlake.config import Config, load_config
from vectorlake.embed import fetch
from vectorlake.embed.fetch import FETCH_REASONS, FetchPolicy, ImageFetchError, fetch_image, fetch_many


def _jpeg(size: tuple[int, int] = (8, 8)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, (200, 30, 30)).save(out, "JPEG")
    return out.getvalue()


def _png_bomb(width: int, height: int) -> bytes:
    """A small PNG whose header declares width x height pixels (a blank 1-bit image compresses to almost
    nothing); 9000 x 9000 stays under PIL's own warning threshold, so only the policy's cap can stop it."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("1", (width, height)).save(out, "PNG")
    return out.getvalue()


IMAGE = _jpeg()


class _Hostile(http.server.BaseHTTPRequestHandler):
    """The paths a seller's image URL could point at."""

    def log_message(self, *args: Any) -> None:  # keep the test output clean
        pass

    def _send(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self) -> None:
        port = self.server.server_address[1]  # type: ignore[index]
        path = self.path
        if path == "/ok.jpg":
            self._send(200, IMAGE)
        elif path == "/rebound.jpg":  # only a rebinding name's second lookup leads here
            REBOUND_HITS.append(self.headers.get("Host", ""))
            self._send(200, IMAGE)
        elif path == "/missing.jpg":
            self._send(404)
        elif path == "/to-ok":  # a redirect to an allowed address
            self._send(302, headers={"Location": f"http://127.0.0.1:{port}/ok.jpg"})
        elif path == "/to-loopback":  # reached by an allowed host name, redirects to another loopback name
            self._send(302, headers={"Location": f"http://localhost:{port}/ok.jpg"})
        elif path == "/to-metadata":  # the cloud metadata address (link-local)
            self._send(302, headers={"Location": "http://169.254.169.254/latest/meta-data/"})
        elif path == "/to-file":
            self._send(302, headers={"Location": "file:///etc/passwd"})
        elif path == "/loop":
            self._send(302, headers={"Location": "/loop"})
        elif path == "/big-declared":
            self.send_response(200)
            self.send_header("Content-Length", str(10**9))
            self.end_headers()
        elif path == "/endless":  # no length, bytes until the client stops reading
            self.send_response(200)
            self.end_headers()
            chunk = b"\0" * 65536
            try:
                while True:
                    self.wfile.write(chunk)
            except (BrokenPipeError, ConnectionResetError):
                return
        elif path == "/drip":  # one byte at a time: every read is within the timeout, the whole is not
            self.send_response(200)
            self.send_header("Content-Length", "1000000")
            self.end_headers()
            try:
                for _ in range(1_000_000):
                    self.wfile.write(b"\xff")
                    self.wfile.flush()
                    time.sleep(0.05)
            except (BrokenPipeError, ConnectionResetError):
                return
        elif path == "/gzip-bomb":  # 64 MiB of zeros in about 64 KiB
            self._send(200, gzip.compress(b"\0" * (64 * 1024 * 1024)), {"Content-Encoding": "gzip"})
        elif path == "/pixel-bomb.png":
            self._send(200, _png_bomb(9_000, 9_000))
        else:
            self._send(404)


REBOUND_HITS: list[str] = []


@pytest.fixture(scope="module")
def server() -> Iterator[str]:
    """The hostile server on 127.0.0.1 (an ephemeral port), one thread per request."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Hostile)
    httpd.daemon_threads = True
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def _reason(url: str, policy: FetchPolicy) -> str:
    with pytest.raises(ImageFetchError) as e:
        fetch_image(url, policy)
    assert e.value.reason in FETCH_REASONS
    return e.value.reason


def test_http_only_to_public_addresses_unless_the_host_is_allowed(server: str) -> None:
    closed = FetchPolicy(timeout_s=5)
    assert _reason(f"{server}/ok.jpg", closed) == "refused"  # 127.0.0.1 is not a public address
    allowed = FetchPolicy(timeout_s=5, allow_hosts=("127.0.0.1",))
    assert fetch_image(f"{server}/ok.jpg", allowed) == IMAGE
    assert fetch_image(f"{server}/to-ok", allowed) == IMAGE  # a redirect to an allowed host is followed
    assert _reason(f"{server}/missing.jpg", allowed) == "not_found"
    # every hop is checked: another loopback name, the metadata address, a file: URL, a redirect loop
    assert _reason(f"{server}/to-loopback", allowed) == "refused"
    assert _reason(f"{server}/to-metadata", allowed) == "refused"
    assert _reason(f"{server}/to-file", allowed) == "refused"
    assert _reason(f"{server}/loop", allowed) == "refused"
    assert _reason("http://169.254.169.254/latest/meta-data/", allowed) == "refused"
    assert _reason("http://[::1]/x.jpg", allowed) == "refused"
    assert _reason("http://10.1.2.3/x.jpg", allowed) == "refused"
    no_http = replace(allowed, schemes=("https",))
    assert _reason(f"{server}/ok.jpg", no_http) == "refused"


def test_a_name_that_rebinds_to_loopback_after_the_check_never_reaches_it(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """DNS rebinding: the name resolves to a public address for the check and to 127.0.0.1 on any later
    lookup (the system resolver cannot be pointed at a local DNS server here, so the lookup is played in
    process). The fetch looks the name up once and connects to the address it checked, which refuses the
    connection; a client that looked the name up again would fetch the image from the loopback server."""
    real = socket.getaddrinfo
    lookups: list[str] = []

    def rebinding(host: Any, port: Any, *args: Any, **kwargs: Any) -> Any:
        if host != "images.rebind.test":
            return real(host, port, *args, **kwargs)
        lookups.append(host)
        address = "8.8.8.8" if len(lookups) == 1 else "127.0.0.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", rebinding)
    port = server.rsplit(":", 1)[1]
    with pytest.raises(ImageFetchError) as e:
        fetch_image(f"http://images.rebind.test:{port}/rebound.jpg", FetchPolicy(timeout_s=2, deadline_s=4))
    assert e.value.reason == "fetch_failed" and "8.8.8.8" in str(e.value), str(e.value)
    assert (lookups, REBOUND_HITS) == (["images.rebind.test"], [])


def test_http_bodies_are_capped_in_bytes_and_in_time(server: str) -> None:
    policy = FetchPolicy(timeout_s=5, allow_hosts=("127.0.0.1",), max_bytes=1024 * 1024, deadline_s=2)
    for path in ("/big-declared", "/endless", "/gzip-bomb"):
        began = time.monotonic()
        assert _reason(f"{server}{path}", policy) == "too_large", path
        assert time.monotonic() - began < 10, path
    began = time.monotonic()
    with pytest.raises(ImageFetchError) as e:
        fetch_image(f"{server}/drip", policy)  # each byte comes within the 5 s read timeout
    assert e.value.reason == "fetch_failed" and "deadline" in str(e.value)
    assert time.monotonic() - began < 2 + 5


def test_a_pixel_bomb_is_refused_before_it_is_decoded(server: str, tmp_path: Path) -> None:
    policy = FetchPolicy(timeout_s=5, allow_hosts=("127.0.0.1",), max_pixels=10_000_000)
    with pytest.raises(ImageFetchError) as e:
        fetch_image(f"{server}/pixel-bomb.png", policy)
    assert e.value.reason == "too_large" and "9000x9000 pixels" in str(e.value)
    (tmp_path / "bomb.png").write_bytes(_png_bomb(9_000, 9_000))
    assert _reason((tmp_path / "bomb.png").as_uri(), policy) == "too_large"
    assert fetch_image((tmp_path / "bomb.png").as_uri(), replace(policy, max_pixels=400_000_000))


def test_file_urls_only_for_regular_files_under_the_roots(tmp_path: Path) -> None:
    root, outside = tmp_path / "images", tmp_path / "private"
    root.mkdir()
    outside.mkdir()
    (root / "a b.jpg").write_bytes(IMAGE)
    (outside / "secret.jpg").write_bytes(IMAGE)
    (root / "link.jpg").symlink_to(outside / "secret.jpg")  # a symlink out of the root
    os.mkfifo(root / "fifo.jpg")
    policy = FetchPolicy(file_roots=(str(root),), max_bytes=1024 * 1024)
    assert fetch_image((root / "a b.jpg").as_uri(), policy) == IMAGE
    assert _reason((outside / "secret.jpg").as_uri(), policy) == "refused"
    assert _reason(f"file://{root}/../private/secret.jpg", policy) == "refused"
    assert _reason((root / "link.jpg").as_uri(), policy) == "refused"
    assert _reason("file:///proc/self/environ", policy) == "refused"
    assert _reason((root / "nope.jpg").as_uri(), policy) == "not_found"
    assert _reason("file://remote-host/etc/passwd", policy) == "refused"
    # with no roots (the local profile's default), still only regular files, and capped: no hang, no OOM
    anywhere = FetchPolicy(max_bytes=1024 * 1024)
    assert fetch_image((outside / "secret.jpg").as_uri(), anywhere) == IMAGE
    began = time.monotonic()
    assert _reason((root / "fifo.jpg").as_uri(), anywhere) == "refused"  # opened without waiting for a writer
    assert _reason("file:///dev/zero", anywhere) == "refused"
    assert _reason(root.as_uri(), anywhere) == "refused"  # a folder
    assert time.monotonic() - began < 5
    (root / "big.jpg").write_bytes(b"\xff" * (1024 * 1024 + 1))
    assert _reason((root / "big.jpg").as_uri(), anywhere) == "too_large"
    assert _reason((root / "a b.jpg").as_uri(), replace(anywhere, schemes=("s3", "https"))) == "refused"


def test_an_unsupported_scheme_is_named() -> None:
    with pytest.raises(ImageFetchError) as e:
        fetch_image("ftp://x", FetchPolicy())
    assert e.value.reason == "unsupported_scheme"
    assert str(e.value).startswith("unsupported_scheme: ftp://x")


@pytest.fixture
def aws_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Credentials the way production gets them (the environment); moto accepts any."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    fetch._s3_client.cache_clear()
    yield
    fetch._s3_client.cache_clear()


@pytest.mark.usefixtures("aws_env")
def test_s3_only_in_the_configured_buckets_and_never_anonymously(
    cfg: Config, unique_name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import boto3

    s3 = boto3.client(
        "s3",
        endpoint_url=cfg.s3_endpoint_url,
        region_name=cfg.s3.region,
        aws_access_key_id="testing",  # moto accepts any credentials
        aws_secret_access_key="testing",  # noqa: S106
    )
    bucket, other = unique_name, f"{unique_name}-other"
    for b in (bucket, other):
        s3.create_bucket(Bucket=b)
    try:
        s3.put_object(Bucket=bucket, Key="images/l-1/0.jpg", Body=IMAGE)
        s3.put_object(Bucket=other, Key="lake/secret.parquet", Body=b"PAR1 not an image")
        # the pipeline's policy: config's s3.bucket only, unless fetch.s3_buckets names others
        mine = load_config(environ=dict(os.environ) | {"VECTORLAKE__S3__BUCKET": bucket})
        policy = FetchPolicy.from_config(mine)
        assert policy.s3_buckets == (bucket,)
        url = f"s3://{bucket}/images/l-1/0.jpg"
        assert fetch_image(url, policy) == IMAGE
        assert _reason(f"s3://{bucket}/images/none.jpg", policy) == "not_found"
        assert _reason(f"s3://{other}/lake/secret.parquet", policy) == "refused"
        got = fetch_many([url, "ftp://x", url], policy)
        assert got[0] == got[2] == IMAGE
        assert isinstance(got[1], ImageFetchError) and got[1].reason == "unsupported_scheme"
        assert _reason(url, replace(policy, max_bytes=10)) == "too_large"
        # without credentials (and not the local stack, which signs with its own): refused, not anonymous
        for key in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
            monkeypatch.delenv(key)
        monkeypatch.setenv("AWS_CONFIG_FILE", "/nonexistent")
        monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent")
        fetch._s3_client.cache_clear()
        with pytest.raises(ImageFetchError) as e:
            fetch_image(url, replace(policy, s3_local_stack=False))
        assert e.value.reason == "refused" and "anonymous" in str(e.value)
    finally:
        for b in (bucket, other):
            for obj in s3.list_objects_v2(Bucket=b).get("Contents", []):
                s3.delete_object(Bucket=b, Key=obj["Key"])
            s3.delete_bucket(Bucket=b)
