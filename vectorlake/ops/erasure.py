"""GDPR/CCPA erasure: intake, purge across every store, physical removal from Delta history, verification.

    vectorlake erase --seller ID | --listing ID     record a request (control/erasure_requests)
    vectorlake purge                                carry out every pending request, then verify it
    vectorlake purge --verify REQUEST_ID            prove absence, one line per store; exit 1 if found

A request moves ``pending`` -> ``erased`` (every store erased; tombstones written) -> ``done`` (history
vacuumed and the verification scan found nothing; ``subject_id`` cleared). A request whose verification
finds data again (a writer that ran beside the erasure) goes back to ``pending``: the next run erases it
again, and `check_deadline` fails while any request is past ``erasure.deadline_hours`` and not done. With
``erasure.vacuum_retention_hours`` = 0 one purge run does all three; with a longer retention the request
waits in ``erased`` until a run at least that many hours later can vacuum the deleted files.

The subject is recorded as sha256 of ``"<type>:<id>"`` (`subject_hash`); a seller's listings and image URLs
are recorded as hashes in ``control/erasure_tombstones`` (by which ingest drops later events, and by which
``--verify`` finds them after ``subject_id`` is gone). ``control/erasure_log`` holds one row per request,
store and run: counts and times, hashes only.

Trade-offs (runbook): VACUUM with a short retention deletes files that a stream has not read yet and
makes older versions unreadable by time travel. The index stream reads silver/listings' change feed, so the
purge runs it once (availableNow) before vacuuming when ``erasure.catch_up_index`` is true, or else defers
the vacuum while the stream's checkpoint is behind. The Delta log keeps per-file min/max statistics for
``delta.logRetentionDuration`` (30 days by default): set it shorter, or
``delta.dataSkippingStatsColumns`` without the id columns, where ids in log statistics are in scope.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any, Literal
from urllib.parse import urlparse

from vectorlake import s3
from vectorlake.config import Config
from vectorlake.errors import VectorlakeError
from vectorlake.lake import tables as lake_tables
from vectorlake.lake.checkpoint import (
    CheckpointFiles,
    HadoopCheckpoint,
    LocalCheckpoint,
    is_local,
    reservoir_version,
)
from vectorlake.lake.tables import LakeTables
from vectorlake.lake.tombstones import Match, row_condition, subject_hash

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)

SubjectType = Literal["seller", "listing"]
SUBJECT_TYPES: tuple[SubjectType, ...] = ("seller", "listing")
# namespace of the deterministic request ids: one request per subject, so a repeated `erase` is a no-op
_REQUEST_NAMESPACE = uuid.UUID("6f1d2a1e-8a52-4c43-9c1d-5b0f6e1e7a11")

__all__ = ["subject_hash"]


class ErasureError(VectorlakeError):
    """An erasure request is malformed, unknown, or could not be carried out."""


class ErasureOverdue(VectorlakeError):
    """A request older than erasure.deadline_hours is not verified yet."""


@dataclass(frozen=True)
class Request:
    request_id: str
    subject_type: SubjectType
    subject_hash: str
    requested_at: datetime
    status: str


def request_id_for(subject_type: str, subject_id: str) -> str:
    """The request id of a subject: a UUID5 of its hash (deterministic, and no personal data)."""
    return str(uuid.uuid5(_REQUEST_NAMESPACE, subject_hash(subject_type, subject_id)))


def _check_subject(subject_type: str, subject_id: str) -> None:
    if subject_type not in SUBJECT_TYPES:
        raise ErasureError(f"subject type must be one of {', '.join(SUBJECT_TYPES)}, got {subject_type!r}")
    if not subject_id or subject_id != subject_id.strip():
        raise ErasureError(f"a {subject_type} id must be non-empty without surrounding spaces")


def record_request(cfg: Config, subject_type: str, subject_id: str, now: datetime | None = None) -> Request:
    """Record an erasure request (idempotent: the same subject gets the same request, still pending)."""
    from vectorlake.control import requests_table

    _check_subject(subject_type, subject_id)
    if cfg.lake.root.startswith(("s3a://", "s3://")):  # the control tables live on S3
        s3.require_credentials(cfg)
    now = now or datetime.now(UTC)
    rid = request_id_for(subject_type, subject_id)
    table = requests_table(cfg)
    existing = {r["request_id"]: r for r in table.rows()}.get(rid)
    if existing is not None and existing["status"] in ("pending", "erased"):
        return _request(existing)
    row = {
        "request_id": rid,
        "subject_type": subject_type,
        "subject_id": subject_id,
        "subject_hash": subject_hash(subject_type, subject_id),
        "requested_at": now,
        "status": "pending",
        "finished_at": None,
    }
    table.upsert([row])  # a done subject asked again (new data arrived despite the tombstone): again
    log.info("erasure request %s recorded (%s)", rid, subject_type)
    return _request(row)


def _request(row: Mapping[str, Any]) -> Request:
    return Request(
        row["request_id"], row["subject_type"], row["subject_hash"], row["requested_at"], row["status"]
    )


def overdue(rows: Iterable[Mapping[str, Any]], now: datetime, deadline_hours: float) -> list[str]:
    """Request ids requested more than ``deadline_hours`` before ``now`` and not done."""
    limit = now - timedelta(hours=deadline_hours)
    return sorted(
        r["request_id"]
        for r in rows
        if r.get("status") != "done" and r.get("requested_at") is not None and r["requested_at"] < limit
    )


def check_deadline(cfg: Config, now: datetime | None = None) -> None:
    """Raise ErasureOverdue naming the requests past erasure.deadline_hours and unfinished."""
    from vectorlake.control import requests_table

    late = overdue(requests_table(cfg).rows(), now or datetime.now(UTC), cfg.erasure.deadline_hours)
    if late:
        raise ErasureOverdue(
            f"{len(late)} erasure request(s) older than {cfg.erasure.deadline_hours:g} h and not verified "
            f"({', '.join(late)}): run `vectorlake purge`; `vectorlake purge --verify ID` shows what is left"
        )


# --- which data belongs to a subject ------------------------------------------------------------------


def lake_stores(tables: LakeTables) -> dict[str, dict[str, str]]:
    """``<layer>/<table>`` -> columns, for every lake table that holds listing or seller data."""
    out: dict[str, dict[str, str]] = {}
    for path, (columns, _) in lake_tables.schemas(tables).items():
        name = tables.name(path)
        if not name.startswith("control/"):
            out[name] = dict(columns)
    return out


@dataclass(frozen=True)
class Scope:
    """A subject resolved while its id is known: the listings and image URLs erased with it."""

    subject_type: SubjectType
    subject_id: str
    listing_ids: tuple[str, ...]
    image_urls: tuple[str, ...]

    @property
    def seller_ids(self) -> tuple[str, ...]:
        return (self.subject_id,) if self.subject_type == "seller" else ()

    def match(self) -> Match:
        return Match(
            sellers=frozenset(subject_hash("seller", s) for s in self.seller_ids),
            listings=frozenset(subject_hash("listing", lid) for lid in self.listing_ids),
            images=frozenset(subject_hash("image_url", u) for u in self.image_urls),
        )


def resolve(
    spark: SparkSession, cfg: Config, tables: LakeTables, subject_type: SubjectType, subject_id: str
) -> Scope:
    """The subject's listings (for a seller: every listing that ever named it) and the image URLs that are
    its own to delete (`owned_image_urls`)."""
    from pyspark.sql import functions as F

    seller = Match(frozenset({subject_hash(subject_type, subject_id)}), frozenset())
    listing_ids: set[str] = {subject_id} if subject_type == "listing" else set()
    if subject_type == "seller":
        stores = lake_stores(tables)
        for name in ("silver/listings", "silver/listing_versions", "bronze/listing_changes"):
            columns = stores[name]
            condition = row_condition({k: v for k, v in columns.items() if k != "listing_id"}, seller)
            assert condition is not None
            frame = spark.read.format("delta").load(tables.table(name))
            listing_ids |= {r[0] for r in frame.where(condition).select("listing_id").distinct().collect()}
    ids = sorted(listing_ids)
    urls: set[str] = set()
    if ids:
        for path, column in (
            (tables.bronze("media"), "url"),
            (tables.media, "url"),
            (tables.listings, "primary_image_url"),
        ):
            frame = spark.read.format("delta").load(path)
            urls |= {
                r[0]
                for r in frame.where(F.col("listing_id").isin(ids) & F.col(column).isNotNull())
                .select(column)
                .distinct()
                .collect()
            }
    return Scope(subject_type, subject_id, tuple(ids), owned_image_urls(spark, cfg, tables, ids, urls))


def image_roots(cfg: Config) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(local folders, S3 buckets) under which image files and objects are vectorlake's: the fetch policy's
    roots (else the landing folder) and buckets (else ``s3.bucket``)."""
    from vectorlake.embed.fetch import FetchPolicy

    policy = FetchPolicy.from_config(cfg)
    folders = policy.file_roots if policy.file_roots is not None else (cfg.sources.landing_dir,)
    return tuple(f for f in folders if "://" not in f), tuple(policy.s3_buckets or ())


