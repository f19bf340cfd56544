"""generate -> stream (ingest, embed, index) -> OpenSearch -> search, against the local stack.

One generated catalog (duplicates, out-of-order and late events, images before and after their listing,
deletes, suppressions, poison) goes through the whole pipeline once: the session's shared lake
(tests/shared_lake.py), which these tests only read. The index must then hold exactly
one document per live listing of a non-suppressed seller, with the fields of its current state as the
pure-Python register oracle computes them from the events, and vectors equal to what the encoders give
for that state's model input.
"""

from __future__ import annotations

import dataclasses
import json
import subprocess
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests import oracle
from tests.shared_lake import SharedLake
from vectorlake.config import PROJECT_ROOT, Config
from vectorlake.embed import registry
from vectorlake.embed.encoders import load_image_encoder, load_text_encoder
from vectorlake.embed.modelinput import fuse, text_input
from vectorlake.generate import Catalog
from vectorlake.lake import registers
from vectorlake.lake.reference import Reference, load_reference
from vectorlake.lake.tables import LakeTables
from vectorlake.pipeline import stream
from vectorlake.query import Filters, search


@dataclasses.dataclass(frozen=True)
class Indexed:
    cfg: Config
    env: dict[str, str]
    catalog: Catalog
    tables: LakeTables
    totals: stream.PipelineTotals
    expected: dict[str, dict[str, Any]]
    all_listings: set[str]
    docs: dict[str, dict[str, Any]]
    versions: dict[str, int]
    reference: Reference


def index_documents(
    cfg: Config, alias: str | None = None
) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    """Every document behind the alias (default: the read alias; with vectors) and its external version."""
    from opensearchpy import helpers

    from vectorlake.index.client import make_client

    client = make_client(cfg)
    try:
        alias = alias or cfg.index.alias
        client.indices.refresh(index=alias)
        docs, versions = {}, {}
        for hit in helpers.scan(client, index=alias, query={"query": {"match_all": {}}}, version=True):
            docs[hit["_id"]] = hit["_source"]
            versions[hit["_id"]] = hit["_version"]
        return docs, versions
    finally:
        client.close()


def drop_alias(cfg: Config) -> None:
    from vectorlake.index.client import make_client

    client = make_client(cfg)
    try:
        if client.indices.exists_alias(name=cfg.index.alias):
            for index in client.indices.get_alias(name=cfg.index.alias):
                client.indices.delete(index=index)
    finally:
        client.close()


@pytest.fixture(scope="module")
def indexed(spark: Any, shared_lake: SharedLake) -> Indexed:
    """The session's shared catalog (tests/shared_lake.py), only read here."""
    lake = shared_lake.read(spark)
    cfg = lake.config()
    tables = lake.tables
    reference = load_reference(cfg.reference.categories, cfg.reference.locales)
    states = oracle.bronze_events(spark, tables)
    expected = oracle.expected_served(states, reference)
    all_listings = set(registers.fold(states).listings)
    docs, versions = index_documents(cfg)
    return Indexed(
        cfg, lake.env, lake.catalog, tables, lake.totals, expected, all_listings, docs, versions, reference
    )


def test_the_index_holds_exactly_the_served_listings(indexed: Indexed) -> None:
    expected, docs = indexed.expected, indexed.docs
    hidden = indexed.all_listings - set(expected)
    assert len(expected) > 40 and len(hidden) > 5  # the catalog has both kinds, or this proves little
    assert set(docs) == set(expected)
    assert not hidden & set(docs)  # deleted listings and those of suppressed sellers are not served
    assert indexed.totals.index is not None and indexed.totals.index.rejected == 0


def test_every_document_has_the_fields_of_its_current_state(indexed: Indexed) -> None:
    paths = indexed.reference.category_paths
    for lid, want in indexed.expected.items():
        doc = indexed.docs[lid]
        assert indexed.versions[lid] == want["version"] == doc["version"], lid  # external version = state
        assert doc["listing_id"] == lid
        assert doc.get("title") == want["title"], lid
        assert doc.get("seller_id") == want["seller_id"], lid
        assert doc.get("locale") == want["locale"], lid
        assert doc.get("category_id") == want["category_id"], lid
        assert doc.get("category_path") == paths.get(want["category_id"] or ""), lid
        assert doc.get("attributes", {}) == want["attributes"], lid
        assert doc.get("image_id") == want["primary_image_id"], lid
        assert doc["policy_status"] == "ACTIVE"


