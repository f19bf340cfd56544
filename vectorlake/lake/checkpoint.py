"""Reading a Structured Streaming checkpoint without running its query: which batches are planned and
committed, and how far a Delta source's offset has read its table.

A checkpoint folder holds ``offsets/<batch>`` (planned: a version line, the batch metadata, then one JSON
offset per source) and ``commits/<batch>`` (done). `LocalCheckpoint` reads one on the local disk;
`HadoopCheckpoint` reads one through the JVM's Hadoop file system (s3a://, hdfs://), as the query does.

A Delta source offset is ``{"reservoirVersion": v, "index": i, ...}``: ``i`` is the last file of version
``v`` read. Every index below 0 (``-1``, or ``-100``/``-20``/``-19`` in offset format 3) means nothing of
``v`` is read yet, an index from 0 on means part of it, and `END_INDEX` means all of it.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

END_INDEX = 2**63 - 1 - 100  # Delta's DeltaSourceOffset.END_INDEX (Long.MaxValue - 100)


class CheckpointFiles(Protocol):
    def committed(self) -> list[int]:
        """The ids of the committed batches, ascending."""
        ...

    def offsets(self, batch: int) -> list[str]:
        """The lines of a batch's offsets file."""
        ...


def _local(checkpoint: str) -> Path:
    return Path(checkpoint.removeprefix("file://"))


def is_local(checkpoint: str) -> bool:
    return "://" not in checkpoint.removeprefix("file://")


def _batch_ids(folder: Path) -> list[int]:
    return sorted(int(p.name) for p in folder.iterdir() if p.name.isdigit()) if folder.is_dir() else []


@dataclass(frozen=True)
class LocalCheckpoint:
    checkpoint: str

    def committed(self) -> list[int]:
        return _batch_ids(_local(self.checkpoint) / "commits")

    def planned(self) -> list[int]:
        """The ids of the batches with offsets (committed or not), ascending."""
        return _batch_ids(_local(self.checkpoint) / "offsets")

    def offsets(self, batch: int) -> list[str]:
        return (_local(self.checkpoint) / "offsets" / str(batch)).read_text().splitlines()


@dataclass(frozen=True)
class HadoopCheckpoint:
    """A checkpoint read through the JVM's Hadoop file system (s3a://, hdfs://, file://)."""

    spark: SparkSession
    checkpoint: str

    def _path(self, *parts: str) -> Any:
        jvm = self.spark.sparkContext._jvm
        assert jvm is not None
        return jvm.org.apache.hadoop.fs.Path("/".join([self.checkpoint.rstrip("/"), *parts]))

    def _fs(self, path: Any) -> Any:
        return path.getFileSystem(self.spark.sparkContext._jsc.hadoopConfiguration())  # type: ignore[union-attr]

    def committed(self) -> list[int]:
        path = self._path("commits")
        fs = self._fs(path)
        if not fs.exists(path):
            return []
        names = [status.getPath().getName() for status in fs.listStatus(path)]
        return sorted(int(n) for n in names if n.isdigit())

    def offsets(self, batch: int) -> list[str]:
        jvm = self.spark.sparkContext._jvm
        assert jvm is not None
        path = self._path("offsets", str(batch))
        stream = self._fs(path).open(path)
        try:
            reader = jvm.java.io.BufferedReader(jvm.java.io.InputStreamReader(stream, "UTF-8"))
            lines = []
            while (line := reader.readLine()) is not None:
                lines.append(str(line))
            return lines
        finally:
            stream.close()


def source_offsets(offset_lines: Sequence[str]) -> list[Any]:
    """The per-source offsets of an offsets file (after its version line and batch metadata)."""
    return [json.loads(line) for line in offset_lines[2:]]


def delta_read_through(offset: Mapping[str, Any]) -> tuple[int, bool]:
    """(the last version a Delta source offset has read completely, whether it read part of the next)."""
    version, index = int(offset["reservoirVersion"]), int(offset.get("index", -1))
    if index >= END_INDEX:
        return version, False
    return version - 1, index >= 0


def reservoir_version(offset_lines: Sequence[str]) -> int | None:
    """The last version a batch with these offsets read completely from its Delta source (None: none)."""
    for offset in source_offsets(offset_lines):
        if isinstance(offset, dict) and "reservoirVersion" in offset:
            return delta_read_through(offset)[0]
    return None
