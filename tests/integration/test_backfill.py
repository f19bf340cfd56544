"""`vectorlake backfill` on the real stack: replaying bronze into silver is idempotent and repairs lost rows;
re-indexing a time range restores exactly the listings that range touched."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from tests.e2e.test_index_e2e import drop_alias, index_documents
from vectorlake.config import Config, load_config
from vectorlake.embed import registry
from vectorlake.generate import GeneratorSpec, generate, write_landing
from vectorlake.index.client import make_client
from vectorlake.lake.tables import LakeTables
from vectorlake.ops import backfill
from vectorlake.pipeline import stream

SPEC = GeneratorSpec(seed=5, listings=30, sellers=5, events=200, image_rate=0.0, suppression_rate=0.0)


@dataclass(frozen=True)
class Lake:
    cfg: Config
    tables: LakeTables


def _table(path: str, columns: list[str]) -> list[dict[str, Any]]:
    from deltalake import DeltaTable

    rows: list[dict[str, Any]] = DeltaTable(path).to_pyarrow_table(columns=columns).to_pylist()
    return rows


def _silver(lake: Lake) -> dict[str, tuple[Any, ...]]:
    rows = _table(lake.tables.listings, ["listing_id", "version", "state_hash", "served", "title"])
    return {r["listing_id"]: (r["version"], r["state_hash"], r["served"], r["title"]) for r in rows}


@pytest.fixture(scope="module")
def lake(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lake]:
    tmp: Path = tmp_path_factory.mktemp("backfill")
    write_landing(
        generate(SPEC, image_root=str(tmp / "landing" / "images")), tmp / "landing", files_per_kind=1
    )
    env = dict(os.environ) | {
        "VECTORLAKE__LAKE__ROOT": str(tmp / "lake"),
        "VECTORLAKE__INDEX__ALIAS": f"t-backfill-{os.getpid()}",
    }
    cfg = load_config(environ=env)
    registry.register_all(cfg)
    stream.run(spark, cfg, "files", once=True, landing_dir=str(tmp / "landing"))
    yield Lake(cfg, LakeTables(cfg.lake.root))
    drop_alias(cfg)


def _whole_range() -> tuple[datetime, datetime]:
    return SPEC.start - timedelta(days=1), SPEC.start + timedelta(days=2)


def test_replaying_bronze_into_silver_changes_nothing_and_restores_lost_rows(spark: Any, lake: Lake) -> None:
    from delta.tables import DeltaTable

    before = _silver(lake)
    versions_before = len(_table(lake.tables.listing_versions, ["listing_id"]))
    start, end = _whole_range()
    again = backfill.run(spark, lake.cfg, start, end, "silver")
    assert again.silver_changed == 0 and again.events["listing_changes"] > 100
    assert _silver(lake) == before
    assert len(_table(lake.tables.listing_versions, ["listing_id"])) == versions_before

    lost = sorted(before)[:3]
    DeltaTable.forPath(spark, lake.tables.listings).delete(
        f"listing_id IN ({', '.join(repr(x) for x in lost)})"
    )
    assert not set(lost) & set(_silver(lake))
    repaired = backfill.run(spark, lake.cfg, start, end, "silver")
    assert repaired.silver_changed == 3
    assert _silver(lake) == before  # the same state, versions and hashes as the stream computed


def test_reindexing_a_range_restores_only_the_listings_it_touched(spark: Any, lake: Lake) -> None:
    events = _table(lake.tables.bronze("listing_changes"), ["listing_id", "event_ts"])
    silver = _silver(lake)
    served = sorted(lid for lid, row in silver.items() if row[2])
    times = sorted(e["event_ts"] for e in events)
    start, end = times[len(times) // 3], times[2 * len(times) // 3]
    inside = {e["listing_id"] for e in events if start <= e["event_ts"] < end}
    outside = [lid for lid in served if lid not in inside]
    assert inside & set(served) and outside, "the window must split the served listings"
    lost = sorted(inside & set(served))[:3] + outside[:2]

    client = make_client(lake.cfg)
    try:
        for lid in lost:  # a lost document: deleted at its own version (a plain delete would bump it)
            params = {"refresh": "true", "version": str(silver[lid][0]), "version_type": "external_gte"}
            client.delete(index=lake.cfg.index.alias, id=lid, params=params)
    finally:
        client.close()
    result = backfill.run(spark, lake.cfg, start, end, "index")
    assert result.silver_changed is None and result.indexed is not None and result.index_rejected == 0
    assert result.indexed >= len(inside)

    docs, versions = index_documents(lake.cfg)
    for lid in lost[:3]:
        assert lid in docs and versions[lid] == silver[lid][0], lid  # re-indexed at the silver version
    for lid in lost[3:]:
        assert lid not in docs, f"{lid} has no event in the window and must not be re-indexed"
    assert set(docs) == set(served) - set(lost[3:])


def test_retrying_dead_letters_writes_exactly_their_listings_again(spark: Any, lake: Lake) -> None:
    """Two documents OpenSearch "rejected" (gone from the index, with a row in gold/index_dead_letters, as
    the sink records a rejection): the retry brings them back at their silver version; a listing that is
    missing without a dead letter stays missing; dead letters before --since are left alone."""
    import pyarrow as pa
    from deltalake import DeltaTable, write_deltalake

    silver = _silver(lake)
    served = sorted(lid for lid, row in silver.items() if row[2])
    rejected, unrelated = served[-2:], served[-3]
    before = set(index_documents(lake.cfg)[0])
    assert {*rejected, unrelated} <= before
    client = make_client(lake.cfg)
    try:
        for lid in [*rejected, unrelated]:
            params = {"refresh": "true", "version": str(silver[lid][0]), "version_type": "external_gte"}
            client.delete(index=lake.cfg.index.alias, id=lid, params=params)
    finally:
        client.close()
    recorded = datetime.now(UTC)
    schema = DeltaTable(lake.tables.index_dead_letters).schema().to_arrow()
    rows = [
        {
            "listing_id": lid,
            "target": lake.cfg.index.alias,
            "index": f"{lake.cfg.index.alias}_g1",
            "action": "index",
            "version": silver[lid][0],
            "status": 400,
            "reason": "mapper_parsing_exception",
            "batch_id": 0,
            "recorded_at": recorded,
        }
        for lid in rejected
    ]
    write_deltalake(
        lake.tables.index_dead_letters, pa.Table.from_pylist(rows, schema=pa.schema(schema)), mode="append"
    )

    later = backfill.dead_letters(spark, lake.cfg, since=recorded + timedelta(seconds=1))
    assert later.listings == 0 and later.indexed is None
    counted = backfill.dead_letters(spark, lake.cfg)
    assert counted.listings == 2 and counted.reasons["index_dead_letters"] == {"mapper_parsing_exception": 2}
    assert rejected[0] not in index_documents(lake.cfg)[0]  # counting retries nothing

    retried = backfill.dead_letters(spark, lake.cfg, retry=True)
    assert (retried.indexed, retried.rejected) == (2, 0), retried
    docs, versions = index_documents(lake.cfg)
    for lid in rejected:
        assert lid in docs and versions[lid] == silver[lid][0], lid
    assert unrelated not in docs
    assert set(docs) == before - {unrelated}