def test_vectors_are_the_encoders_output_for_the_current_model_input(indexed: Indexed) -> None:
    cfg = indexed.cfg
    text_ref, image_ref = registry.resolve(cfg, "text"), registry.resolve(cfg, "image")
    text_encoder = load_text_encoder(text_ref.path, "cpu", 32, cfg.embed.chunk_overlap_tokens, None)
    image_encoder = load_image_encoder(image_ref.path, "cpu", 32, None)
    paths = indexed.reference.category_paths
    sample = sorted(indexed.expected)[:25]
    with_image = [lid for lid in sample if indexed.expected[lid]["primary_image_url"]]
    assert 0 < len(with_image) < len(sample) or len(with_image) > 0
    texts = [
        text_input(
            w["title"],
            w["description"],
            paths.get(w["category_id"] or ""),
            w["attributes"],
            cfg.embed.text_attributes,
        )
        for w in (indexed.expected[lid] for lid in sample)
    ]
    want_text = text_encoder.encode(texts)
    images = {
        lid: Path(indexed.expected[lid]["primary_image_url"].removeprefix("file://")).read_bytes()
        for lid in with_image
    }
    want_image, errors = image_encoder.encode(list(images.values()))
    assert errors == [None] * len(images)
    want_image_by_id = dict(zip(images, want_image, strict=True))
    for lid, t in zip(sample, want_text, strict=True):
        doc = indexed.docs[lid]
        got = np.asarray(doc["text_vector"], dtype=np.float32)
        assert float(got @ t) > 0.999, lid
        assert doc["text_model"] == text_ref.label
        image = want_image_by_id.get(lid)
        if image is None:
            assert "image_vector" not in doc and "image_model" not in doc, lid
        else:
            assert float(np.asarray(doc["image_vector"]) @ image) > 0.999, lid
            assert doc["image_model"] == image_ref.label
        fused = fuse(got, None if image is None else np.asarray(doc["image_vector"]), image_encoder.dim,
                     cfg.embed.fusion.text_weight, cfg.embed.fusion.image_weight)  # fmt: skip
        assert np.allclose(np.asarray(doc["fused_vector"]), fused, atol=1e-5), lid


def test_the_embeddings_cache_and_index_log_record_each_write(indexed: Indexed, spark: Any) -> None:
    log = spark.read.format("delta").load(indexed.tables.index_log)
    applied = {r["listing_id"]: r for r in log.where("outcome = 'applied' AND action = 'index'").collect()}
    assert set(applied) == set(indexed.expected)
    for lid, row in applied.items():
        assert row["version"] == indexed.expected[lid]["version"]
        assert row["indexed_at"] is not None and row["text_model"] == indexed.docs[lid]["text_model"]
    emb = spark.read.format("delta").load(indexed.tables.embeddings)
    text_rows = emb.where("modality = 'text'").select("listing_id", "content_hash").collect()
    assert {r["listing_id"] for r in text_rows} == set(indexed.expected)
    dims = {r["modality"]: r["dim"] for r in emb.select("modality", "dim").distinct().collect()}
    assert dims == {"text": 384, "image": 1280}


def test_text_search_finds_the_labelled_relevant_listings(indexed: Indexed) -> None:
    queries = [q for q in indexed.catalog.queries if set(q.relevant) & set(indexed.docs)]
    assert len(queries) >= 5
    found = 0
    for q in queries:
        hits = search(indexed.cfg, text=q.query, k=10)
        assert len(hits) == 10
        assert all(-1.0 <= h.score <= 1.0 for h in hits)
        assert [h.score for h in hits] == sorted((h.score for h in hits), reverse=True)
        found += bool({h.listing_id for h in hits} & set(q.relevant))
    assert found / len(queries) >= 0.8, f"{found} of {len(queries)} queries found a relevant listing"


def test_filters_apply_inside_the_knn_query_and_exact_agrees(indexed: Indexed) -> None:
    by_category: dict[str, list[str]] = {}
    for lid, doc in indexed.docs.items():
        by_category.setdefault(doc["category_id"], []).append(lid)
    category, members = max(by_category.items(), key=lambda kv: len(kv[1]))
    assert len(members) < len(indexed.docs)
    k = min(5, len(members))
    ann = search(indexed.cfg, text="wooden chair", filters=Filters(category_id=category), k=k)
    exact = search(indexed.cfg, text="wooden chair", filters=Filters(category_id=category), k=k, exact=True)
    assert len(ann) == k and {h.listing_id for h in ann} <= set(members)
    assert [h.listing_id for h in exact][:3] == [h.listing_id for h in ann][:3]
    assert [round(h.score, 4) for h in exact][:3] == [round(h.score, 4) for h in ann][:3]
    some = indexed.docs[members[0]]
    attr = next(iter(some["attributes"].items()))
    hits = search(
        indexed.cfg, text="bag", filters=Filters(attributes={attr[0]: attr[1]}, locale=some["locale"]), k=50
    )
    assert hits and all(
        indexed.docs[h.listing_id]["attributes"].get(attr[0]) == attr[1]
        and indexed.docs[h.listing_id]["locale"] == some["locale"]
        for h in hits
    )


