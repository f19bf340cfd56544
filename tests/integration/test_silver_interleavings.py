"""Forced interleavings on silver/listings (issue 19): another writer's commit, and a purge, land between an
ingest batch's read of the listings it touches and its MERGE. A seam of `BatchWriter` runs them at exactly
that point (no sleeps); the real Delta tables and the real erasure request table are used.

Without the MERGE conditioned on the state read, the batch would overwrite the other writer's change (a
lost update) and insert the purged listing again.
"""

from __future__ import annotations

import json
import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from tests import oracle
from vectorlake import contracts
from vectorlake.config import load_config
from vectorlake.lake import registers
from vectorlake.lake.reference import load_reference
from vectorlake.lake.tables import LakeTables, ensure_tables
from vectorlake.ops import erasure
from vectorlake.ops.erasure_stores import delta_erase
from vectorlake.pipeline.ingest_batch import BatchWriter

RECEIVED = datetime(2026, 11, 3, tzinfo=UTC)


def _listing(lid: str, ts: int, eid: str, **fields: Any) -> dict[str, Any]:
    return {"event_id": eid, "listing_id": lid, "event_ts": ts, "op": "UPSERT", **fields}


def _full(lid: str, ts: int) -> dict[str, Any]:
    return _listing(
        lid, ts, f"{lid}-{ts}", title=f"Chair {lid}", description="A chair.", attributes={"brand": "Acme"},
        image_ids=[], seller_id="s1", locale="en-US", category_id="cat-furniture-chairs",
    )  # fmt: skip


def _batch(spark: Any, events: list[dict[str, Any]]) -> Any:
    rows = [
        ("listing_changes", bytearray(json.dumps(e).encode()), f"test:{n}", RECEIVED)
        for n, e in enumerate(events)
    ]
    return contracts.parse_events(spark.createDataFrame(rows, schema=contracts.raw_schema()))


def test_a_commit_and_a_purge_between_a_batchs_read_and_its_merge_are_kept(
    spark: Any, tmp_path: Path
) -> None:
    cfg = load_config(environ=dict(os.environ) | {"VECTORLAKE__LAKE__ROOT": str(tmp_path / "lake")})
    tables = LakeTables(cfg.lake.root)
    ensure_tables(spark, tables)
    reference = load_reference(cfg.reference.categories, cfg.reference.locales)
    seed = [_full("L1", 1_000), _full("L2", 1_000)]
    BatchWriter(tables, reference, app_id="seed")(_batch(spark, seed), 0)

    other = [_listing("L1", 2_000, "other-title", title="Chair L1, renamed")]
    mine = [
        _listing("L1", 3_000, "mine-color", attributes={"color": "red"}),
        _listing("L2", 3_000, "mine-l2", title="Chair L2, renamed"),
    ]
    attempts: list[int] = []

    def interleave(attempt: int) -> None:
        attempts.append(attempt)
        if attempt == 0:  # after this batch read L1 and L2, before its MERGE
            BatchWriter(tables, reference, app_id="other")(_batch(spark, other), 0)
            erasure.record_request(cfg, "listing", "L2")  # a purge: the request, then the silver DELETE
            assert delta_erase(spark, tables.listings, "listing_id = 'L2'") == 1

    BatchWriter(tables, reference, app_id="mine", before_listings_merge=interleave)(_batch(spark, mine), 0)

    assert attempts == [0, 1]  # the MERGE left the two rows alone, and the batch merged again
    got = oracle.silver_served(spark, tables)
    assert set(got) == {"L1"}  # the purged listing did not come back
    l1 = got["L1"]
    assert l1["title"] == "Chair L1, renamed" and l1["attributes"] == {"brand": "Acme", "color": "red"}
    states = [registers.listing_event(e | {"event_ts": e["event_ts"]}) for e in [*seed, *other, *mine]]
    want = oracle.expected_served(states, reference)
    assert got["L1"] == want["L1"]  # the state of every event, the other writer's included
