"""A model version's files on whichever machine runs the encoder: fetched by URI, checked by sha256.

On a cluster the driver's model cache is on another machine (or, on the local standalone cluster, in a
folder the executors' user cannot read), so an executor gets a `ModelArtifact` (plain values: it pickles
into the UDF) and makes its own copy from the artifact store:

    path = materialize(artifact)      # <cache>/<name>/<version>, once per node; later calls reuse it

``s3://`` artifacts are read with the same S3 settings as every other client (`vectorlake.s3`); a local
folder or ``file://`` URI must be readable where the encoder runs (local mode, a shared file system). The
copy is written to a temporary folder, hashed like the registry hashes a version (`folder_sha256`) and
renamed into place only when it matches, so a partial or tampered download is never loaded; the marker
file records where it came from.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import sys
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlparse

log = logging.getLogger(__name__)

COMPLETE = ".vectorlake-complete"  # marks a finished, verified copy; holds its sha256 and source URI
CACHE_ENV = "VECTORLAKE_MODEL_CACHE"  # where an executor keeps its copies (default ~/.cache/vectorlake)


class ArtifactError(RuntimeError):
    """A model artifact that cannot be fetched or does not hash to what the registry says."""


@dataclass(frozen=True)
class ModelArtifact:
    """Where one registered model version's files are and how to check them (what an executor needs)."""

    name: str
    version: str
    uri: str  # the artifact store's URI of the version's folder (s3://..., file://..., a local folder)
    sha256: str | None  # the registry's content_sha256 tag (None: registered before it was recorded)
    s3_endpoint: str | None = None  # S3 client settings for s3:// URIs (`vectorlake.s3`)
    s3_region: str = "us-east-1"
    s3_local_stack: bool = False

    @property
    def label(self) -> str:
        return f"{self.name}/{self.version}"


def folder_sha256(folder: Path) -> str:
    """sha256 over a folder's files: each relative path (POSIX) and content, in sorted path order."""
    digest = hashlib.sha256()
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        if path.name == COMPLETE:
            continue
        digest.update(path.relative_to(folder).as_posix().encode() + b"\0")
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
        digest.update(b"\0")
    return digest.hexdigest()


def default_cache_dir() -> Path:
    return Path(os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "vectorlake" / "models")


@functools.lru_cache(maxsize=8)
def materialize(artifact: ModelArtifact, cache_dir: Path | None = None) -> str:
    """A local folder with the artifact's verified files: in place for a readable local folder, else a
    copy under ``cache_dir`` (default: `default_cache_dir`), made once per node and reused after.

    The copy is `cached_copy`'s, keyed by content hash."""
    parsed = urlparse(artifact.uri)
    if parsed.scheme in ("", "file"):
        local = Path(unquote(parsed.path) if parsed.scheme == "file" else artifact.uri)
        if not os.access(local, os.R_OK | os.X_OK) or not local.is_dir():
            raise ArtifactError(
                f"model {artifact.label}: {local} is not a folder this process can read; on a cluster the "
                f"artifact store must be one every node reaches (mlflow.artifact_root on s3://)"
            )
        return str(local)
    if parsed.scheme not in ("s3", "s3a"):
        raise ArtifactError(
            f"model {artifact.label}: executors fetch artifacts from s3:// or a shared folder, not "
            f"{parsed.scheme}:// ({artifact.uri})"
        )
    target, fetched = cached_copy(
        cache_dir or default_cache_dir(),
        artifact.name,
        artifact.version,
        artifact.uri,
        artifact.sha256,
        lambda folder: _download_s3(artifact, parsed.netloc, parsed.path.lstrip("/"), folder),
    )
    # on an executor this lands in its stderr log: which files the encoder loaded, and from where
    what = f"fetched from {artifact.uri} into" if fetched else "from the verified copy in"
    print(f"vectorlake: model {artifact.label} {what} {target}", file=sys.stderr)
    return str(target)


def cached_copy(
    cache_dir: Path, name: str, version: str, uri: str, sha256: str | None, download: Callable[[Path], Path]
) -> tuple[Path, bool]:
    """A verified copy of one model version under ``cache_dir`` and whether it was fetched now.

    The copy is keyed by its content hash as well as its version, so a version of the same name from
    another registry (or one registered again after a reset) is never mistaken for it. ``download(tmp)``
    fills a temporary folder (returning the folder holding the files); they are hashed like the registry
    hashes a version and renamed into place only when they match (`ArtifactError` otherwise)."""
    key = sha256 or hashlib.sha256(uri.encode()).hexdigest()
    target = cache_dir / name / f"{version}-{key[:16]}"
    if (target / COMPLETE).exists():
        return target, False
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{version}-", dir=target.parent) as tmp:
        log.info("fetching %s/%s from %s into %s", name, version, uri, target)
        folder = download(Path(tmp) / "model")
        got = folder_sha256(folder)
        if sha256 and got != sha256:
            raise ArtifactError(
                f"model {name}/{version}: the files from {uri} hash to {got[:12]}, the registry says "
                f"{sha256[:12]}"
            )
        (folder / COMPLETE).write_text(f"{got}\n{uri}\n")
        try:
            folder.rename(target)
        except OSError:  # another process on this node finished the same copy first
            if not (target / COMPLETE).exists():
                raise
    return target, True


def _download_s3(artifact: ModelArtifact, bucket: str, prefix: str, folder: Path) -> Path:
    from vectorlake import s3

    session = s3.boto_session(artifact.s3_region, artifact.s3_local_stack)
    client = session.client("s3", endpoint_url=artifact.s3_endpoint, region_name=artifact.s3_region)
    prefix = prefix.rstrip("/") + "/"
    found = 0
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", []):
            relative = obj["Key"][len(prefix) :]
            if not relative or relative.endswith("/"):
                continue
            path = folder / relative
            path.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(bucket, obj["Key"], str(path))
            found += 1
    if not found:
        raise ArtifactError(f"model {artifact.label}: nothing under {artifact.uri}")
    return folder