def _owned(url: str, folders: Sequence[str], buckets: Sequence[str]) -> bool:
    from vectorlake.embed.fetch import local_path, under

    parsed = urlparse(url)
    if parsed.scheme == "file":
        path = local_path(url)
        return path is not None and under(path, folders)
    if parsed.scheme in ("s3", "s3a"):
        return parsed.netloc in buckets
    return False  # http(s): someone else's server


def owned_image_urls(
    spark: SparkSession, cfg: Config, tables: LakeTables, listing_ids: Sequence[str], urls: Iterable[str]
) -> tuple[str, ...]:
    """The image URLs an erasure may delete: files under the image folders and objects in the image buckets
    (`image_roots`; a URL a seller pointed at a lake file or another bucket is not vectorlake's to delete),
    that no listing outside the subject's names in silver (sellers who share an image keep it)."""
    from pyspark.sql import functions as F

    folders, buckets = image_roots(cfg)
    candidates = sorted({u for u in urls if _owned(u, folders, buckets)})
    if not candidates:
        return ()
    shared: set[str] = set()
    for path, column in ((tables.media, "url"), (tables.listings, "primary_image_url")):
        frame = spark.read.format("delta").load(path)
        others = frame.where(F.col(column).isin(candidates) & ~F.col("listing_id").isin(list(listing_ids)))
        shared |= {r[0] for r in others.select(column).distinct().collect()}
    if shared:
        log.info("%d image(s) of the subject are named by other listings too: kept", len(shared))
    return tuple(u for u in candidates if u not in shared)


