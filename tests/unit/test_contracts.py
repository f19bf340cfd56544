"""Parsing and validation of raw records: every generator poison kind gets its reason, valid events parse."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pytest

from vectorlake import contracts
from vectorlake.config import ContractsConfig
from vectorlake.generate import POISON_REASONS, GeneratorSpec, generate

RECEIVED = datetime(2026, 11, 3, tzinfo=UTC)  # after every event time the generator makes


def _parse(spark: Any, rows: list[tuple[str, bytes]], limits: ContractsConfig | None = None) -> list[Any]:
    raw = spark.createDataFrame(
        [(kind, bytearray(value), f"test:{n}", RECEIVED) for n, (kind, value) in enumerate(rows)],
        schema=contracts.raw_schema(),
    )
    parsed = contracts.parse_events(raw, limits).collect()
    return sorted(parsed, key=lambda r: int(r.source.split(":")[1]))


def test_generator_poison_gets_its_reason_and_valid_lines_parse(spark: Any) -> None:
    catalog = generate(GeneratorSpec(seed=3, listings=60, events=600, poison_rate=0.05), "/tmp/images")
    rows = [(kind, line) for kind, lines in catalog.streams().items() for line in lines]
    parsed = _parse(spark, rows)
    got: dict[str, int] = {}
    for (kind, line), r in zip(rows, parsed, strict=True):
        if r.rejection is not None:
            got[r.rejection] = got.get(r.rejection, 0) + 1
            continue
        body = json.loads(line)
        assert r.kind == kind and r.event_id == body["event_id"]
        ts = body["event_ts"]
        want = ts if isinstance(ts, int) else int(datetime.fromisoformat(ts).timestamp() * 1000)
        assert r.event_ts_ms == want, (line, r.event_ts_ms)
        if kind == "listing_changes" and body.get("attributes"):
            assert set(r.attributes) == set(body["attributes"])
    assert got == catalog.poison
    assert set(POISON_REASONS) <= set(contracts.REASONS)


LISTING = {
    "event_id": "e-1",
    "listing_id": "l-1",
    "event_ts": "2026-11-01T10:00:00.250+05:30",
    "op": "UPSERT",
    "title": "Steel Chair",
    "description": "Größe M",
    "attributes": {"price": 29.90, "used": False, "color": "red", "gone": None},
    "image_ids": ["i-1", "i-2"],
}


@pytest.mark.parametrize(
    ("kind", "change", "reason", "detail"),
    [
        ("listing_changes", {}, None, None),
        ("listing_changes", {"event_ts": 1762000000123}, None, None),
        ("listing_changes", {"op": "DELETE", "title": None}, None, None),
        ("listing_changes", {"listing_id": ""}, "missing_required_field", "listing_id"),
        ("listing_changes", {"op": None}, "missing_required_field", "op"),
        ("listing_changes", {"title": 5}, "wrong_type", "title"),
        ("listing_changes", {"image_ids": [1, 2]}, "wrong_type", "image_ids"),
        ("listing_changes", {"attributes": {"price": {"amount": 1}}}, "wrong_type", "attributes"),
        ("listing_changes", {"attributes": [["price", 1]]}, "wrong_type", "attributes"),
        ("listing_changes", {"event_ts": "2026-11-01T10:00:00"}, "bad_timestamp", "2026-11-01T10:00:00"),
        ("listing_changes", {"event_ts": "2026-02-30T10:00:00Z"}, "bad_timestamp", "2026-02-30T10:00:00Z"),
        ("listing_changes", {"event_ts": 1.5}, "bad_timestamp", "1.5"),
        ("listing_changes", {"event_ts": -5}, "event_time_out_of_range", "-5"),
        (
            "listing_changes",
            {"event_ts": "1969-12-31T23:00:00Z"},
            "event_time_out_of_range",
            "1969-12-31T23:00:00Z",
        ),
        (
            "listing_changes",
            {"event_ts": "9999-12-31T00:00:00Z", "op": "DELETE"},
            "event_time_out_of_range",
            "9999-12-31T00:00:00Z",
        ),
        ("listing_changes", {"event_ts": "2026-11-03T00:14:00Z"}, None, None),  # within the 15 min skew
        (
            "listing_changes",
            {"event_ts": "2026-11-03T00:16:00Z"},
            "event_time_out_of_range",
            "2026-11-03T00:16:00Z",
        ),
        ("listing_changes", {"listing_id": "l" * 700}, "field_too_large", "listing_id: 700 bytes"),
        ("listing_changes", {"title": "t" * 200_000}, "field_too_large", "title: 200000 bytes"),
        ("listing_changes", {"seller_id": "s" * 257}, "field_too_large", "seller_id: 257 bytes"),
        ("listing_changes", {"locale": "x" * 300}, "field_too_large", "locale: 300 bytes"),
        ("listing_changes", {"title": "Steel\u0000Chair"}, "control_character", "title"),
        ("listing_changes", {"listing_id": "l-1\n"}, "control_character", "listing_id"),
        ("listing_changes", {"title": "Steel\tChair", "description": "line 1\r\nline 2"}, None, None),
        ("listing_changes", {"image_ids": [f"i-{n}" for n in range(33)]}, "too_many_values", "image_ids: 33"),
        (
            "listing_changes",
            {"image_ids": ["i" * 300]},
            "field_too_large",
            "image_ids: an id over max_id_bytes",
        ),
        ("listing_changes", {"image_ids": ["i-1\u0007"]}, "control_character", "image_ids"),
        (
            "listing_changes",
            {"attributes": {f"k{n}": n for n in range(65)}},
            "too_many_values",
            "attributes: 65",
        ),
        ("listing_changes", {"attributes": {"a.b": 1}}, "bad_attribute_key", "a.b"),
        ("listing_changes", {"attributes": {"": 1}}, "bad_attribute_key", ""),
        ("listing_changes", {"attributes": {" size": "M"}}, "bad_attribute_key", " size"),
        ("listing_changes", {"attributes": {"k" * 65: 1}}, "bad_attribute_key", "k" * 65),
        (
            "listing_changes",
            {"attributes": {"note": "n" * 1025}},
            "field_too_large",
            "attributes: a value over max_attribute_value_bytes",
        ),
        ("listing_changes", {"attributes": {"note": "a\u0000b"}}, "control_character", "attributes"),
        ("listing_changes", {"attributes": {"Größe": "M", "note": "a\tb"}}, None, None),
        ("listing_changes", {"op": "upsert"}, "unknown_op", "upsert"),
        ("listing_changes", {"description": "é" * 10241}, "description_too_large", "20482"),
        ("listing_changes", {"description": "é" * 10240}, None, None),
        ("media", {"image_id": "i-1", "url": "file:///x.jpg", "op": "ADDED"}, None, None),
        ("media", {"image_id": "i-1", "op": "ADDED"}, "missing_required_field", "url"),
        (
            "media",
            {"image_id": "i-1", "url": "file:///" + "x" * 3000, "op": "ADDED"},
            "field_too_large",
            "url: 3008 bytes",
        ),
        ("media", {"image_id": "i-1", "url": "file:///x.jpg", "op": "UPSERT"}, "unknown_op", "UPSERT"),
        ("seller_policy", {"seller_id": "s-1", "status": "ACTIVE"}, None, None),
        ("seller_policy", {"seller_id": "s-1", "status": "BANNED"}, "unknown_status", "BANNED"),
        ("nonsense", {}, "unknown_kind", "nonsense"),
    ],
)
def test_rules(spark: Any, kind: str, change: dict[str, Any], reason: str | None, detail: str | None) -> None:
    body = {k: v for k, v in (LISTING | change).items()}
    if kind == "seller_policy":
        body = {k: body[k] for k in ("event_id", "event_ts", "seller_id", "status") if k in body}
    (r,) = _parse(spark, [(kind, json.dumps(body, ensure_ascii=False).encode())])
    assert (r.rejection, r.rejection_detail) == (reason, detail)
    if reason is None and kind == "listing_changes" and not change.keys() & {"op", "attributes", "title"}:
        assert r.attributes == {"price": "29.9", "used": "false", "color": "red", "gone": None}
        assert r.image_ids == ["i-1", "i-2"] and r.description.startswith(("Größe", "é"))
        assert r.event_ts_ms in (1793507400250, 1762000000123, 1793664840000)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"event_id": "e-1", "title": "\xff\xfe"}', "invalid_utf8"),
        (b'{"event_id": "e-1",', "malformed_json"),
        (b"", "malformed_json"),
        (b'{"a": 1, "a": 2}', "malformed_json"),
        (b'[{"event_id": "e-1"}]', "not_an_object"),
        (b'"{}"', "not_an_object"),
        (b"42", "not_an_object"),
    ],
)
def test_unparseable(spark: Any, payload: bytes, reason: str) -> None:
    (r,) = _parse(spark, [("listing_changes", payload)])
    assert r.rejection == reason
    assert r.event_id is None and r.listing_id is None


def test_quarantine_keeps_the_raw_bytes(spark: Any) -> None:
    payload = b'{"event_id": "e-1", "title": "\xff"}'
    raw = spark.createDataFrame(
        [("media", bytearray(payload), "test:0", RECEIVED)], schema=contracts.raw_schema()
    )
    (q,) = contracts.quarantine_rows(contracts.parse_events(raw)).collect()
    assert bytes(q.payload) == payload and q.payload_text is None
    assert (q.kind, q.reason, q.source, q.received_at.replace(tzinfo=UTC)) == (
        "media",
        "invalid_utf8",
        "test:0",
        RECEIVED,
    )


def test_the_bounds_come_from_config(spark: Any) -> None:
    """The same event is accepted under the default bounds and quarantined under tighter ones."""
    line = json.dumps(LISTING, ensure_ascii=False).encode()
    (default,) = _parse(spark, [("listing_changes", line)])
    assert default.rejection is None
    tight = ContractsConfig(max_title_bytes=5, max_attributes=3, max_future_skew_s=1)
    (r,) = _parse(spark, [("listing_changes", line)], tight)
    assert (r.rejection, r.rejection_detail) == ("field_too_large", "title: 11 bytes")
    late = json.dumps(LISTING | {"event_ts": "2026-11-03T00:00:02Z"}).encode()
    assert _parse(spark, [("listing_changes", late)])[0].rejection is None
    assert _parse(spark, [("listing_changes", late)], tight)[0].rejection == "event_time_out_of_range"
