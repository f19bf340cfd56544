"""Delta tables read into Arrow without Spark, through Arrow's own (native) file systems.

    data = dataset(DeltaTable(uri, storage_options=options), options)
    table = data.to_table(columns=[...], filter=...)

delta-rs' own ``to_pyarrow_dataset()`` reads through a Python file-system handler: every buffer Arrow's I/O
threads read is a Python object. Parquet pre-buffering releases some of those buffers on an I/O thread
after the scan has returned; when that happens while the interpreter shuts down, the thread cannot take
the GIL, CPython ends it with a forced unwind through Arrow's C++ destructors, and the process aborts
(``terminate called without an active exception``, exit 134: about one short command in three). With
Arrow's native local and S3 file systems no Python object is touched off the main thread, so nothing is
left to race the shutdown.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

if TYPE_CHECKING:
    import pyarrow.dataset as ds
    import pyarrow.fs as pa_fs


def delta_rs_uri(path: str) -> str:
    """The URI delta-rs opens for a lake path: Spark's ``s3a://`` is ``s3://`` to delta-rs."""
    if path.startswith(("s3a://", "s3://")):
        return "s3://" + path.split("://", 1)[1]
    return path


def delta_rs_location(
    path: str, storage_options: Mapping[str, str] | None = None
) -> tuple[str, dict[str, str] | None]:
    """The URI delta-rs opens for a lake path, and the storage options it needs (None unless ``s3://``)."""
    uri = delta_rs_uri(path)
    return uri, (dict(storage_options or {}) if uri.startswith("s3://") else None)


def filesystem(table_uri: str, options: Mapping[str, str] | None = None) -> pa_fs.FileSystem:
    """A native Arrow file system rooted at a Delta table (``file://``, a local path, or ``s3://``)."""
    import pyarrow.fs as pa_fs

    options = options or {}
    parsed = urlparse(table_uri)
    if parsed.scheme in ("s3", "s3a"):
        endpoint = options.get("AWS_ENDPOINT_URL")
        s3 = pa_fs.S3FileSystem(
            region=options.get("AWS_REGION"),
            endpoint_override=endpoint.split("://", 1)[-1] if endpoint else None,
            scheme="http" if endpoint and endpoint.startswith("http://") else "https",
            access_key=options.get("AWS_ACCESS_KEY_ID"),
            secret_key=options.get("AWS_SECRET_ACCESS_KEY"),
            session_token=options.get("AWS_SESSION_TOKEN"),
        )
        return pa_fs.SubTreeFileSystem(f"{parsed.netloc}{parsed.path}".rstrip("/"), s3)
    if parsed.scheme in ("", "file"):
        path = unquote(parsed.path) if parsed.scheme else table_uri
        return pa_fs.SubTreeFileSystem(path.rstrip("/") or "/", pa_fs.LocalFileSystem())
    raise ValueError(f"no native Arrow file system for {table_uri!r}")


def dataset(table: Any, options: Mapping[str, str] | None = None) -> ds.Dataset:
    """The current snapshot of a delta-rs ``DeltaTable`` as a pyarrow dataset on a native file system."""
    fs = filesystem(table.table_uri, options)
    result: ds.Dataset = table.to_pyarrow_dataset(filesystem=fs)
    return result