# --- the purge ------------------------------------------------------------------------------------------


@dataclass
class PurgeReport:
    erased: dict[str, dict[str, int]] = field(default_factory=dict)  # request -> store -> count
    verified: list[str] = field(default_factory=list)
    unverified: dict[str, list[str]] = field(default_factory=dict)  # request -> stores still holding data
    deferred: list[str] = field(default_factory=list)  # erased, waiting for the vacuum retention
    overdue: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        out = [
            f"erased {rid}: {sum(c.values())} rows, lines, documents or objects in "
            f"{sum(1 for n in c.values() if n)} stores"
            for rid, c in self.erased.items()
        ]
        out += [f"verified {rid}: nothing left, subject_id cleared" for rid in self.verified]
        out += [
            f"NOT verified {rid}: still found in {', '.join(s)}; pending again, the next purge erases it"
            for rid, s in self.unverified.items()
        ]
        out += [f"waiting for the vacuum retention: {rid}" for rid in self.deferred]
        return out or ["no erasure requests to purge"]


def erase_scope(
    spark: SparkSession, cfg: Config, scope: Scope, recorded: Match | None = None
) -> dict[str, int]:
    """Erase a resolved subject from every store except Delta history; returns counts per store.

    ``recorded``: the request's tombstones, so a retried purge still reaches the listings an earlier,
    interrupted attempt had resolved (and already deleted from silver)."""
    from vectorlake.ops import erasure_stores as stores

    tables = LakeTables(cfg.lake.root)
    match = scope.match()
    if recorded is not None:
        match = Match(
            match.sellers | recorded.sellers,
            match.listings | recorded.listings,
            match.images | recorded.images,
        )
    counts: dict[str, int] = {}
    for name, columns in lake_stores(tables).items():
        condition = row_condition(columns, match)
        if condition is not None:
            counts[name] = stores.delta_erase(spark, tables.table(name), condition)
    counts["landing"] = stores.landing_erase(cfg.sources.landing_dir, match)
    counts["landing/images"] = stores.file_images_erase(scope.image_urls)
    counts["s3"] = stores.s3_erase(stores.s3_client(cfg), scope.image_urls)
    client = _opensearch(cfg)
    try:
        for index in _generations(client, cfg):
            counts[f"opensearch/{index}"] = stores.opensearch_erase(
                client, index, scope.seller_ids, scope.listing_ids
            )
    finally:
        client.close()
    if cfg.warehouse.target == "duckdb":
        for table, n in stores.duckdb_erase(cfg.warehouse.duckdb_path, match).items():
            counts[f"duckdb/{table}"] = n
    else:
        log.warning(
            "warehouse.target is snowflake: run the statements of `vectorlake purge --snowflake-sql ID` "
            "(erasure_stores.snowflake_statements) with the prod role"
        )
    return counts


def _opensearch(cfg: Config) -> Any:
    from vectorlake.index.client import make_client

    return make_client(cfg)


def _generations(client: Any, cfg: Config) -> list[str]:
    from vectorlake.index import generations

    return list(generations.generations(client, cfg.index.alias))


