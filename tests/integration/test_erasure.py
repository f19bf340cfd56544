"""GDPR erasure on the real stack: a seller erased from every store (history, every index generation, the
warehouse snapshot, every S3 object version, landing files), everyone else unchanged, and late events for
the seller dropped at ingest. The erasure runs `vectorlake erase` and `vectorlake purge` as subprocesses
from a shell without AWS variables, as an operator would.

One small catalog is streamed into a temp lake and a fresh index alias; its images live in a versioned moto
bucket of its own (two versions each); a second generation is built behind the `_next` alias and the
warehouse is built into a temp DuckDB file. The assertions read the stores directly, by id, not through the
hash matching under test.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from vectorlake import warehouse
from vectorlake.config import PROJECT_ROOT, Config, load_config
from vectorlake.embed import registry
from vectorlake.generate import GeneratorSpec, generate, write_landing
from vectorlake.lake import checkpoint
from vectorlake.lake.tables import LakeTables
from vectorlake.ops import erasure, lifecycle, reindex
from vectorlake.pipeline import stream

SPEC = GeneratorSpec(
    seed=11, listings=16, sellers=4, events=100, suppression_rate=0.0, image_rate=0.6, image_size=(64, 48)
)
LAKE_TABLES = (
    "bronze/listing_changes",
    "bronze/media",
    "bronze/seller_policy",
    "quarantine/events",
    "silver/listings",
    "silver/listing_versions",
    "silver/media",
    "silver/seller_policy",
    "gold/embeddings",
    "gold/embed_dead_letters",
    "gold/index_log",
    "gold/index_dead_letters",
)


@dataclass(frozen=True)
class Stack:
    cfg: Config
    tables: LakeTables
    landing: Path
    bucket: str
    seller: str  # the seller to erase
    listings: frozenset[str]  # every listing that ever named it
    late_lines: dict[str, list[str]]  # kind -> its original landing lines, event ids made new
    overrides: dict[str, str]  # the VECTORLAKE__* variables that point a command at this test's stores


def _s3(cfg: Config) -> Any:
    import boto3

    return boto3.client("s3", endpoint_url=cfg.s3_endpoint_url, region_name=cfg.s3.region)


def _os(cfg: Config) -> Any:
    from vectorlake.index.client import make_client

    return make_client(cfg)


def _generations(cfg: Config) -> list[str]:
    from vectorlake.index import generations

    client = _os(cfg)
    try:
        return list(generations.generations(client, cfg.index.alias))
    finally:
        client.close()


def _lines_of(landing: Path, seller: str, listings: frozenset[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for path in sorted(landing.rglob("part-*.jsonl")):
        for line in path.read_text().splitlines():
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                continue
            if not isinstance(event, dict):
                continue
            if event.get("seller_id") == seller or event.get("listing_id") in listings:
                # a new event id per line: the stream's dedup must not drop any before the tombstones do
                event["event_id"] = f"{event.get('event_id')}-late-{len(out.get(path.parent.name, []))}"
                out.setdefault(path.parent.name, []).append(json.dumps(event))
    return out


@pytest.fixture(scope="module")
def stack(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    from pyspark.sql import functions as F

    tmp = tmp_path_factory.mktemp("erasure")
    landing = tmp / "landing"
    write_landing(generate(SPEC, image_root=str(landing / "images")), landing, files_per_kind=1)
    bucket = f"t-erasure-{uuid.uuid4().hex[:8]}"
    patch = pytest.MonkeyPatch()
    overrides = {
        "VECTORLAKE__LAKE__ROOT": str(tmp / "lake"),
        "VECTORLAKE__INDEX__ALIAS": f"t-erasure-{uuid.uuid4().hex[:8]}",
        "VECTORLAKE__SOURCES__LANDING_DIR": str(landing),
        "VECTORLAKE__WAREHOUSE__DUCKDB_PATH": str(tmp / "warehouse" / "vectorlake.duckdb"),
        "VECTORLAKE__S3__BUCKET": bucket,
        "VECTORLAKE__REINDEX__CHUNKS": "2",
    }
    for key, value in {
        **overrides,
        "AWS_ACCESS_KEY_ID": "testing",  # moto accepts any credentials
        "AWS_SECRET_ACCESS_KEY": "testing",
    }.items():
        patch.setenv(key, value)
    cfg = load_config()
    s3 = _s3(cfg)
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_versioning(Bucket=bucket, VersioningConfiguration={"Status": "Enabled"})
    try:
        # the images move to the bucket (two versions each: an overwrite leaves the old one behind)
        images = landing / "images"
        for image in sorted(images.glob("*.jpg")):
            for body in (b"old version", image.read_bytes()):
                s3.put_object(Bucket=bucket, Key=f"images/{image.name}", Body=body)
        for path in landing.rglob("part-*.jsonl"):
            path.write_text(
                path.read_text().replace(images.absolute().as_uri() + "/", f"s3://{bucket}/images/")
            )

        registry.register_all(cfg)
        totals = stream.run(spark, cfg, "files", once=True, landing_dir=str(landing))
        assert totals.index is not None and totals.index.rejected == 0
        gen = lifecycle.create_generation(cfg)
        reindex.load(spark, cfg, gen.index)
        warehouse.build(cfg)
        tables = LakeTables(cfg.lake.root)

        listings = spark.read.format("delta").load(tables.listings)
        by_seller = listings.groupBy("seller_id").count().orderBy(F.desc("count"), "seller_id").collect()
        seller = str(by_seller[0]["seller_id"])
        ever = listings.where(F.array_contains("registers.sellers", seller) | (F.col("seller_id") == seller))
        mine = frozenset(r[0] for r in ever.select("listing_id").collect())
        assert mine and len(mine) < listings.count(), "the seller must own some listings, not all"
        yield Stack(cfg, tables, landing, bucket, seller, mine, _lines_of(landing, seller, mine), overrides)
    finally:
        client = _os(cfg)
        try:
            for index in _generations(cfg):
                client.indices.delete(index=index)
        finally:
            client.close()
        for key, version in _all_versions(s3, bucket):
            s3.delete_object(Bucket=bucket, Key=key, VersionId=version)
        s3.delete_bucket(Bucket=bucket)
        patch.undo()


def _all_versions(s3: Any, bucket: str) -> list[tuple[str, str]]:
    out = []
    for page in s3.get_paginator("list_object_versions").paginate(Bucket=bucket):
        for entry in [*page.get("Versions", []), *page.get("DeleteMarkers", [])]:
            out.append((entry["Key"], entry["VersionId"]))
    return sorted(out)


def _subject_filter(columns: list[str], st: Stack) -> str:
    ids = ", ".join(repr(x) for x in sorted(st.listings))
    parts = []
    if "listing_id" in columns:
        parts.append(f"listing_id IN ({ids})")
    if "seller_id" in columns:
        parts.append(f"seller_id = {st.seller!r}")
    if "registers" in columns:
        parts.append(f"array_contains(registers.sellers, {st.seller!r})")
    if "payload_text" in columns:
        parts.append(f"payload_text LIKE '%{st.seller}%'")
    return " OR ".join(parts)


def _lake_rows(spark: Any, st: Stack, mine: bool) -> dict[str, list[str]]:
    """Every current row of every lake table, as sorted JSON: the subject's rows, or everyone else's."""
    out = {}
    for name in LAKE_TABLES:
        frame = spark.read.format("delta").load(st.tables.table(name))
        cond = _subject_filter(frame.columns, st)
        frame = frame.where(cond if mine else f"NOT coalesce({cond}, false)")
        out[name] = sorted(frame.toJSON().collect())
    return out


def _index_docs(cfg: Config, query: dict[str, Any]) -> dict[str, dict[str, Any]]:
    from opensearchpy import helpers

    client = _os(cfg)
    try:
        out: dict[str, dict[str, Any]] = {}
        for index in _generations(cfg):
            client.indices.refresh(index=index)
            for hit in helpers.scan(client, index=index, query={"query": query}, version=True):
                out[f"{index}/{hit['_id']}"] = {
                    "version": hit["_version"],
                    "seller": hit["_source"]["seller_id"],
                }
        return out
    finally:
        client.close()


def _subject_query(st: Stack) -> dict[str, Any]:
    return {
        "bool": {
            "should": [{"term": {"seller_id": st.seller}}, {"ids": {"values": sorted(st.listings)}}],
            "minimum_should_match": 1,
        }
    }


def _duckdb(cfg: Config, sql: str) -> list[tuple[Any, ...]]:
    """A read of the test's own DuckDB file (the SQL is built from the test's own ids)."""
    import duckdb

    with duckdb.connect(cfg.warehouse.duckdb_path, read_only=True) as con:
        rows: list[tuple[Any, ...]] = con.execute(sql).fetchall()
        return rows


def _landing_text(st: Stack) -> str:
    return "".join(p.read_text() for p in sorted(st.landing.rglob("part-*.jsonl")))


def _subject_keys(st: Stack, spark: Any) -> set[str]:
    media = spark.read.format("delta").load(st.tables.bronze("media"))
    urls = [r[0] for r in media.where(media.listing_id.isin(sorted(st.listings))).select("url").collect()]
    return {u.split(f"s3://{st.bucket}/", 1)[1] for u in urls}


def test_quarantined_payloads_match_ids_of_any_characters_exactly(spark: Any) -> None:
    """Quarantine keeps raw payloads: a JSON one is matched by its id fields exactly (spaces, slashes,
    non-ASCII), any other by whole tokens (issue 20, item 4)."""
    from vectorlake.lake.tombstones import Match, row_condition, subject_hash

    payloads = [
        '{"seller_id": "acme shop", "title": 5}',  # valid JSON, failed validation
        '{"seller_id": "acme", "title": 5}',
        '{"listing_id": "L 1/\\u00fc", "op": "BOGUS"}',  # the id "L 1/ü", JSON-escaped
        "not json, names L-9 as a token",
        "not json, names acme shop in text",  # not an id field: only tokens count, and "acme" is not
    ]
    frame = spark.createDataFrame([(p,) for p in payloads], "payload_text string")
    match = Match(
        frozenset({subject_hash("seller", "acme shop")}),
        frozenset({subject_hash("listing", "L 1/ü"), subject_hash("listing", "L-9")}),
    )
    condition = row_condition({"payload_text": "string"}, match)
    assert condition is not None and "acme shop" not in condition
    found = sorted(r[0] for r in frame.where(condition).collect())
    assert found == sorted([payloads[0], payloads[2], payloads[3]])


def test_a_large_sellers_listings_are_erased_from_the_index_in_pages(cfg: Config, unique_name: str) -> None:
    """More listing ids than one terms query may hold (65,536 by default) are queried in pages; here
    pages of 2 over 5 listings, with ids of any characters, and a seller's documents found by seller_id."""
    from opensearchpy import helpers

    from vectorlake.ops.erasure_stores import opensearch_erase

    client = _os(cfg)
    index = unique_name
    mapping = {"properties": {"listing_id": {"type": "keyword"}, "seller_id": {"type": "keyword"}}}
    client.indices.create(index=index, body={"mappings": mapping})
    try:
        mine = ["L 1/ü", "L-2", "L-3", "L-4", "L-5"]
        docs = [(lid, "s-other") for lid in mine] + [("L-6", "acme shop"), ("L-7", "s-other")]
        helpers.bulk(
            client,
            ({"_index": index, "_id": lid, "listing_id": lid, "seller_id": sid} for lid, sid in docs),
            refresh="true",
        )
        assert opensearch_erase(client, index, ["acme shop"], mine, page=2) == 6
        client.indices.refresh(index=index)
        left = {hit["_id"] for hit in helpers.scan(client, index=index, query={"query": {"match_all": {}}})}
        assert left == {"L-7"}
    finally:
        client.indices.delete(index=index)
        client.close()


