"""A hypothesis-driven fuzz of hostile events through the real ingest (issue 20).

Each example is one micro-batch of raw records (the bytes a Kafka message or a landing line carries) through
the ingest's own `parse_events` and `BatchWriter` into one real Delta lake: invalid UTF-8, not JSON, not an
object, unknown kinds and ops, ids of any characters and of every length around the byte limit, control
characters, timestamps at and past every bound (before 1970, the future skew, year 9999, over 2**63, garbage),
huge and nested attributes, too many image ids. Whatever comes, the batch is written (the stream never stops),
every record lands in bronze or in quarantine with a reason code, and silver equals the register oracle of
everything bronze accepted. The index side of the same inputs is covered by the bounds the sink checks
(`tests/unit/test_documents.py`) and by the end-to-end suites; it is not fuzzed here.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests import oracle
from vectorlake import contracts
from vectorlake.config import ContractsConfig, load_config
from vectorlake.lake.reference import load_reference
from vectorlake.lake.tables import LakeTables, ensure_tables
from vectorlake.pipeline.ingest_batch import BatchWriter

RECEIVED = datetime(2026, 11, 3, tzinfo=UTC)
RECEIVED_MS = int(RECEIVED.timestamp() * 1000)
LIMITS = ContractsConfig()


HOSTILE_RATE = 0.06  # per field: with about ten fields, half the events stay whole and are accepted


@st.composite
def _mostly(draw: st.DrawFn, sane: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> Any:
    rng = draw(st.randoms(use_true_random=False))  # a uniform choice (hypothesis' own favours the edges)
    return draw(hostile if rng.random() > 1 - HOSTILE_RATE else sane)  # the simplest example: all sane


def mostly(sane: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    """A sane value, now and then a hostile one: enough accepted events to hold silver to the oracle, and
    every batch still carries hostile ones."""
    return _mostly(sane, hostile)


ids = mostly(
    st.sampled_from(["L1", "L2", "L3"]),
    st.one_of(
        st.sampled_from(["müller-shop", "acme shop", "a/b", "", " ", "é" * 129]),
        st.sampled_from(["x" * LIMITS.max_id_bytes, "x" * (LIMITS.max_id_bytes + 1)]),
        st.text(max_size=12),
    ),
)
event_ids = mostly(st.uuids().map(str), ids)
sellers = mostly(st.sampled_from(["s1", "s2"]), ids)
texts = mostly(
    st.sampled_from(["red chair", "blue lamp", "oak table", "Größe M 送料無料"]),
    st.one_of(
        st.text(max_size=40),
        st.sampled_from(["a\x00b", "tab\tok", "bell\x07", "line\nbreak", "\u202eRTL", "😀" * 300]),
        st.sampled_from(["t" * LIMITS.max_title_bytes, "t" * (LIMITS.max_title_bytes + 1)]),
    ),
)
timestamps = mostly(
    st.integers(min_value=RECEIVED_MS - 10**7, max_value=RECEIVED_MS),
    st.one_of(
        st.integers(min_value=-(10**13), max_value=10**14),
        st.sampled_from([0, -1, RECEIVED_MS + LIMITS.max_future_skew_s * 1000,
                         RECEIVED_MS + LIMITS.max_future_skew_s * 1000 + 1, 2**63, 10**20, 1.5, True]),
        st.sampled_from(["1969-12-31T23:59:59Z", "1970-01-01T00:00:00Z", "2026-11-02T10:00:00+00:00",
                         "9999-12-31T23:59:59Z", "not a time", ""]),
    ),
)  # fmt: skip
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), texts)
attribute_keys = mostly(
    st.sampled_from(["color", "brand", "price"]),
    st.one_of(
        st.sampled_from(["a.b", "", " ", "k" * (LIMITS.max_attribute_key_bytes + 1)]), st.text(max_size=8)
    ),
)
attributes = mostly(
    st.dictionaries(attribute_keys, scalars, max_size=3),
    st.one_of(
        st.dictionaries(
            attribute_keys, st.one_of(st.lists(scalars, max_size=3), st.dictionaries(texts, scalars))
        ),
        st.just({f"k{n}": n for n in range(LIMITS.max_attributes + 1)}),
        st.sampled_from(["not a map", 7, None]),
    ),
)
FIELDS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "listing_changes": {
        "listing_id": ids,
        "op": mostly(
            st.sampled_from(["UPSERT", "UPSERT", "DELETE"]), st.sampled_from(["upsert", "MERGE", ""])
        ),
        "title": texts,
        "description": texts,
        "attributes": attributes,
        "image_ids": mostly(
            st.lists(st.sampled_from(["i1", "i2", "i3"]), max_size=3, unique=True),
            st.one_of(st.lists(ids, max_size=3), st.just([f"i{n}" for n in range(LIMITS.max_image_ids + 1)])),
        ),
        "seller_id": sellers,
        "locale": mostly(st.sampled_from(["en-US", "en_us", "de"]), st.sampled_from(["x" * 300, "\x01"])),
        "category_id": st.sampled_from(["cat-furniture-chairs", "c1", ""]),
    },
    "media": {
        "listing_id": ids,
        "image_id": mostly(st.sampled_from(["i1", "i2", "i3"]), ids),
        "op": mostly(st.sampled_from(["ADDED", "REMOVED"]), st.sampled_from(["added", "GONE"])),
        "url": mostly(
            st.sampled_from(["file:///img/1.jpg", "https://example.com/a.jpg"]),
            st.sampled_from(["u" * 3000, "\x00"]),
        ),
    },
    "seller_policy": {
        "seller_id": sellers,
        "status": mostly(st.sampled_from(["ACTIVE", "SUPPRESSED"]), st.just("suspended")),
        "reason": texts,
    },
}


@st.composite
def records(draw: st.DrawFn) -> tuple[str, bytes]:
    """One raw record (kind, bytes): mostly JSON objects with hostile fields, sometimes not even that."""
    rng = draw(st.randoms(use_true_random=False))
    kind = rng.choice(["listing_changes"] * 8 + ["media"] * 2 + ["seller_policy", "bogus_kind"])
    shape = rng.choice(["object"] * 17 + ["bad_utf8", "not_json", "array"])
    if shape == "bad_utf8":
        return kind, b"\xff\xfe{" + draw(st.binary(max_size=8))
    if shape == "not_json":
        return kind, draw(st.text(max_size=10)).encode() + b"{"
    if shape == "array":
        return kind, b'[{"event_id": "e"}]'
    event: dict[str, Any] = {"event_id": draw(event_ids), "event_ts": draw(timestamps)}
    for name, strategy in FIELDS.get(kind, FIELDS["listing_changes"]).items():
        if rng.random() <= 0.98:  # a field now and then missing, the required ones too
            event[name] = draw(strategy)
    return kind, json.dumps(event).encode()


@pytest.fixture(scope="module")
def lake(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> tuple[Any, LakeTables, Any]:
    root = tmp_path_factory.mktemp("hostile") / "lake"
    cfg = load_config(environ=dict(os.environ) | {"VECTORLAKE__LAKE__ROOT": str(root)})
    tables = LakeTables(cfg.lake.root)
    ensure_tables(spark, tables)
    return cfg, tables, load_reference(cfg.reference.categories, cfg.reference.locales)


BATCHES = iter(range(1_000_000))


@settings(
    max_examples=4,
    deadline=None,  # a Spark batch per example
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.large_base_example,
        HealthCheck.too_slow,
    ],
)
@given(batch=st.lists(records(), min_size=20, max_size=60))
def test_hostile_records_are_stored_or_quarantined_with_a_reason_and_silver_equals_the_oracle(
    spark: Any, lake: tuple[Any, LakeTables, Any], batch: list[tuple[str, bytes]]
) -> None:
    cfg, tables, reference = lake
    batch_id = next(BATCHES)
    rows = [
        (kind, bytearray(value), f"fuzz:{batch_id}:{n}", RECEIVED) for n, (kind, value) in enumerate(batch)
    ]
    parsed = contracts.parse_events(spark.createDataFrame(rows, schema=contracts.raw_schema()), cfg.contracts)
    writer = BatchWriter(tables, reference, app_id="fuzz")
    writer(parsed, batch_id)  # never raises, whatever the batch holds

    def this_batch(path: str) -> list[str]:
        frame = spark.read.format("delta").load(path)
        chosen = frame.where(frame.source.startswith(f"fuzz:{batch_id}:")).select("source").collect()
        return [str(r["source"]) for r in chosen]

    quarantined = spark.read.format("delta").load(tables.quarantine)
    reasons = {r["reason"] for r in quarantined.select("reason").collect()}
    assert reasons <= set(contracts.REASONS), reasons - set(contracts.REASONS)
    stored = [source for kind in contracts.KINDS for source in this_batch(tables.bronze(kind))]
    stored += this_batch(tables.quarantine)
    assert sorted(stored) == sorted(r[2] for r in rows)  # each record exactly once, in one place
    counts = writer.counts[batch_id]
    assert counts.accepted + counts.quarantined == len(rows)
    want = oracle.expected_served(oracle.bronze_events(spark, tables), reference)
    assert oracle.silver_served(spark, tables) == want
