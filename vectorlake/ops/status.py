"""`vectorlake status`: where the pipeline is, read without Spark (delta-rs and the checkpoint files).

    vectorlake status

Per stream: its last recorded micro-batch (``ops/stream_metrics``) and its checkpoint's last committed
batch and offsets against the source's end where that is cheap (the index query's change-feed version
against silver/listings' latest version; Kafka's end offsets). Lag from event time to ``indexed_at``: the
last index batch's, and over the last ``metrics.status_window_minutes`` from ``gold/index_log``. Row
counts of quarantine and the dead-letter tables, from their Delta logs. Documents per index generation
from OpenSearch; when it does not answer, one note line says so and the rest is still printed.
(`vectorlake stack status` is the servers' health; this is the pipeline's.)
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from vectorlake.config import Config
from vectorlake.errors import one_line
from vectorlake.lake.checkpoint import LocalCheckpoint, delta_read_through, is_local, source_offsets
from vectorlake.lake.tables import LakeTables
from vectorlake.ops import metrics
from vectorlake.ops.freshness import human
from vectorlake.ops.metrics import GenerationDocs, Lag
from vectorlake.pipeline.batch_metrics import INDEX_STREAM

log = logging.getLogger(__name__)

STREAMS = ("ingest_files", "ingest_kafka", INDEX_STREAM)


@dataclass(frozen=True)
class StreamProgress:
    stream: str
    last_batch_id: int | None = None  # the last micro-batch with data that recorded metrics
    finished_at: datetime | None = None
    rows: int | None = None
    committed: int | None = None  # the checkpoint's last committed batch
    offsets: str | None = None  # where the checkpoint is in its source, in words
    failing: Mapping[str, Any] | None = None  # its last ops/stream_failures row, when newer than its batch


@dataclass(frozen=True)
class Status:
    now: datetime
    streams: Sequence[StreamProgress]
    last_lag: tuple[int, Lag] | None  # (batch id, lag) of the last index batch with applied writes
    window_lag: Lag
    window_minutes: int
    dead_letters: Mapping[str, int]
    generations: Sequence[GenerationDocs]
    notes: Sequence[str] = field(default_factory=tuple)

    def lines(self) -> list[str]:
        out = ["streams:"]
        if not self.streams:
            out.append("  no stream has run yet")
        for s in self.streams:
            if s.last_batch_id is None:
                last = "no batch recorded"
            else:
                when = _when(s.finished_at, self.now)
                unit = "listings" if s.stream == INDEX_STREAM else "rows"
                last = f"last batch {s.last_batch_id} at {when}: {s.rows} {unit}"
            parts = [last]
            if s.committed is not None:
                parts.append(f"checkpoint committed batch {s.committed}")
            if s.offsets:
                parts.append(s.offsets)
            out.append(f"  {s.stream}: " + "; ".join(parts))
            if s.failing is not None:
                f = s.failing
                out.append(
                    f"  {s.stream}: FAILING: {f['in_a_row']} failure(s) in a row, the last at "
                    f"{_when(f['failed_at'], self.now)}: {f['error']}; "
                    f"restarted {human(f['restart_in_s'])} after it"
                )
        out.append("lag (event time -> indexed):")
        if self.last_lag is None:
            out.append("  last batch: no applied writes recorded")
        else:
            batch, lag = self.last_lag
            out.append(f"  last batch ({batch}): {_lag(lag)}")
        out.append(
            f"  last {self.window_minutes} min: "
            + (_lag(self.window_lag) if self.window_lag.writes else "no applied writes")
        )
        out.append(
            "dead letters: " + (", ".join(f"{t} {n}" for t, n in sorted(self.dead_letters.items())) or "-")
        )
        out.append("index generations:")
        if not self.generations:
            out.append("  none recorded")
        for g in self.generations:
            docs = "? documents" if g.documents is None else f"{g.documents} documents"
            role = f" ({g.role})" if g.role else ""
            out.append(f"  {g.index}: {g.state or 'unrecorded'}{role}, {docs}")
        out.extend(f"note: {n}" for n in self.notes)
        return out


def _lag(lag: Lag) -> str:
    writes = f" over {lag.writes} writes" if lag.writes else ""
    return f"P50 {human(lag.p50_s)}, P95 {human(lag.p95_s)}, max {human(lag.max_s)}{writes}"


def _when(at: datetime | None, now: datetime) -> str:
    if at is None:
        return "?"
    return f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S}Z ({human((now - at).total_seconds())} ago)"


def gather(cfg: Config, now: datetime | None = None) -> Status:
    """Read everything `vectorlake status` prints."""
    now = now or datetime.now(UTC)
    tables = LakeTables(cfg.lake.root)
    notes: list[str] = []
    rows = metrics.read_rows(cfg, tables.stream_metrics)
    last = metrics.last_batches(rows)
    failing = metrics.failing(metrics.read_rows(cfg, tables.stream_failures), last)
    streams = []
    for name in STREAMS:
        committed, offsets = _checkpoint(cfg, name, notes)
        r = last.get(name)
        if r is None and committed is None and name not in failing:
            continue
        streams.append(
            StreamProgress(
                name,
                None if r is None else int(r["batch_id"]),
                None if r is None else r["finished_at"],
                None if r is None else int(r["rows"]),
                committed,
                offsets,
                failing.get(name),
            )
        )
    window = cfg.metrics.status_window_minutes
    gens, note = metrics.generation_docs(cfg)
    if note:
        notes.append(f"{note}: document counts not shown")
    return Status(
        now=now,
        streams=streams,
        last_lag=metrics.last_lag(rows),
        window_lag=window_lag(cfg, now - timedelta(minutes=window)),
        window_minutes=window,
        dead_letters=metrics.dead_letter_counts(cfg),
        generations=gens,
        notes=notes,
    )


def window_lag(cfg: Config, since: datetime) -> Lag:
    """Lag of the applied writes in gold/index_log at or after `since` (delta-rs, pruned by file stats)."""
    import pyarrow.compute as pc
    import pyarrow.dataset as ds

    from vectorlake.control import open_dataset

    opened = open_dataset(cfg, LakeTables(cfg.lake.root).index_log)
    if opened is None:
        return Lag(0, None, None, None)
    table = opened[1].to_table(
        columns=["event_ts", "indexed_at"],
        filter=(ds.field("outcome") == "applied") & (ds.field("indexed_at") >= since),
    )
    micros = pc.subtract(
        table["indexed_at"].cast("int64"), table["event_ts"].cast(table["indexed_at"].type).cast("int64")
    )
    return metrics.lag_percentiles(None if v is None else v / 1e6 for v in micros.to_pylist())


def _checkpoint(cfg: Config, stream: str, notes: list[str]) -> tuple[int | None, str | None]:
    """(last committed batch, offsets in words) from a local checkpoint; (None, None) where there is none."""
    name = "index" if stream == INDEX_STREAM else stream
    root = cfg.checkpoint_root.rstrip("/")
    if not is_local(root):
        if stream == INDEX_STREAM:
            notes.append(f"checkpoints under {root} are not read by `status` (object storage)")
        return None, None
    files = LocalCheckpoint(f"{root}/{name}")
    committed = max(files.committed(), default=None)
    planned = max(files.planned(), default=None)
    if planned is None:
        return committed, None
    try:
        sources = source_offsets(files.offsets(planned))
    except (OSError, ValueError) as e:
        return committed, f"offsets unreadable ({e})"
    behind = "" if committed == planned else f"; batch {planned} planned, not committed"
    try:
        return committed, _describe(cfg, stream, sources) + behind
    except Exception as e:  # the source's end could not be read: say where the checkpoint is anyway
        log.debug("source end of %s not read", stream, exc_info=True)
        return (
            committed,
            f"offsets {json.dumps(sources)} (source end not read: {one_line(e)}){behind}",
        )


def _describe(cfg: Config, stream: str, sources: list[Any]) -> str:
    if not sources:
        return "no source offsets"
    offset = sources[0]
    if stream == INDEX_STREAM:
        return _change_feed(cfg, offset)
    if stream == "ingest_kafka":
        return _kafka(cfg, offset)
    return f"landing file log at entry {offset.get('logOffset')}"


def _change_feed(cfg: Config, offset: Mapping[str, Any]) -> str:
    """The index query's Delta source offset against silver/listings' latest version."""
    from deltalake import DeltaTable

    from vectorlake.control import location

    uri, options = location(cfg, LakeTables(cfg.lake.root).listings)
    latest = DeltaTable(uri, storage_options=options).version()
    done, part = delta_read_through(offset)
    partial = " (and part of the next)" if part else ""
    behind = latest - done
    state = "up to date" if behind <= 0 else f"{behind} version(s) behind"
    return f"change feed read through silver/listings version {done}{partial} of {latest}: {state}"


def _kafka(cfg: Config, offset: Mapping[str, Mapping[str, int]]) -> str:
    """The ingest query's Kafka offsets against the topics' end offsets (high watermarks)."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": cfg.kafka_bootstrap_servers,
            "security.protocol": cfg.kafka.security_protocol,
            "group.id": "vectorlake-status",
            "enable.auto.commit": False,
            "log_level": 2,  # Kafka down is reported in the status line, not as librdkafka log lines
        }
    )
    try:
        behind = 0
        read = 0
        for topic, partitions in offset.items():
            for partition, position in partitions.items():
                _, high = consumer.get_watermark_offsets(TopicPartition(topic, int(partition)), timeout=3)
                behind += max(0, high - int(position))
                read += int(position)
    finally:
        consumer.close()
    state = "up to date" if behind == 0 else f"{behind} record(s) behind"
    return f"kafka offsets sum {read} over {len(offset)} topic(s): {state}"