def test_erasing_a_seller_removes_it_everywhere_and_leaves_everyone_else(
    spark: Any, stack: Stack, capsys: pytest.CaptureFixture[str]
) -> None:
    from delta.tables import DeltaTable

    from vectorlake.control import erasure_log_table, requests_table, tombstones_table

    st, cfg = stack, stack.cfg
    # before: the seller is in every kind of store, and a second generation exists
    gens = _generations(cfg)
    assert len(gens) == 2, gens
    mine_before = _lake_rows(spark, st, mine=True)
    for name in ("bronze/listing_changes", "silver/listings", "silver/listing_versions", "gold/embeddings"):
        assert mine_before[name], f"{name} holds nothing of the seller: the test would prove nothing"
    others_before = _lake_rows(spark, st, mine=False)
    docs_mine = _index_docs(cfg, _subject_query(st))
    assert {d.split("/")[0] for d in docs_mine} == set(gens), "the seller must be in both generations"
    docs_others = _index_docs(cfg, {"bool": {"must_not": [_subject_query(st)]}})
    snapshot = "snapshots.snp_listing_states"
    ids = ", ".join(repr(x) for x in sorted(st.listings))
    mine_sql = f"SELECT count(*) FROM {snapshot} WHERE listing_id IN ({ids})"  # noqa: S608
    others_sql = f"SELECT * FROM {snapshot} WHERE listing_id NOT IN ({ids}) ORDER BY ALL"  # noqa: S608
    assert _duckdb(cfg, mine_sql)[0][0] > 0
    duck_others = _duckdb(cfg, others_sql)
    s3 = _s3(cfg)
    keys = _subject_keys(st, spark)
    assert keys, "the seller must have images in the bucket"
    versions_before = _all_versions(s3, st.bucket)
    assert sum(1 for k, _ in versions_before if k in keys) == 2 * len(keys)
    assert st.seller in _landing_text(st)
    history_before = {
        n: int(DeltaTable.forPath(spark, st.tables.table(n)).history(1).first()[0]) for n in LAKE_TABLES
    }

    # `erase` then `purge` as an operator runs them, from a shell with no AWS variables and no AWS config
    # files (issue 16: the purge erased the stores and died in its S3 verification with NoCredentialsError;
    # every S3 client must reach the local moto with the stack's own credentials)
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env |= st.overrides | {"AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent"}
    rid = erasure.request_id_for("seller", st.seller)
    erase = _vectorlake(["erase", "--seller", st.seller], env)
    assert erase.returncode == 0 and rid in erase.stdout, erase.stderr[-3000:]
    assert erasure.record_request(cfg, "seller", st.seller).request_id == rid  # idempotent
    purge = _vectorlake(["purge"], env)
    assert purge.returncode == 0, purge.stdout[-2000:] + purge.stderr[-3000:]  # verified, none overdue
    # its own verification scanned every store, S3 included (where NoCredentialsError was raised)
    assert f"verified {rid}: nothing left, subject_id cleared" in purge.stdout.splitlines(), purge.stdout
    counts = {r["store"]: r["erased"] for r in erasure_log_table(cfg).rows() if r["request_id"] == rid}
    assert counts["silver/listings"] == len(mine_before["silver/listings"])
    assert counts["bronze/listing_changes"] == len(mine_before["bronze/listing_changes"])
    assert counts["s3"] == 2 * len(keys)
    assert sum(n for s, n in counts.items() if s.startswith("opensearch/")) == len(docs_mine)

    # the lake: nothing of the seller now, nor in any older version that can still be read
    assert all(not rows for rows in _lake_rows(spark, st, mine=True).values())
    readable_old = 0
    for name in LAKE_TABLES:
        path = st.tables.table(name)
        for version in range(history_before[name] + 1):
            try:
                frame = spark.read.format("delta").option("versionAsOf", version).load(path)
                found = frame.where(_subject_filter(frame.columns, st)).count()
            except Exception as e:  # vacuumed: time travel to it fails, which is the point
                vacuumed = ("FileNotFound", "does not exist", "No such file")
                assert any(w in str(e) for w in vacuumed), str(e)[:500]
                continue
            readable_old += 1
            assert found == 0, f"{name}@v{version} still shows the seller"
    assert readable_old > 0, "some old versions stay readable (those without the seller's files)"
    # everyone else: the same rows (silver/listings' CDF-derived stores unchanged too)
    assert _lake_rows(spark, st, mine=False) == others_before

    # every index generation
    assert _index_docs(cfg, _subject_query(st)) == {}
    assert _index_docs(cfg, {"bool": {"must_not": [_subject_query(st)]}}) == docs_others
    # the warehouse snapshot and every table with the ids
    assert _duckdb(cfg, mine_sql)[0][0] == 0
    for schema, table, column in _duckdb(
        cfg,
        "SELECT table_schema, table_name, column_name FROM information_schema.columns "
        "WHERE column_name IN ('listing_id', 'seller_id')",
    ):
        value = f"({ids})" if column == "listing_id" else f"({st.seller!r})"
        sql = f'SELECT count(*) FROM "{schema}"."{table}" WHERE {column} IN {value}'  # noqa: S608
        n = _duckdb(cfg, sql)[0][0]
        assert n == 0, f"{schema}.{table} still has the seller ({column})"
    assert _duckdb(cfg, others_sql) == duck_others
    # every S3 object version
    after = _all_versions(s3, st.bucket)
    assert not [k for k, _ in after if k in keys]
    assert after == [v for v in versions_before if v[0] not in keys]
    # landing files
    assert st.seller not in _landing_text(st) and all(lid not in _landing_text(st) for lid in st.listings)

    # the control tables: done, subject_id cleared, no personal data in the log
    row = {r["request_id"]: r for r in requests_table(cfg).rows()}[rid]
    assert row["status"] == "done" and row["subject_id"] is None and row["finished_at"] is not None
    recorded = json.dumps([*erasure_log_table(cfg).rows(), *tombstones_table(cfg).rows()], default=str)
    assert st.seller not in recorded and all(lid not in recorded for lid in st.listings)
    assert erasure.subject_hash("seller", st.seller) in recorded

    # the verification scan, as the CLI prints it: one line per store, all absent
    from vectorlake import cli

    assert cli.main(["purge", "--verify", rid]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert all(": absent (" in line for line in lines), lines
    stores = {line.split(": ")[0] for line in lines}
    assert {*LAKE_TABLES, "landing", f"s3/{st.bucket}", *(f"opensearch/{g}" for g in gens)} <= stores
    assert f"duckdb/{snapshot}" in stores


def test_events_for_an_erased_seller_arriving_later_bring_nothing_back(spark: Any, stack: Stack) -> None:
    from vectorlake.pipeline import ingest_query

    st, cfg = stack, stack.cfg
    from vectorlake.control import requests_table

    rows = {r["subject_hash"] for r in requests_table(cfg).rows()}
    assert erasure.subject_hash("seller", st.seller) in rows, "runs after the erasure test"
    late = sum(len(v) for v in st.late_lines.values())
    assert late and st.late_lines.get("listing_changes")
    for kind, lines in st.late_lines.items():
        (st.landing / kind / "part-late.jsonl").write_text("".join(line + "\n" for line in lines))
    others_before = _lake_rows(spark, st, mine=False)

    query, writer = ingest_query.start(spark, cfg, "files", True, str(st.landing))
    query.awaitTermination()
    assert query.exception() is None
    assert sum(c.erased for c in writer.counts.values()) == late
    assert sum(c.accepted + c.quarantined for c in writer.counts.values()) == 0
    rows_in = {p.batchId: p.numInputRows for p in query.recentProgress if p.numInputRows}
    totals = ingest_query.totals(writer, rows_in)
    assert (totals.rows_in, totals.erased, totals.duplicates) == (late, late, 0), totals
    stream.run_index_once(spark, cfg)

    assert all(not rows for rows in _lake_rows(spark, st, mine=True).values())
    assert _lake_rows(spark, st, mine=False) == others_before
    assert _index_docs(cfg, _subject_query(st)) == {}


def test_the_checkpoint_reads_the_same_through_hadoop_as_from_the_local_disk(
    spark: Any, stack: Stack
) -> None:
    """On an object store the purge reads the index checkpoint through Hadoop's file system; here both
    readers see the same real checkpoint (file://), and it has read silver/listings to the end."""
    from delta.tables import DeltaTable

    from vectorlake.pipeline.index_query import checkpoint_path

    local_path = checkpoint_path(stack.cfg)
    local = checkpoint.LocalCheckpoint(local_path)
    hadoop = checkpoint.HadoopCheckpoint(spark, Path(local_path.removeprefix("file://")).absolute().as_uri())
    committed = local.committed()
    assert committed and hadoop.committed() == committed
    assert hadoop.offsets(committed[-1]) == local.offsets(committed[-1])
    latest = int(DeltaTable.forPath(spark, stack.tables.listings).history(1).first()[0])
    assert checkpoint.reservoir_version(hadoop.offsets(committed[-1])) == latest  # the stream ran to the end
    missing = checkpoint.HadoopCheckpoint(spark, (stack.landing.parent / "no-checkpoint").as_uri())
    assert missing.committed() == []


def _vectorlake(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The installed `vectorlake` command, as an operator runs it."""
    command = [str(Path(sys.executable).parent / "vectorlake"), *args]
    return subprocess.run(
        command, env=env, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=600, check=False
    )


def test_a_listing_erasure_deletes_only_its_own_images_and_is_retried_when_data_comes_back(
    spark: Any, stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20, item 4: a listing's media events name a file outside the image folders, an object in
    another bucket and an image another seller's listing uses too; its erasure deletes only its own object.
    Issue 19, item 4, a forced interleaving: a writer beside the purge puts the listing's rows back between
    the erasure and the verification (as an ingest batch that read the tombstones before they were written
    would); the request goes back to pending instead of staying erased and unverified until its deadline,
    and the next purge erases and verifies it. (Runs last: it erases another seller's listing.)"""
    from pyspark.sql import functions as F

    from vectorlake.control import requests_table
    from vectorlake.pipeline import ingest_query

    st, cfg = stack, stack.cfg
    s3 = _s3(cfg)
    listings = spark.read.format("delta").load(st.tables.listings).where(F.col("seller_id") != st.seller)
    with_image = listings.where(F.col("primary_image_url").startswith(f"s3://{st.bucket}/"))
    rows = with_image.orderBy("listing_id").select("listing_id", "seller_id", "primary_image_url").collect()
    mine, own_url = rows[0]["listing_id"], rows[0]["primary_image_url"]
    shared_url = next(r["primary_image_url"] for r in rows if r["seller_id"] != rows[0]["seller_id"])
    precious = st.landing.parent / "precious.jpg"  # outside the landing folder (the image root here)
    precious.write_bytes(b"not the seller's to delete")
    other_bucket = f"{st.bucket}-other"
    s3.create_bucket(Bucket=other_bucket)
    s3.put_object(Bucket=other_bucket, Key="keep.jpg", Body=b"not ours either")
    try:
        hostile = [precious.as_uri(), f"s3://{other_bucket}/keep.jpg", shared_url]
        media = [
            {"event_id": f"own-{i}", "listing_id": mine, "image_id": f"own-{i}", "event_ts": 5_000 + i}
            | {"op": "ADDED", "url": url}
            for i, url in enumerate(hostile)
        ]
        (st.landing / "media" / "part-hostile.jsonl").write_text("".join(json.dumps(m) + "\n" for m in media))
        query, _ = ingest_query.start(spark, cfg, "files", True, str(st.landing))
        query.awaitTermination()
        assert query.exception() is None

        bronze = st.tables.bronze("listing_changes")
        frame = spark.read.format("delta").load(bronze)
        put_back, schema = frame.where(F.col("listing_id") == mine).collect(), frame.schema
        assert put_back, "the listing must have bronze rows to put back"
        rid = erasure.record_request(cfg, "listing", mine).request_id
        real_purge_history = erasure.purge_history

        def a_writer_beside_the_purge(session: Any, config: Config, tables: LakeTables) -> None:
            session.createDataFrame(put_back, schema).write.format("delta").mode("append").save(bronze)
            real_purge_history(session, config, tables)

        with monkeypatch.context() as m:
            m.setattr(erasure, "purge_history", a_writer_beside_the_purge)
            first = erasure.purge(spark, cfg)
        # only its own image went: not the file outside the roots, the other bucket, the shared image
        key = own_url.split(f"s3://{st.bucket}/", 1)[1]
        assert not [k for k, _ in _all_versions(s3, st.bucket) if k == key]
        shared_key = shared_url.split(f"s3://{st.bucket}/", 1)[1]
        assert [k for k, _ in _all_versions(s3, st.bucket) if k == shared_key]
        assert precious.read_bytes() == b"not the seller's to delete"
        assert s3.get_object(Bucket=other_bucket, Key="keep.jpg")["Body"].read() == b"not ours either"
        # the rows put back fail the verification; the request is pending again, with its subject
        assert rid in first.erased and first.verified == []
        assert "bronze/listing_changes" in first.unverified[rid]
        assert any(
            line.startswith(f"NOT verified {rid}") and "pending again" in line for line in first.lines()
        )
        status = {r["request_id"]: r for r in requests_table(cfg).rows()}[rid]
        assert status["status"] == "pending" and status["subject_id"] == mine

        second = erasure.purge(spark, cfg)
        assert second.erased[rid]["bronze/listing_changes"] == len(put_back)
        assert second.verified == [rid] and second.unverified == {}
        assert {r["request_id"]: r["status"] for r in requests_table(cfg).rows()}[rid] == "done"
        assert spark.read.format("delta").load(bronze).where(F.col("listing_id") == mine).count() == 0
    finally:
        for k, version in _all_versions(s3, other_bucket):
            s3.delete_object(Bucket=other_bucket, Key=k, VersionId=version)
        s3.delete_bucket(Bucket=other_bucket)
