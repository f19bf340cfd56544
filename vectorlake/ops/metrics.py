"""The Prometheus exposition of the streaming queries' per micro-batch metrics.

    vectorlake metrics            print the exposition once
    vectorlake metrics serve      serve it on http://<metrics.host>:<metrics.port>/metrics

The rows come from ``ops/stream_metrics``, written by the queries themselves
(`vectorlake.pipeline.batch_metrics`). At scrape time a custom collector reads the table (and the
dead-letter tables' row counts from the Delta log, and each index generation's document count when
OpenSearch answers) and turns it into counters for the totals and gauges for the last batch of each stream.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import TYPE_CHECKING, Any

from vectorlake.config import Config
from vectorlake.control import open_dataset, open_delta
from vectorlake.errors import one_line
from vectorlake.lake.tables import LakeTables
from vectorlake.pipeline.batch_metrics import INDEX_STREAM

if TYPE_CHECKING:
    from prometheus_client.metrics_core import Metric

log = logging.getLogger(__name__)

# the columns summed into a counter per stream: column -> (metric name, help)
COUNTERS: dict[str, tuple[str, str]] = {
    "rows": ("vectorlake_stream_rows", "records read (ingest) or listings touched (index)"),
    "accepted": ("vectorlake_ingest_accepted", "valid events stored in bronze"),
    "duplicates": ("vectorlake_ingest_duplicates", "events dropped as duplicates of an event_id"),
    "quarantined": ("vectorlake_ingest_quarantined", "records sent to quarantine"),
    "erased": ("vectorlake_ingest_erased", "events of erased subjects, dropped"),
    "model_calls": ("vectorlake_embed_model_calls", "inputs sent to an embedding model (cache misses)"),
    "cache_hits": ("vectorlake_embed_cache_hits", "vectors reused from gold/embeddings"),
    "index_writes": ("vectorlake_index_writes", "applied index writes (upserts and deletes)"),
    "stale_writes": ("vectorlake_index_stale_writes", "index writes skipped: a newer version was there"),
    "retries": ("vectorlake_index_retries", "bulk retry rounds after 429, 5xx or connection errors"),
    "embed_dead_letters": ("vectorlake_embed_dead_letters", "inputs sent to gold/embed_dead_letters"),
    "index_dead_letters": ("vectorlake_index_dead_letters", "writes sent to gold/index_dead_letters"),
    "duration_s": ("vectorlake_stream_batch_seconds", "time spent in micro-batches"),
}


@dataclass(frozen=True)
class Lag:
    """Event time -> indexed_at over a set of applied writes, in seconds (None when there are none)."""

    writes: int
    p50_s: float | None
    p95_s: float | None
    max_s: float | None


def lag_percentiles(lags_s: Iterable[float | None]) -> Lag:
    """P50 / P95 / max, interpolated linearly (numpy's default, as Spark's `percentile`); nulls skipped."""
    import numpy as np

    values = np.asarray([v for v in lags_s if v is not None], dtype=np.float64)
    if values.size == 0:
        return Lag(0, None, None, None)
    p50, p95 = np.percentile(values, [50, 95])
    return Lag(int(values.size), float(p50), float(p95), float(values.max()))


def read_rows(cfg: Config, path: str, columns: Sequence[str] | None = None) -> list[dict[str, Any]]:
    """Every row of a lake table read with delta-rs, or [] when the table does not exist yet."""
    opened = open_dataset(cfg, path)
    if opened is None:
        return []
    rows: list[dict[str, Any]] = opened[1].to_table(columns=list(columns) if columns else None).to_pylist()
    return rows


def row_count(cfg: Config, path: str) -> int | None:
    """Rows of a lake table from its Delta log statistics (no data read), None when it does not exist."""
    table = open_delta(cfg, path)
    return None if table is None else int(table.count())


def dead_letter_counts(cfg: Config) -> dict[str, int]:
    """Rows in quarantine and the two dead-letter tables, by ``<layer>/<table>``."""
    tables = LakeTables(cfg.lake.root)
    out = {}
    for path in (tables.quarantine, tables.embed_dead_letters, tables.index_dead_letters):
        n = row_count(cfg, path)
        out[tables.name(path)] = n or 0
    return out


@dataclass(frozen=True)
class GenerationDocs:
    index: str
    state: str | None  # from control/index_generations
    role: str | None  # live | next | prev: the family alias pointing at it now
    documents: int | None


def generation_docs(cfg: Config) -> tuple[list[GenerationDocs], str | None]:
    """Each generation that is not deleted with its document count (``_count``), and a note when OpenSearch
    cannot be asked (the counts are then None)."""
    from vectorlake.index import generations
    from vectorlake.index.client import make_client

    rows = [
        r
        for r in read_rows(cfg, LakeTables(cfg.lake.root).index_generations, ["index", "alias", "state"])
        if r["alias"] in (None, cfg.index.alias) and r["state"] != "deleted"
    ]
    states = {r["index"]: r["state"] for r in rows}
    try:
        client = make_client(cfg)
    except Exception as e:  # e.g. credentials missing for a remote cluster
        return _without_counts(states), f"OpenSearch not asked: {one_line(e)}"
    try:
        roles = {index: role for role, index in generations.alias_map(client, cfg.index).items()}
        out = []
        for index in sorted(set(states) | set(roles), key=_generation_order(cfg)):
            documents = (
                int(client.count(index=index)["count"]) if client.indices.exists(index=index) else None
            )
            out.append(GenerationDocs(index, states.get(index), roles.get(index), documents))
        return out, None
    except Exception as e:  # down or unreachable: report what the control table knows
        hosts = ", ".join(cfg.opensearch_hosts)
        return _without_counts(states), f"OpenSearch at {hosts} did not answer ({one_line(e)})"
    finally:
        client.close()


def _without_counts(states: Mapping[str, str | None]) -> list[GenerationDocs]:
    return [GenerationDocs(i, s, None, None) for i, s in states.items()]


def _generation_order(cfg: Config) -> Any:
    from vectorlake.index.generations import generation_number

    return lambda index: (generation_number(cfg.index.alias, index) or 0, index)


def last_batches(rows: Iterable[Mapping[str, Any]]) -> dict[str, Mapping[str, Any]]:
    """stream -> its most recent batch (latest finished_at; a batch id breaks ties)."""
    out: dict[str, Mapping[str, Any]] = {}
    for r in rows:
        best = out.get(r["stream"])
        if best is None or _recency(r) > _recency(best):
            out[r["stream"]] = r
    return out


def last_lag(rows: Iterable[Mapping[str, Any]]) -> tuple[int, Lag] | None:
    """(batch id, lag) of the index stream's last batch with applied writes; None when there is none."""
    with_lag = last_batches(r for r in rows if r["stream"] == INDEX_STREAM and r["lag_max_s"] is not None)
    r = with_lag.get(INDEX_STREAM)
    if r is None:
        return None
    return int(r["batch_id"]), Lag(int(r["index_writes"]), r["lag_p50_s"], r["lag_p95_s"], r["lag_max_s"])


