"""The Spark silver merge equals the register oracle for any order, duplicates and batch split.

Seeded random events (the domain of tests/strategies.py) are shuffled, given duplicates and cut into
micro-batches, and also delivered newest first; the batches go through the same pure transforms the
ingest uses (listing_deltas -> merge_registers -> derive), with no Delta in between, and the served rows
must equal `registers.served` of all events. The oracle's own order-independence is property-tested with
hypothesis in test_registers.py; Spark is too slow per example for hypothesis to search it well.
"""

from __future__ import annotations

import itertools
import random
from typing import Any

import pytest

from tests.oracle import SERVED_FIELDS, expected_served
from tests.strategies import random_events
from vectorlake import contracts
from vectorlake.lake import registers, silver
from vectorlake.lake.reference import Reference
from vectorlake.lake.tables import _EVENT_TYPES

REFERENCE = Reference(category_paths={"c1": "Top > C1"}, locales={"en-US": "en-US", "de": "de-DE"})
BUILDERS = {
    "listing_changes": registers.listing_event,
    "media": registers.media_event,
    "seller_policy": registers.policy_event,
}


def _frame(spark: Any, kind: str, events: list[dict[str, Any]]) -> Any:
    columns = [c for c in contracts.bronze_columns(kind) if c not in ("source", "received_at", "event_ts")]
    schema = ", ".join(f"`{c}` {_EVENT_TYPES[c]}" for c in columns)
    rows = []
    for e in events:
        e = {**e, "event_ts_ms": e["event_ts"]}
        if e.get("attributes") is not None:
            e["attributes"] = {k: None if v is None else str(v) for k, v in e["attributes"].items()}
        rows.append(tuple(e.get(c) for c in columns))
    return spark.createDataFrame(rows, schema)


def _served(spark: Any, batches: list[list[tuple[str, dict[str, Any]]]]) -> dict[str, dict[str, Any]]:
    regs = spark.createDataFrame([], f"listing_id string, registers {silver.REGISTERS}")
    media: list[dict[str, Any]] = []
    policy: list[dict[str, Any]] = []
    rows: list[Any] = []
    for batch in batches:
        by_kind = {k: [e for kind, e in batch if kind == k] for k in contracts.KINDS}
        media += by_kind["media"]
        policy += by_kind["seller_policy"]
        deltas = silver.listing_deltas(_frame(spark, "listing_changes", by_kind["listing_changes"]))
        merged = silver.merge_registers(regs, deltas).localCheckpoint()
        m = silver.media_deltas(_frame(spark, "media", media))
        p = silver.policy_deltas(_frame(spark, "seller_policy", policy))
        rows = silver.derive(merged, m, p, REFERENCE).collect()
        regs = merged
    out = {}
    for r in rows:
        if r["served"]:
            d = {f: r[f] for f in SERVED_FIELDS}
            d["attributes"] = dict(d["attributes"] or {})
            d["image_ids"] = list(d["image_ids"] or [])
            out[r["listing_id"]] = d
    return out


def _check(spark: Any, events: list[tuple[str, dict[str, Any]]], rng: random.Random) -> None:
    want = expected_served([BUILDERS[k](e) for k, e in events], REFERENCE)
    assert want, "the events should leave some listing served"
    delivered = rng.sample(events, len(events)) + rng.choices(events, k=len(events) // 10)
    cuts = sorted(rng.sample(range(len(delivered)), 2))
    bounds = [0, *cuts, len(delivered)]
    assert _served(spark, [delivered[a:b] for a, b in itertools.pairwise(bounds)]) == want
    # the hardest order for last-writer-wins: newest first, in four batches, so that every later batch
    # brings only older writes
    ordered = sorted(events, key=lambda ke: (ke[1]["event_ts"], ke[1]["event_id"]), reverse=True)
    newest_first = [ordered[q * len(ordered) // 4 : (q + 1) * len(ordered) // 4] for q in range(4)]
    assert _served(spark, newest_first) == want


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_spark_merge_equals_the_oracle_for_any_order_duplicates_and_batches(spark: Any, seed: int) -> None:
    _check(spark, random_events(seed, 120), random.Random(seed))