def _write_tombstones(cfg: Config, request_id: str, scope: Scope, now: datetime) -> None:
    from vectorlake.control import tombstones_table

    hashes: dict[str, str] = {subject_hash(scope.subject_type, scope.subject_id): scope.subject_type}
    hashes |= {subject_hash("listing", lid): "listing" for lid in scope.listing_ids}
    hashes |= {subject_hash("image_url", u): "image_url" for u in scope.image_urls}
    tombstones_table(cfg).upsert(
        [
            {"subject_hash": h, "subject_type": t, "request_id": request_id, "recorded_at": now}
            for h, t in sorted(hashes.items())
        ]
    )


def request_match(cfg: Config, request_id: str) -> tuple[Mapping[str, Any], Match]:
    """The request's row and all that is recorded of its subject, as hashes (also once subject_id is gone)."""
    from vectorlake.control import requests_table, tombstones_table

    row = {r["request_id"]: r for r in requests_table(cfg).rows()}.get(request_id)
    if row is None:
        raise ErasureError(f"no erasure request {request_id!r} in control/erasure_requests")
    recorded = [t for t in tombstones_table(cfg).rows() if t["request_id"] == request_id]
    sellers = {row["subject_hash"]} if row["subject_type"] == "seller" else set()
    listings = {row["subject_hash"]} if row["subject_type"] == "listing" else set()
    listings |= {t["subject_hash"] for t in recorded if t["subject_type"] == "listing"}
    images = {t["subject_hash"] for t in recorded if t["subject_type"] == "image_url"}
    return row, Match(frozenset(sellers), frozenset(listings), frozenset(images))


def purge(spark: SparkSession, cfg: Config, now: datetime | None = None) -> PurgeReport:
    """Carry out every pending request, purge Delta history, verify, and report overdue requests.

    Every store is reached, S3 included (the verification scans the bucket): missing credentials fail
    here, in one line, before anything is erased."""
    from vectorlake.control import erasure_log_table, requests_table

    s3.require_credentials(cfg)
    now = now or datetime.now(UTC)
    tables = LakeTables(cfg.lake.root)
    lake_tables.ensure_tables(spark, tables, s3.storage_options(cfg))
    requests, erasure_log = requests_table(cfg), erasure_log_table(cfg)
    report = PurgeReport()
    for row in [r for r in requests.rows() if r["status"] == "pending"]:
        if not row.get("subject_id"):
            raise ErasureError(f"request {row['request_id']} is pending without a subject_id")
        started = datetime.now(UTC)
        scope = resolve(spark, cfg, tables, row["subject_type"], row["subject_id"])
        _write_tombstones(cfg, row["request_id"], scope, started)  # first: ingest drops new events now
        counts = erase_scope(spark, cfg, scope, request_match(cfg, row["request_id"])[1])
        finished = datetime.now(UTC)
        erasure_log.upsert(
            [
                {
                    "request_id": row["request_id"],
                    "subject_type": row["subject_type"],
                    "subject_hash": row["subject_hash"],
                    "store": store,
                    "erased": n,
                    "started_at": started,
                    "finished_at": finished,
                }
                for store, n in sorted(counts.items())
            ]
        )
        requests.upsert([{"request_id": row["request_id"], "status": "erased"}])
        report.erased[row["request_id"]] = counts
        log.info("erasure %s: stores erased (%d items)", row["request_id"], sum(counts.values()))

    waiting = [r for r in requests.rows() if r["status"] == "erased"]
    retention = timedelta(hours=cfg.erasure.vacuum_retention_hours)
    erased_at = _erased_at(erasure_log.rows())
    clock = max(now, datetime.now(UTC))  # the erasures above finished after `now`
    ready = [r for r in waiting if erased_at.get(r["request_id"], clock) + retention <= clock]
    report.deferred = sorted(r["request_id"] for r in waiting if r not in ready)
    if ready:
        if _index_caught_up(spark, cfg, tables):
            purge_history(spark, cfg, tables)
            for row in ready:
                found = [c.store for c in verify(spark, cfg, row["request_id"]) if c.found]
                if found:
                    # a writer beside the erasure put data back (an ingest batch that had read the
                    # tombstones before they were written, an index batch that had read silver before the
                    # DELETE): the request goes back to pending and the next run erases it again, so it
                    # cannot sit in `erased` unverified until the deadline passes
                    report.unverified[row["request_id"]] = found
                    requests.upsert([{"request_id": row["request_id"], "status": "pending"}])
                    continue
                requests.upsert(
                    [
                        {
                            "request_id": row["request_id"],
                            "status": "done",
                            "subject_id": None,
                            "finished_at": datetime.now(UTC),
                        }
                    ]
                )
                report.verified.append(row["request_id"])
        else:
            report.deferred += sorted(r["request_id"] for r in ready)
    report.overdue = overdue(requests.rows(), now, cfg.erasure.deadline_hours)
    return report