def failing(
    failures: Iterable[Mapping[str, Any]], last: Mapping[str, Mapping[str, Any]]
) -> dict[str, Mapping[str, Any]]:
    """stream -> its last ``ops/stream_failures`` row, for the streams that failed after their last
    recorded batch (still failing, or restarted without a batch since)."""
    newest: dict[str, Mapping[str, Any]] = {}
    for r in failures:
        best = newest.get(r["stream"])
        if best is None or r["failed_at"] > best["failed_at"]:
            newest[r["stream"]] = r
    out = {}
    for stream, r in newest.items():
        batch = last.get(stream)
        finished = None if batch is None else batch["finished_at"]
        if finished is None or r["failed_at"] > finished:
            out[stream] = r
    return out


def _recency(row: Mapping[str, Any]) -> tuple[float, int]:
    finished = row["finished_at"]
    return (finished.timestamp() if finished is not None else 0.0, int(row["batch_id"]))


def families(
    rows: Sequence[Mapping[str, Any]],
    dead_letters: Mapping[str, int] | None = None,
    generations: Sequence[GenerationDocs] | None = None,
    opensearch_up: bool | None = None,
    failures: Sequence[Mapping[str, Any]] = (),
) -> list[Metric]:
    """The metric families for the metrics rows (``ops/stream_metrics``), the failures
    (``ops/stream_failures``) and the extras; pure, so it is what the tests check."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    streams = sorted({r["stream"] for r in rows})
    out: list[Metric] = []
    batches = CounterMetricFamily(
        "vectorlake_stream_batches", "micro-batches with data recorded", labels=["stream"]
    )
    for s in streams:
        batches.add_metric([s], sum(1 for r in rows if r["stream"] == s))
    out.append(batches)
    for column, (name, text) in COUNTERS.items():
        family = CounterMetricFamily(name, text, labels=["stream"])
        for s in streams:
            family.add_metric([s], float(sum(r[column] or 0 for r in rows if r["stream"] == s)))
        out.append(family)

    last = last_batches(rows)
    gauges = {
        "batch_id": ("vectorlake_stream_last_batch_id", "id of the stream's last recorded micro-batch"),
        "finished_at": ("vectorlake_stream_last_batch_timestamp_seconds", "when it finished (Unix time)"),
        "duration_s": ("vectorlake_stream_last_batch_duration_seconds", "how long it took"),
        "rows": ("vectorlake_stream_last_batch_rows", "its records read or listings touched"),
    }
    for column, (name, text) in gauges.items():
        g = GaugeMetricFamily(name, text, labels=["stream"])
        for s, r in sorted(last.items()):
            value = r[column]
            g.add_metric([s], value.timestamp() if isinstance(value, datetime) else float(value or 0))
        out.append(g)
    dead = GaugeMetricFamily(
        "vectorlake_stream_last_batch_dead_letters",
        "dead letters of the last micro-batch",
        labels=["stream", "kind"],
    )
    for s, r in sorted(last.items()):
        dead.add_metric([s, "embed"], float(r["embed_dead_letters"] or 0))
        dead.add_metric([s, "index"], float(r["index_dead_letters"] or 0))
    out.append(dead)
    lag = GaugeMetricFamily(
        "vectorlake_index_last_batch_lag_seconds",
        "event time -> indexed_at over the applied writes of the index stream's last batch with any",
        labels=["quantile"],
    )
    latest = last_lag(rows)
    if latest is not None:
        _, batch_lag = latest
        for quantile, value in (("0.5", batch_lag.p50_s), ("0.95", batch_lag.p95_s), ("1", batch_lag.max_s)):
            lag.add_metric([quantile], float(value))  # type: ignore[arg-type]
    out.append(lag)

    out += _failure_families(failures, last, streams)

    return out + _extra_families(dead_letters, generations, opensearch_up)


def _extra_families(
    dead_letters: Mapping[str, int] | None,
    generations: Sequence[GenerationDocs] | None,
    opensearch_up: bool | None,
) -> list[Metric]:
    """Rows of quarantine and the dead-letter tables, OpenSearch's answer, documents per generation."""
    from prometheus_client.core import GaugeMetricFamily

    out: list[Metric] = []
    if dead_letters is not None:
        g = GaugeMetricFamily(
            "vectorlake_table_rows", "rows in quarantine and the dead-letter tables", labels=["table"]
        )
        for table, n in sorted(dead_letters.items()):
            g.add_metric([table], float(n))
        out.append(g)
    if opensearch_up is not None:
        up = GaugeMetricFamily("vectorlake_opensearch_up", "1 when OpenSearch answered this scrape")
        up.add_metric([], 1.0 if opensearch_up else 0.0)
        out.append(up)
    if generations:
        g = GaugeMetricFamily(
            "vectorlake_index_generation_documents",
            "documents in each index generation (_count)",
            labels=["index", "state", "role"],
        )
        for gen in generations:
            if gen.documents is not None:
                g.add_metric([gen.index, gen.state or "", gen.role or ""], float(gen.documents))
        out.append(g)
    return out