def test_image_and_more_like_this_search(indexed: Indexed) -> None:
    lid = next(lid for lid, d in sorted(indexed.docs.items()) if "image_vector" in d)
    image = Path(indexed.expected[lid]["primary_image_url"].removeprefix("file://"))
    hits = search(indexed.cfg, image=image, k=3)
    assert hits[0].score > 0.999 and "image_vector" in indexed.docs[hits[0].listing_id]
    like = search(indexed.cfg, like=lid, k=5)
    assert len(like) == 5 and lid not in {h.listing_id for h in like}


def test_the_search_command(indexed: Indexed) -> None:
    vl = str(PROJECT_ROOT / ".venv/bin/vectorlake")
    q = indexed.catalog.queries[0].query
    cmd = [vl, "search", "--text", q, "--k", "3", "--json"]
    run = subprocess.run(cmd, env=indexed.env, capture_output=True, text=True, check=True)
    hits = json.loads(run.stdout)
    assert len(hits) == 3 and {"listing_id", "score", "title"} <= set(hits[0])
    assert hits[0]["title"] == indexed.docs[hits[0]["listing_id"]]["title"]
    for bad, message in (
        (["--text", q, "--k", "0"], "--k: must be between 1 and"),
        (["--text", q, "--attr", "color"], "--attr: expected KEY=VALUE"),
        (["--like", "no-such-listing"], "listing 'no-such-listing' is not in the index"),
        (["--image", "/no/such.jpg"], "cannot read the image /no/such.jpg"),
    ):
        run = subprocess.run([vl, "search", *bad], env=indexed.env, capture_output=True, text=True)
        assert run.returncode in (1, 2), bad
        assert message in run.stderr and "Traceback" not in run.stderr, run.stderr
        assert len(run.stderr.strip().splitlines()) <= 2, run.stderr


# Commands a user runs to look, not to change anything; each must start light and exit 0 every time.
READ_ONLY_COMMANDS = (
    ("generations",),
    ("status",),
    ("freshness",),
    ("models", "show"),
    ("stack", "status"),
    ("deadletters",),
)
RUNS_EACH = 10  # at the old abort rate (one run in three) ten runs miss it with p = 0.017, per command


def test_read_only_commands_exit_0_every_time(indexed: Indexed) -> None:
    """Each read-only command, as a real process, 10 times on a lake with data: exit 0 every time.

    They used to abort at exit (`terminate called without an active exception`, 134) about one run in
    three: Arrow I/O threads released buffers of delta-rs' Python file system while the interpreter shut
    down. Reads now go through Arrow's native file systems (vectorlake/lake/arrow.py)."""
    from concurrent.futures import ThreadPoolExecutor

    vl = str(PROJECT_ROOT / ".venv/bin/vectorlake")

    def run(args: tuple[str, ...]) -> tuple[tuple[str, ...], int, str, str]:
        done = subprocess.run([vl, *args], env=indexed.env, capture_output=True, text=True, timeout=300)
        return args, done.returncode, done.stdout, done.stderr

    with ThreadPoolExecutor(max_workers=2) as pool:
        results = list(pool.map(run, [c for c in READ_ONLY_COMMANDS for _ in range(RUNS_EACH)]))
    failed = [(" ".join(a), rc, err.strip()[-300:]) for a, rc, _, err in results if rc != 0]
    assert not failed, failed
    assert len(results) == len(READ_ONLY_COMMANDS) * RUNS_EACH
    out = {a: stdout for a, _, stdout, _ in results}  # what each printed (the last run of each)
    alias = indexed.cfg.index.alias
    assert f"{alias}_g1: live" in out[("generations",)]
    # at least one applied write per served listing (`received` counts those whose state version is a
    # listing or media event time, not a seller's policy change)
    for basis, least in (("event", len(indexed.docs)), ("received", 1)):
        line = next(x for x in out[("freshness",)].splitlines() if x.startswith(f"{basis} -> indexed over "))
        assert int(line.split(" over ")[1].split()[0]) >= least, line
    assert f"{alias}_g1" in out[("status",)]
    assert "text: vectorlake-text-encoder@champion -> version" in out[("models", "show")]
    assert "opensearch  healthy" in out[("stack", "status")]
    assert out[("deadletters",)].startswith("dead letters: ")