def _erased_at(log_rows: Iterable[Mapping[str, Any]]) -> dict[str, datetime]:
    out: dict[str, datetime] = {}
    for r in log_rows:
        if r.get("finished_at") is not None:
            out[r["request_id"]] = max(out.get(r["request_id"], r["finished_at"]), r["finished_at"])
    return out


def purge_history(spark: SparkSession, cfg: Config, tables: LakeTables) -> None:
    """Deletion vectors purged and files vacuumed in every lake table that holds subject data."""
    from vectorlake.ops.erasure_stores import delta_purge_history

    for name in lake_stores(tables):
        delta_purge_history(spark, tables.table(name), cfg.erasure.vacuum_retention_hours)


def _index_caught_up(spark: SparkSession, cfg: Config, tables: LakeTables) -> bool:
    """True when vacuuming cannot break the index stream: it has read silver/listings to the end.

    With erasure.catch_up_index the stream is run once (availableNow) first when it is behind; a
    continuously running stream must then not share the checkpoint at that moment (the DAG runs hourly
    between its batches, see the runbook). Without it the vacuum waits for the stream. A checkpoint on an
    object store is read through Hadoop's file system, as the stream itself reads it."""
    from vectorlake.pipeline.index_query import checkpoint_path

    checkpoint = checkpoint_path(cfg)
    files: CheckpointFiles = (
        LocalCheckpoint(checkpoint) if is_local(checkpoint) else HadoopCheckpoint(spark, checkpoint)
    )
    committed = files.committed()
    if not committed:
        return True  # no index stream has ever read this lake: nothing to break
    read = reservoir_version(files.offsets(committed[-1]))
    from delta.tables import DeltaTable

    latest = int(DeltaTable.forPath(spark, tables.listings).history(1).select("version").first()[0])  # type: ignore[index]
    if read is not None and read >= latest:
        return True
    where = f"v{read} of v{latest}" if read is not None else f"an unknown version of v{latest}"
    if not cfg.erasure.catch_up_index:
        log.warning("index stream has read silver/listings to %s: vacuum deferred", where)
        return False
    from vectorlake.pipeline import stream

    log.info("index stream has read silver/listings to %s: running it once before the vacuum", where)
    stream.run_index_once(spark, cfg)
    return True


# --- verification ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreCheck:
    store: str
    found: int
    detail: str

    def line(self) -> str:
        state = "FOUND" if self.found else "absent"
        return f"{self.store}: {state} ({self.detail})"


def verify(spark: SparkSession, cfg: Config, request_id: str) -> list[StoreCheck]:
    """Scan every store for the request's subject; one check per store."""
    from vectorlake.ops import erasure_stores as stores

    s3.require_credentials(cfg)
    _, match = request_match(cfg, request_id)
    tables = LakeTables(cfg.lake.root)
    checks: list[StoreCheck] = []
    for name, columns in lake_stores(tables).items():
        condition = row_condition(columns, match)
        if condition is None:
            continue
        scan = stores.delta_scan(spark, tables.table(name), condition)
        detail = (
            f"current version {scan.current} rows, data files on storage {scan.data_files}, "
            f"change data {scan.change_data_rows}"
        )
        checks.append(StoreCheck(name, scan.found, detail))
    n = stores.landing_scan(cfg.sources.landing_dir, match)
    checks.append(StoreCheck("landing", n, f"{n} lines or image files"))
    n = stores.s3_scan(stores.s3_client(cfg), cfg.s3.bucket, match)
    checks.append(StoreCheck(f"s3/{cfg.s3.bucket}", n, f"{n} object versions"))
    client = _opensearch(cfg)
    try:
        for index in _generations(client, cfg):
            n = stores.opensearch_scan(client, index, match)
            checks.append(StoreCheck(f"opensearch/{index}", n, f"{n} documents"))
    finally:
        client.close()
    if cfg.warehouse.target == "duckdb":
        for table, n in stores.duckdb_scan(cfg.warehouse.duckdb_path, match).items():
            checks.append(StoreCheck(f"duckdb/{table}", n, f"{n} rows"))
    return checks


def snowflake_sql(cfg: Config, request_id: str) -> list[str]:
    """The Snowflake statements that erase the request's subject (hashes only)."""
    from vectorlake.ops.erasure_stores import snowflake_statements

    _, match = request_match(cfg, request_id)
    return snowflake_statements(match)