def _failure_families(
    failures: Sequence[Mapping[str, Any]], last: Mapping[str, Mapping[str, Any]], streams: Sequence[str]
) -> list[Metric]:
    """Failures of the queries the job restarts, and whether each stream is failing now."""
    from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

    failed = CounterMetricFamily(
        "vectorlake_stream_failures",
        "failures of a query the job restarts (ops/stream_failures)",
        labels=["stream"],
    )
    in_a_row = GaugeMetricFamily(
        "vectorlake_stream_failing",
        "failures in a row since the stream's last recorded batch (0: not failing)",
        labels=["stream"],
    )
    now_failing = failing(failures, last)
    for s in sorted({r["stream"] for r in failures} | set(streams)):
        failed.add_metric([s], float(sum(1 for r in failures if r["stream"] == s)))
        row = now_failing.get(s)
        in_a_row.add_metric([s], float(row["in_a_row"]) if row is not None else 0.0)
    return [failed, in_a_row]


class TableCollector:
    """A prometheus_client collector that reads the lake (and asks OpenSearch) at every scrape."""

    def __init__(self, cfg: Config, with_opensearch: bool = True) -> None:
        self.cfg = cfg
        self.with_opensearch = with_opensearch

    def collect(self) -> Iterator[Metric]:
        tables = LakeTables(self.cfg.lake.root)
        rows = read_rows(self.cfg, tables.stream_metrics)
        gens: list[GenerationDocs] | None = None
        up = None
        if self.with_opensearch:
            gens, note = generation_docs(self.cfg)
            up = note is None
        failures = read_rows(self.cfg, tables.stream_failures)
        yield from families(rows, dead_letter_counts(self.cfg), gens, up, failures)


def registry_for(cfg: Config, with_opensearch: bool = True) -> Any:
    from prometheus_client import CollectorRegistry

    registry = CollectorRegistry(auto_describe=False)
    registry.register(TableCollector(cfg, with_opensearch))  # type: ignore[arg-type]
    return registry


def exposition(cfg: Config, with_opensearch: bool = True) -> str:
    """The Prometheus text exposition of the metrics, once."""
    from prometheus_client import generate_latest

    return str(generate_latest(registry_for(cfg, with_opensearch)).decode())


def serve(cfg: Config, host: str | None = None, port: int | None = None) -> tuple[Any, Any]:
    """Start the exposition endpoint in a daemon thread; returns (server, thread) (``server.shutdown()``)."""
    from prometheus_client import start_http_server

    server, thread = start_http_server(
        port if port is not None else cfg.metrics.port,
        addr=host or cfg.metrics.host,
        registry=registry_for(cfg),
    )
    return server, thread
