"""The executors' index writes: a row OpenSearch would always refuse is a rejected result, not an error."""

from __future__ import annotations

from typing import Any

import pandas as pd

from vectorlake.config import load_config
from vectorlake.embed.registry import ModelRef
from vectorlake.pipeline.documents import WriteSpec, write_partition
from vectorlake.pipeline.targets import Target


def _row(listing_id: str, version: int, served: bool) -> dict[str, Any]:
    return {
        "listing_id": listing_id,
        "served": served,
        "version": version,
        "event_ts": pd.Timestamp("2026-11-01T10:00:00Z"),
        "title": "Chair",
        "attributes": None,
        "seller_id": "s-1",
        "locale": "en-US",
        "category_id": "c1",
        "category_path": "Home",
        "primary_image_id": None,
        "policy_status": "ACTIVE",
        "text_hash": "h",
        "text_vector": [1.0, 0.0] if served else None,
        "image_hash": None,
        "image_vector": None,
    }


def test_rows_that_can_never_be_written_are_rejected_results_and_nothing_is_sent() -> None:
    """A version outside [0, 2**63) and an id over 512 bytes: two rejected results with the reason. The
    spec points at a closed port, so an attempt to send anything would fail the call instead."""
    cfg = load_config(environ={"VECTORLAKE__OPENSEARCH__HOSTS": '["http://127.0.0.1:9"]'})
    ref = ModelRef("text", "m", "1", "/nowhere", "test")
    target = Target("listings", "listings_g1", ref, ModelRef("image", "i", "1", "/nowhere", "test"), 2)
    frame = pd.DataFrame([_row("l-1969", -14182980000, True), _row("x" * 700, 5, False)])
    (out,) = list(write_partition(WriteSpec.for_target(cfg, target))(iter([frame])))
    got = {r.listing_id[:10]: (r.action, r.version, r.outcome, r.status) for r in out.itertuples()}
    assert got == {
        "l-1969": ("index", -14182980000, "rejected", 0),
        "xxxxxxxxxx": ("delete", 5, "rejected", 0),
    }
    errors = sorted(out["error"])
    assert errors[0].startswith("not sent: 'l-1969': an external version is in [0, 2**63)")
    assert errors[1] == "not sent: a listing_id of 700 bytes is over the 512-byte _id limit"


def test_a_state_read_longer_ago_than_half_the_delete_memory_is_not_written() -> None:
    """A delete applied after the state was read is remembered for index.gc_deletes_s; a write later than
    half of that after the read could meet no tombstone and bring the deleted listing back, so the write
    fails (the batch runs again on a fresh read). The closed port: nothing may be sent either way."""
    import time

    import pytest

    from vectorlake.pipeline.documents import StaleState

    cfg = load_config(environ={"VECTORLAKE__OPENSEARCH__HOSTS": '["http://127.0.0.1:9"]'})
    assert cfg.index.max_state_age_s == cfg.index.gc_deletes_s / 2 == 1800
    ref = ModelRef("text", "m", "1", "/nowhere", "test")
    target = Target("listings", "listings_g1", ref, ModelRef("image", "i", "1", "/nowhere", "test"), 2)
    frame = pd.DataFrame([_row("x" * 700, 5, False)])  # refused before sending: the write itself is local
    now = time.time()
    fresh = WriteSpec.for_target(cfg, target, read_at=now - 1700)
    assert len(list(write_partition(fresh)(iter([frame])))) == 1
    stale = WriteSpec.for_target(cfg, target, read_at=now - 1900)
    with pytest.raises(StaleState, match=r"read 19\d\d s ago, over index.gc_deletes_s / 2 \(1800 s\)"):
        list(write_partition(stale)(iter([frame])))
