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

    A copy is keyed by its content hash as well as its version, so a version of the same name from
    another registry (or one registered again after a reset) is never mistaken for it."""
    parsed = urlparse(artifact.uri)
    if parsed.scheme in ("", "file"):
        local = Path(unquote(parsed.path) if parsed.scheme == "file" else artifact.uri)
        if not os.access(local, os.R_OK | os.X_OK) or not local.is_dir():
            raise ArtifactError(
                f"model {artifact.label}: {local} is not a folder this process can read; on a cluster the "
                f"artifact store must be one every node reaches (mlflow.artifact_root on s3://)"
            )
        return str(local)
    key = artifact.sha256 or hashlib.sha256(artifact.uri.encode()).hexdigest()
    target = (cache_dir or default_cache_dir()) / artifact.name / f"{artifact.version}-{key[:16]}"
    if (target / COMPLETE).exists():
        print(f"vectorlake: model {artifact.label} from the verified copy in {target}", file=sys.stderr)
        return str(target)
    if parsed.scheme not in ("s3", "s3a"):
        raise ArtifactError(
            f"model {artifact.label}: executors fetch artifacts from s3:// or a shared folder, not "
            f"{parsed.scheme}:// ({artifact.uri})"
        )
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=f".{artifact.version}-", dir=target.parent) as tmp:
        folder = Path(tmp) / "model"
        _download_s3(artifact, parsed.netloc, parsed.path.lstrip("/"), folder)
        got = folder_sha256(folder)
        if artifact.sha256 and got != artifact.sha256:
            raise ArtifactError(
                f"model {artifact.label}: the files from {artifact.uri} hash to {got[:12]}, the registry "
                f"says {artifact.sha256[:12]}"
            )
        (folder / COMPLETE).write_text(f"{got}\n{artifact.uri}\n")
        try:
            folder.rename(target)
        except OSError:  # another process on this node finished the same copy first
            if not (target / COMPLETE).exists():
                raise
    # on an executor this lands in its stderr log: which files the encoder loaded, and from where
    print(f"vectorlake: model {artifact.label} fetched from {artifact.uri} into {target}", file=sys.stderr)
    return str(target)


def _download_s3(artifact: ModelArtifact, bucket: str, prefix: str, folder: Path) -> None:
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
