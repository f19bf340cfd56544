"""Erasure without servers: hashing, request ids, the overdue check, payload matching, landing rewrites."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from vectorlake.lake.tombstones import Match, row_condition, subject_hash
from vectorlake.ops import erasure
from vectorlake.ops.erasure_stores import landing_erase, landing_scan, snowflake_statements

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


def _match(sellers: tuple[str, ...] = (), listings: tuple[str, ...] = ()) -> Match:
    return Match(
        frozenset(subject_hash("seller", s) for s in sellers),
        frozenset(subject_hash("listing", x) for x in listings),
    )


def test_subject_hash_is_sha256_of_type_and_id() -> None:
    assert subject_hash("seller", "s-1") == hashlib.sha256(b"seller:s-1").hexdigest()
    assert subject_hash("seller", "s-1") != subject_hash("listing", "s-1")


def test_request_ids_are_deterministic_per_subject_and_hold_no_id() -> None:
    a = erasure.request_id_for("seller", "s-1")
    assert a == erasure.request_id_for("seller", "s-1")
    assert a != erasure.request_id_for("seller", "s-2") != erasure.request_id_for("listing", "s-1")
    assert "s-1" not in a


def test_match_rejects_anything_but_hex_digests() -> None:
    with pytest.raises(ValueError, match="sha256"):
        Match(frozenset({"s-1' OR true --"}), frozenset())


def test_overdue_fires_only_for_old_unfinished_requests() -> None:
    rows = [
        {"request_id": "old-pending", "status": "pending", "requested_at": NOW - timedelta(hours=61)},
        {"request_id": "old-erased", "status": "erased", "requested_at": NOW - timedelta(hours=70)},
        {"request_id": "old-done", "status": "done", "requested_at": NOW - timedelta(hours=100)},
        {"request_id": "young", "status": "pending", "requested_at": NOW - timedelta(hours=59)},
    ]
    assert erasure.overdue(rows, NOW, 60) == ["old-erased", "old-pending"]
    assert erasure.overdue(rows, NOW, 200) == []


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"seller_id": "s-1", "x": 1}', True),
        ('{"listing_id":"L-7","op":"UPSERT"}', True),
        ("garbage s-1 garbage", True),
        ('{"seller_id": "s-10"}', False),  # a longer id is another seller
        ('{"seller_id": "xs-1"}', False),
        ('{"listing_id": "L-70"}', False),
        ('{"note": "seller s-2 listing L-8"}', False),
        ("", False),
    ],
)
def test_payload_mentions_whole_tokens_only(text: str, expected: bool) -> None:
    assert _match(sellers=("s-1",), listings=("L-7",)).mentions(text) is expected


def test_row_condition_covers_the_id_columns_and_holds_only_hashes() -> None:
    match = _match(sellers=("s-1",), listings=("L-7",))
    cond = row_condition({"listing_id": "string", "seller_id": "string", "payload_text": "string"}, match)
    assert cond is not None
    assert "listing_id" in cond and "seller_id" in cond and "payload_text" in cond
    assert "s-1" not in cond and "L-7" not in cond
    assert subject_hash("seller", "s-1") in cond and subject_hash("listing", "L-7") in cond
    assert row_condition({"model": "string"}, match) is None


def test_snowflake_statements_delete_the_snapshot_rows_by_hash() -> None:
    statements = snowflake_statements(_match(sellers=("s-1",), listings=("L-7",)))
    snapshot = [s for s in statements if "snapshots.snp_listing_states" in s]
    assert len(snapshot) == 1 and snapshot[0].startswith("DELETE FROM snapshots.snp_listing_states WHERE")
    assert "SHA2('seller:' || seller_id, 256)" in snapshot[0]
    assert all("s-1" not in s and "L-7" not in s for s in statements)


def test_landing_rewrite_drops_exactly_the_subjects_lines(tmp_path: Path) -> None:
    part = tmp_path / "listing_changes" / "part-00000.jsonl"
    part.parent.mkdir()
    lines = [
        {"listing_id": "L-1", "seller_id": "s-1"},
        {"listing_id": "L-2", "seller_id": "s-2"},
        {"listing_id": "L-7", "seller_id": "s-2"},
        {"listing_id": "L-10", "seller_id": "s-10"},
    ]
    part.write_text("".join(json.dumps(x) + "\n" for x in lines))
    untouched = tmp_path / "media" / "part-00000.jsonl"
    untouched.parent.mkdir()
    untouched.write_text('{"listing_id": "L-2"}\n')
    before = untouched.stat().st_mtime_ns
    match = _match(sellers=("s-1",), listings=("L-1", "L-7"))
    assert landing_scan(str(tmp_path), match) == 2
    assert landing_erase(str(tmp_path), match) == 2
    kept = [json.loads(x) for x in part.read_text().splitlines()]
    assert kept == [lines[1], lines[3]]
    assert untouched.stat().st_mtime_ns == before
    assert landing_scan(str(tmp_path), match) == 0
    assert not list(tmp_path.rglob("*.tmp"))


@pytest.mark.parametrize(
    ("subject", "text", "expected"),
    [
        ("müller-shop", '{"seller_id": "müller-shop", "listing_id": "L-1"}', True),
        ("müller-shop", '{"seller_id": "m\\u00fcller-shop"}', True),  # JSON escapes decoded first
        ("müller-shop", '{"seller_id": "müller-shop-2"}', False),
        ("acme shop", '{"seller_id": "acme shop"}', True),
        ("acme shop", '{"seller_id": "acme"}', False),  # a token of the id is another seller
        ("a/b", '{"seller_id": "a/b", "op": "UPSERT"}', True),
        ("a/b", '{"seller_id": "a"}', False),
        ("a/b", "not json naming a/b", False),  # only JSON fields carry such ids exactly
    ],
)
def test_ids_of_any_characters_are_matched_exactly_in_json_lines(
    subject: str, text: str, expected: bool
) -> None:
    assert _match(sellers=(subject,), listings=()).mentions(text) is expected


def test_the_landing_rewrite_finds_ids_of_any_characters(tmp_path: Path) -> None:
    part = tmp_path / "listing_changes" / "part-00000.jsonl"
    part.parent.mkdir()
    lines = [{"listing_id": "L 1/ü", "seller_id": "acme shop"}, {"listing_id": "L 2", "seller_id": "acme"}]
    part.write_text("".join(json.dumps(x) + "\n" for x in lines))
    match = _match(sellers=("acme shop",), listings=())
    assert landing_scan(str(tmp_path), match) == 1
    assert landing_erase(str(tmp_path), match) == 1
    assert [json.loads(x) for x in part.read_text().splitlines()] == [lines[1]]
    assert landing_erase(str(tmp_path), _match(sellers=(), listings=("L 1/ü", "L 2"))) == 1
    assert part.read_text() == ""
