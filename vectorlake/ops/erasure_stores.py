"""The stores an erasure reaches, each with an ``erase`` and a ``scan`` that match by hash.

A subject is matched by the sha256 of ``"<type>:<id>"`` (`vectorlake.lake.tombstones.subject_hash`): a
row, line, document or object belongs to the subject when the hash of one of its identifiers is in a
`Match`. So the same code erases (while the ids are known) and proves absence later (when only the
hashes are left).

Stores: the lake's Delta tables (and, for history, every data and change-data file still on storage), the
landing files and local images, the S3 image objects (every version), every OpenSearch generation of the
index family, and the warehouse (DuckDB locally; `snowflake_statements` for production).
"""

from __future__ import annotations

import logging
import os
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

from vectorlake.config import Config
from vectorlake.lake.tombstones import Match, hash_in, subject_hash

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

log = logging.getLogger(__name__)


# --- Delta tables -----------------------------------------------------------------------------------


def delta_erase(spark: SparkSession, path: str, condition: str) -> int:
    """Delete the subject's rows from the current version; returns how many (0: no commit at all)."""
    from delta.tables import DeltaTable

    n = int(spark.read.format("delta").load(path).where(condition).count())
    if n:
        DeltaTable.forPath(spark, path).delete(condition)
    return n


def delta_purge_history(spark: SparkSession, path: str, retention_hours: float) -> None:
    """Remove deleted rows physically: purge deletion vectors (if the table uses them), then VACUUM."""
    from delta.tables import DeltaTable

    props = DeltaTable.forPath(spark, path).detail().select("properties").first()
    properties: Mapping[str, str] = (props[0] if props else None) or {}
    if properties.get("delta.enableDeletionVectors", "false").lower() == "true":
        spark.sql(f"REORG TABLE delta.`{path}` APPLY (PURGE)")
    check = "spark.databricks.delta.retentionDurationCheck.enabled"
    # VACUUM lists files in this many tasks (default 10000): thousands of empty tasks per small table
    listing = "spark.sql.sources.parallelPartitionDiscovery.parallelism"
    before = {check: spark.conf.get(check, "true"), listing: spark.conf.get(listing, "10000")}
    spark.conf.set(check, "false")  # a retention under 7 days is the point here
    spark.conf.set(listing, spark.conf.get("spark.sql.shuffle.partitions", "200") or "200")
    try:
        spark.sql(f"VACUUM delta.`{path}` RETAIN {retention_hours:g} HOURS")
    finally:
        for key, value in before.items():
            spark.conf.set(key, value or "")


@dataclass(frozen=True)
class DeltaScan:
    current: int  # subject rows in the current version
    data_files: int  # subject rows in any data file still on storage (what time travel could reach)
    change_data_rows: int  # subject rows in the change-data files (_change_data)

    @property
    def found(self) -> int:
        return self.current + self.data_files + self.change_data_rows


def delta_scan(spark: SparkSession, path: str, condition: str) -> DeltaScan:
    """Look for the subject in the current version and in every data and change-data file on storage.

    Every older version that time travel can still read consists of files that are still there, so
    scanning the files themselves covers all those versions in one job (rows hidden by deletion vectors
    included) instead of one job per version."""
    current = int(spark.read.format("delta").load(path).where(condition).count())
    return DeltaScan(
        current,
        _parquet_rows(spark, path, condition),
        _parquet_rows(spark, f"{path.rstrip('/')}/_change_data", condition),
    )


def _parquet_rows(spark: SparkSession, folder: str, condition: str) -> int:
    """Rows matching ``condition`` in every Parquet file under ``folder`` (names starting with _ or . ,
    such as _delta_log and _change_data, are skipped as Spark always skips them); 0 without files."""
    from pyspark.errors import AnalysisException

    try:
        frame = (
            spark.read.option("recursiveFileLookup", "true")
            .option("pathGlobFilter", "*.parquet")  # not the deletion vector files (.bin)
            .option("mergeSchema", "true")
            .parquet(folder)
        )
        return int(frame.where(condition).count())
    except AnalysisException as e:  # no such folder, or no Parquet file in it
        if "PATH_NOT_FOUND" in str(e) or "UNABLE_TO_INFER_SCHEMA" in str(e):
            return 0
        raise


# --- landing files and local images ---------------------------------------------------------------


def _landing_files(landing_dir: str) -> list[Path]:
    root = Path(landing_dir)
    if not root.is_dir():
        return []
    return sorted(p for p in root.rglob("*") if p.is_file() and p.suffix in (".jsonl", ".json"))


def landing_erase(landing_dir: str, match: Match) -> int:
    """Rewrite every landing file without the lines naming the subject (atomically); returns lines dropped."""
    dropped = 0
    for path in _landing_files(landing_dir):
        data = path.read_text(encoding="utf-8", errors="replace")
        lines = data.splitlines(keepends=True)
        kept = [line for line in lines if not match.mentions(line)]
        if len(kept) == len(lines):
            continue
        dropped += len(lines) - len(kept)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as out:
                out.writelines(kept)
            Path(tmp).replace(path)  # readers see the old file or the new one, never half of it
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
    return dropped


def landing_scan(landing_dir: str, match: Match) -> int:
    """Lines naming the subject in the landing files, plus local image files of the subject."""
    found = 0
    for path in _landing_files(landing_dir):
        found += sum(
            1
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines()
            if match.mentions(line)
        )
    return found + len(local_images(landing_dir, match))


def _url_hash(url: str) -> str:
    return subject_hash("image_url", url)


def local_images(landing_dir: str, match: Match) -> list[Path]:
    """Local image files (under the landing folder) whose file:// URL hash is the subject's."""
    root = Path(landing_dir)
    if not match.images or not root.is_dir():
        return []
    return [p for p in root.rglob("*") if p.is_file() and _url_hash(p.absolute().as_uri()) in match.images]


def file_images_erase(urls: Sequence[str]) -> int:
    """Delete the local files behind ``file://`` image URLs; returns how many existed."""
    removed = 0
    for url in urls:
        parsed = urlparse(url)
        if parsed.scheme != "file":
            continue
        path = Path(unquote(parsed.path))
        if path.is_file():
            path.unlink()
            removed += 1
    return removed


# --- S3 objects (every version) ---------------------------------------------------------------------


def s3_client(cfg: Config) -> Any:
    """The S3 client the erasure uses: `vectorlake.s3.client`'s (the stack's credentials locally)."""
    from vectorlake import s3

    return s3.client(cfg)


def _versions(s3: Any, bucket: str, prefix: str) -> Iterable[tuple[str, str]]:
    """(key, version id) of every object version and delete marker under ``prefix``."""
    paginator = s3.get_paginator("list_object_versions")
    for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
        for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            yield entry["Key"], entry["VersionId"]


def s3_erase(s3: Any, urls: Sequence[str]) -> int:
    """Delete every version (and delete marker) of the objects behind ``s3://`` URLs; returns how many."""
    removed = 0
    for url in sorted(set(urls)):
        parsed = urlparse(url)
        if parsed.scheme not in ("s3", "s3a"):
            continue
        bucket, key = parsed.netloc, parsed.path.lstrip("/")
        targets = [{"Key": k, "VersionId": v} for k, v in _versions(s3, bucket, key) if k == key]
        for start in range(0, len(targets), 1000):
            answer = s3.delete_objects(Bucket=bucket, Delete={"Objects": targets[start : start + 1000]})
            errors = answer.get("Errors", [])
            if errors:
                raise RuntimeError(f"s3 delete of {len(errors)} object version(s) failed: {errors[0]}")
        removed += len(targets)
    return removed


def s3_scan(s3: Any, bucket: str, match: Match) -> int:
    """Object versions in ``bucket`` whose ``s3://`` URL hash is one of the subject's images."""
    from botocore.exceptions import ClientError

    if not match.images:
        return 0
    try:
        return sum(
            1 for key, _ in _versions(s3, bucket, "") if _url_hash(f"s3://{bucket}/{key}") in match.images
        )
    except ClientError as e:
        if e.response.get("Error", {}).get("Code") == "NoSuchBucket":
            return 0
        raise


# --- OpenSearch: every generation of the family ---------------------------------------------------


def _id_query(seller_ids: Sequence[str], listing_ids: Sequence[str]) -> dict[str, Any]:
    should: list[dict[str, Any]] = []
    if seller_ids:
        should.append({"terms": {"seller_id": list(seller_ids)}})
    if listing_ids:
        should.append({"terms": {"listing_id": list(listing_ids)}})
        should.append({"ids": {"values": list(listing_ids)}})
    return {"bool": {"should": should, "minimum_should_match": 1}}


ID_PAGE = 10_000  # ids per query: OpenSearch refuses a terms query over index.max_terms_count (65,536)


def opensearch_erase(
    client: Any, index: str, seller_ids: Sequence[str], listing_ids: Sequence[str], page: int = ID_PAGE
) -> int:
    """Delete the subject's documents from one physical index; returns how many were deleted.

    The ids are found with queries of at most ``page`` listing ids each (a large seller has more listings
    than one terms query may hold) and deleted with ``_bulk`` (not ``_delete_by_query``: that lives in
    the reindex module, which a minimal OpenSearch install, the local one included, does not have). A
    delete without a version removes the document whatever its external version."""
    from opensearchpy import helpers

    if not seller_ids and not listing_ids:
        return 0
    client.indices.refresh(index=index)
    listings = sorted(listing_ids)
    pages = [listings[i : i + page] for i in range(0, len(listings), page)] or [[]]
    ids = sorted(
        {
            hit["_id"]
            for chunk in pages
            for hit in helpers.scan(
                client, index=index, query={"query": _id_query(seller_ids, chunk), "_source": False}
            )
        }
    )
    if not ids:
        return 0
    actions = ({"_op_type": "delete", "_index": index, "_id": i} for i in ids)
    deleted, errors = helpers.bulk(client, actions, raise_on_error=False, refresh="true")
    missing = [e for e in errors if e.get("delete", {}).get("status") != 404]  # type: ignore[union-attr]
    if missing:
        raise RuntimeError(f"{index}: {len(missing)} document delete(s) failed: {missing[0]}")
    return int(deleted)


def opensearch_scan(client: Any, index: str, match: Match) -> int:
    """Documents of one physical index whose listing_id, _id or seller_id hash is the subject's."""
    from opensearchpy import helpers

    found = 0
    for hit in helpers.scan(
        client, index=index, query={"query": {"match_all": {}}, "_source": ["listing_id", "seller_id"]}
    ):
        source = hit.get("_source") or {}
        listing = source.get("listing_id") or hit["_id"]
        seller = source.get("seller_id")
        mine = subject_hash("listing", str(listing)) in match.listings
        mine = mine or subject_hash("listing", str(hit["_id"])) in match.listings
        if mine or (seller is not None and subject_hash("seller", str(seller)) in match.sellers):
            found += 1
    return found


# --- the warehouse ------------------------------------------------------------------------------------


# The SQL below holds only quoted table names from information_schema and validated hex digests.
def _warehouse_tables(con: Any) -> dict[str, list[str]]:
    """``schema.table`` -> its id columns (listing_id, seller_id), for every base table that has one."""
    rows = con.execute(
        "SELECT c.table_schema, c.table_name, c.column_name FROM information_schema.columns c "
        "JOIN information_schema.tables t USING (table_catalog, table_schema, table_name) "
        "WHERE t.table_type = 'BASE TABLE' AND c.column_name IN ('listing_id', 'seller_id') "
        "ORDER BY 1, 2, 3"
    ).fetchall()
    out: dict[str, list[str]] = {}
    for schema, table, column in rows:
        out.setdefault(f'"{schema}"."{table}"', []).append(str(column))
    return out


def _warehouse_condition(columns: Sequence[str], match: Match, sha: str) -> str:
    parts = []
    if "listing_id" in columns:
        parts.append(hash_in(sha.format("'listing:' || listing_id"), match.listings))
    if "seller_id" in columns:
        parts.append(hash_in(sha.format("'seller:' || seller_id"), match.sellers))
    return " OR ".join(f"coalesce({p}, false)" for p in parts) or "false"


def _duckdb_subject_rows(con: Any, match: Match) -> Iterator[tuple[str, str, int]]:
    """(table, condition, rows of the subject) for every DuckDB base table with an id column."""
    for table, columns in _warehouse_tables(con).items():
        condition = _warehouse_condition(columns, match, "sha256({})")
        query = f"SELECT count(*) FROM {table} WHERE {condition}"  # noqa: S608
        (n,) = con.execute(query).fetchone() or (0,)
        yield table, condition, int(n)


def duckdb_erase(path: str, match: Match) -> dict[str, int]:
    """Delete the subject's rows from every DuckDB base table with a listing_id or seller_id column."""
    import duckdb

    if not Path(path).exists():
        return {}
    counts: dict[str, int] = {}
    with duckdb.connect(path) as con:
        for table, condition, n in _duckdb_subject_rows(con, match):
            if n:
                con.execute(f"DELETE FROM {table} WHERE {condition}")  # noqa: S608
            counts[table.replace('"', "")] = n
    return counts


def duckdb_scan(path: str, match: Match) -> dict[str, int]:
    """The subject's rows in every DuckDB base table with a listing_id or seller_id column."""
    import duckdb

    if not Path(path).exists():
        return {}
    with duckdb.connect(path, read_only=True) as con:
        return {table.replace('"', ""): n for table, _, n in _duckdb_subject_rows(con, match)}


# Production: the warehouse tables holding listing_id/seller_id (dbt/README.md). Marts and the copies of
# the lake tables are rebuilt from the purged lake at the next build; the snapshot keeps history.
SNOWFLAKE_TABLES: Mapping[str, tuple[str, ...]] = {
    "snapshots.snp_listing_states": ("listing_id", "seller_id"),
    "silver.listing_versions": ("listing_id", "seller_id"),
    "gold.embeddings": ("listing_id",),
    "gold.index_log": ("listing_id",),
}


def snowflake_statements(match: Match, tables: Mapping[str, Sequence[str]] = SNOWFLAKE_TABLES) -> list[str]:
    """The Snowflake DELETEs that erase the subject (by hash: no personal data in the statements).

    Run them in one transaction with the prod role, then ``ALTER TABLE ... SET
    DATA_RETENTION_TIME_IN_DAYS`` is what bounds Time Travel and Fail-safe (7 days) for the deleted
    micro-partitions: Snowflake's own erasure window, documented in the runbook.
    """
    return [
        f"DELETE FROM {table} WHERE {_warehouse_condition(columns, match, 'SHA2({}, 256)')};"  # noqa: S608
        for table, columns in tables.items()
    ]
