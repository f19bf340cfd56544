"""The synthetic catalog generator: determinism, the event contract, and the noise it promises.

The contract checks below are written from DESIGN.md, independently of vectorlake.generate's own code.
"""

from __future__ import annotations

import hashlib
import io
import json
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from PIL import Image

from vectorlake.contracts import CONTRACTS
from vectorlake.errors import VectorlakeError
from vectorlake.generate import POISON_REASONS, Catalog, GeneratorSpec, generate, send_kafka, write_landing

FIELDS = {kind: [f.name for f in fields] for kind, fields in CONTRACTS.items()}
REQUIRED = {kind: [f.name for f in fields if f.required] for kind, fields in CONTRACTS.items()}
OPS = {
    "listing_changes": ("op", {"UPSERT", "DELETE"}),
    "media": ("op", {"ADDED", "REMOVED"}),
    "seller_policy": ("status", {"ACTIVE", "SUPPRESSED"}),
}
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TWO_HOURS = 2 * 3_600_000


def ts_ms(value: Any) -> int | None:
    """Epoch ms of an event_ts per the contract (ISO-8601 with a zone, or epoch ms), else None."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    if not isinstance(value, str):
        return None
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        return None
    return (dt - EPOCH) // timedelta(milliseconds=1) if dt.tzinfo else None


def classify(kind: str, line: bytes) -> str | None:
    """The poison reason of a line, or None for a valid event."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8"
    try:
        obj = json.loads(text)
    except json.JSONDecodeError:
        return "malformed_json"
    if not isinstance(obj, dict):
        return "not_an_object"
    if any(obj.get(f) in (None, "") for f in REQUIRED[kind]):
        return "missing_required_field"
    strings = [f for f in FIELDS[kind] if f not in ("event_ts", "attributes", "image_ids")]
    attrs, images = obj.get("attributes"), obj.get("image_ids")
    if (
        any(obj.get(f) is not None and not isinstance(obj[f], str) for f in strings)
        or (attrs is not None and not isinstance(attrs, dict))
        or (isinstance(attrs, dict) and any(isinstance(v, dict | list) for v in attrs.values()))
        or (images is not None and not (isinstance(images, list) and all(isinstance(i, str) for i in images)))
    ):
        return "wrong_type"
    if ts_ms(obj["event_ts"]) is None:
        return "bad_timestamp"
    op_field, ops = OPS[kind]
    if obj[op_field] not in ops:
        return "unknown_op"
    if len((obj.get("description") or "").encode("utf-8")) > 20 * 1024:
        return "description_too_large"
    return None


def valid_events(catalog: Catalog, kind: str) -> list[dict[str, Any]]:
    lines = catalog.streams()[kind]
    return [json.loads(line) for line in lines if classify(kind, line) is None]


@pytest.fixture(scope="module")
def image_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("landing") / "images"


@pytest.fixture(scope="module")
def catalog(image_root: Path) -> Catalog:
    return generate(GeneratorSpec(), str(image_root))


def test_same_spec_gives_the_same_bytes_and_another_seed_does_not(catalog: Catalog, image_root: Path) -> None:
    again = generate(GeneratorSpec(), str(image_root))
    for kind, lines in catalog.streams().items():
        assert again.streams()[kind] == lines, kind
    assert again.images == catalog.images
    assert again == catalog  # queries, counts and emission order too
    other = generate(GeneratorSpec(seed=43), str(image_root))
    assert other.listing_changes != catalog.listing_changes
    assert other.images != catalog.images


def test_valid_lines_follow_the_event_contract(catalog: Catalog) -> None:
    ts_kinds: Counter[str] = Counter()
    for kind in FIELDS:
        events = valid_events(catalog, kind)
        assert len(events) > 0.9 * len(catalog.streams()[kind])
        for e in events:
            assert set(REQUIRED[kind]) <= set(e) <= set(FIELDS[kind]), e
            ts_kinds[type(e["event_ts"]).__name__] += 1
            if e.get("op") == "DELETE":
                assert list(e) == REQUIRED[kind]
            if kind == "media":
                assert e["url"].startswith("file:///") and e["image_id"] in e["url"]
    assert ts_kinds["int"] > 0.03 * ts_kinds.total() and ts_kinds["str"] > 0.8 * ts_kinds.total()

    listings = valid_events(catalog, "listing_changes")
    first: dict[str, dict[str, Any]] = {}
    for e in sorted(listings, key=lambda e: (ts_ms(e["event_ts"]), e["event_id"])):
        first.setdefault(e["listing_id"], e)
    assert len(first) == catalog.spec.listings
    full = FIELDS["listing_changes"]
    assert all(e["op"] == "UPSERT" and all(e.get(f) is not None for f in full) for e in first.values())
    partial = [e for e in listings if e["op"] == "UPSERT" and any(e.get(f) is None for f in full)]
    price_only = [e for e in partial if set(e) == {*REQUIRED["listing_changes"], "attributes"}]
    assert len(partial) > 0.3 * len(listings) and price_only
    assert any(e["op"] == "DELETE" for e in listings)
    assert {e["op"] for e in valid_events(catalog, "media")} == {"ADDED", "REMOVED"}
    assert {e["status"] for e in valid_events(catalog, "seller_policy")} == {"ACTIVE", "SUPPRESSED"}
    assert {e["locale"] for e in first.values()} >= {"en_US", "en-US"}
    assert any(e["locale"] == e["locale"].lower() for e in first.values())
    assert any(e["category_id"].startswith("cat-unknown-") for e in listings if e.get("category_id"))
    assert all(isinstance(e["attributes"]["price"], float | int) for e in first.values())


def test_poison_counts_match_the_lines_that_are_invalid(catalog: Catalog) -> None:
    found = Counter(
        reason
        for kind, lines in catalog.streams().items()
        for line in lines
        if (reason := classify(kind, line)) is not None
    )
    assert found == Counter(catalog.poison)
    assert set(found) == set(POISON_REASONS)
    media_and_sellers = [
        classify(k, line) for k in ("media", "seller_policy") for line in catalog.streams()[k]
    ]
    assert any(media_and_sellers)  # the other streams carry poison too


def test_duplicates_are_exact_re_emissions_of_valid_lines(catalog: Catalog) -> None:
    counts = Counter((kind, line) for kind, lines in catalog.streams().items() for line in lines)
    repeated = {key: n for key, n in counts.items() if n > 1}
    assert sum(n - 1 for n in repeated.values()) == catalog.duplicates > 0
    assert all(classify(kind, line) is None for kind, line in repeated)
    assert {kind for kind, _ in repeated} == set(FIELDS)
    ids = Counter(json.loads(line)["event_id"] for kind, line in counts if classify(kind, line) is None)
    assert max(ids.values()) == 1  # distinct lines never share an event_id


def _lag_behind_newest(catalog: Catalog) -> list[int]:
    """For each valid listing event in emission order: how far its event_ts is behind the newest seen."""
    newest, lags = 0, []
    for e in valid_events(catalog, "listing_changes"):
        ts = ts_ms(e["event_ts"])
        assert ts is not None
        newest = max(newest, ts)
        lags.append(newest - ts)
    return lags


def test_events_arrive_out_of_order_and_late_beyond_the_watermark(catalog: Catalog) -> None:
    lags = _lag_behind_newest(catalog)
    out_of_order = sum(lag > 0 for lag in lags)
    assert 0.1 * len(lags) < out_of_order < 0.6 * len(lags)
    assert sum(lag > TWO_HOURS for lag in lags) > 5
    assert max(lags) <= 6 * 3_600_000

    in_order = GeneratorSpec(listings=30, events=200, out_of_order_rate=0, late_rate=0, duplicate_rate=0)
    assert max(_lag_behind_newest(generate(in_order, "/tmp/images"))) == 0


def test_some_images_are_emitted_before_their_listing(catalog: Catalog) -> None:
    first_listing: dict[str, int] = {}
    media_at: list[tuple[int, str]] = []
    for pos, (kind, i) in enumerate(catalog.emission_order):
        line = catalog.streams()[kind][i]
        if classify(kind, line) is not None:
            continue
        e = json.loads(line)
        if kind == "listing_changes":
            first_listing.setdefault(e["listing_id"], pos)
        elif kind == "media" and e["op"] == "ADDED":
            media_at.append((pos, e["listing_id"]))
    assert len(catalog.emission_order) == sum(len(v) for v in catalog.streams().values())
    early = sum(pos < first_listing[lid] for pos, lid in media_at)
    assert 0.1 * len(media_at) < early < 0.6 * len(media_at)


def test_images_are_jpegs_of_the_requested_size_with_matching_sha256(
    catalog: Catalog, image_root: Path
) -> None:
    added = [e for e in valid_events(catalog, "media") if e["op"] == "ADDED"]
    assert {e["image_id"] for e in added} == set(catalog.images)
    assert len(catalog.images) > 0.8 * catalog.spec.listings
    for e in added:
        jpeg = catalog.images[e["image_id"]]
        assert e["sha256"] == hashlib.sha256(jpeg).hexdigest()
        assert e["url"] == f"file://{image_root.absolute()}/{e['image_id']}.jpg"
    for jpeg in list(catalog.images.values())[:50]:
        with Image.open(io.BytesIO(jpeg)) as img:
            assert (img.format, img.size, img.mode) == ("JPEG", catalog.spec.image_size, "RGB")
            img.load()
    assert len({hashlib.sha256(j).digest() for j in catalog.images.values()}) == len(catalog.images)


def test_write_landing_lays_out_every_kind_atomically(tmp_path: Path) -> None:
    small = generate(GeneratorSpec(listings=40, events=300, seed=7), str(tmp_path / "images"))
    counts = write_landing(small, tmp_path, files_per_kind=4)

    assert not [p for p in tmp_path.rglob(".*")]  # no temp files left
    for kind, lines in small.streams().items():
        parts = sorted((tmp_path / kind).iterdir())
        assert [p.name for p in parts] == [f"part-{n:05d}.jsonl" for n in range(4)]
        assert b"".join(p.read_bytes() for p in parts) == b"".join(line + b"\n" for line in lines)
        assert counts[kind] == len(lines)
    for e in valid_events(small, "media"):
        if e["op"] == "ADDED":
            path = Path(e["url"].removeprefix("file://"))
            assert path.read_bytes() == small.images[e["image_id"]]
    queries = [json.loads(line) for line in (tmp_path / "queries.jsonl").read_text().splitlines()]
    assert [(q["query"], tuple(q["relevant"])) for q in queries] == [
        (q.query, q.relevant) for q in small.queries
    ]
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["seed"] == 7 and manifest["spec"]["listings"] == 40
    assert (
        manifest["counts"]
        == counts
        == {
            **{k: len(v) for k, v in small.streams().items()},
            "images": len(small.images),
            "queries": len(small.queries),
        }
    )
    assert manifest["poison"] == small.poison and manifest["duplicates"] == small.duplicates

    write_landing(small, tmp_path, files_per_kind=2)  # rewriting replaces, never mixes, the parts
    assert sorted(p.name for p in (tmp_path / "media").iterdir()) == ["part-00000.jsonl", "part-00001.jsonl"]
    assert (tmp_path / "media" / "part-00000.jsonl").read_bytes().count(b"\n") == len(small.media) // 2


def test_queries_match_the_final_catalog_state(catalog: Catalog) -> None:
    """Recompute the final state here: per-field last-writer-wins by (event_ts, event_id), DELETE hides."""
    state: dict[str, dict[str, Any] | None] = {}
    events = valid_events(catalog, "listing_changes")
    for e in sorted(events, key=lambda e: (ts_ms(e["event_ts"]), e["event_id"])):
        if e["op"] == "DELETE":
            state[e["listing_id"]] = None
        else:
            fields = {k: v for k, v in e.items() if v is not None}
            state[e["listing_id"]] = (state.get(e["listing_id"]) or {}) | fields
    policy = sorted(
        valid_events(catalog, "seller_policy"), key=lambda e: (ts_ms(e["event_ts"]), e["event_id"])
    )
    suppressed = {
        s for s, status in {e["seller_id"]: e["status"] for e in policy}.items() if status != "ACTIVE"
    }
    live = {lid: s for lid, s in state.items() if s is not None and s["seller_id"] not in suppressed}
    assert suppressed and len(live) < len(state)  # deletes and suppressions both hide listings

    assert len(catalog.queries) >= 15
    for q in catalog.queries:
        words = set(q.query.split())
        expected = {lid for lid, s in live.items() if words <= set(s["title"].lower().split())}
        assert q.relevant and set(q.relevant) == expected, q
    assert any(len(q.relevant) > 1 for q in catalog.queries)


def test_an_invalid_spec_is_refused_with_the_reason() -> None:
    with pytest.raises(VectorlakeError, match=r"duplicate_rate=1\.5"):
        GeneratorSpec(duplicate_rate=1.5)


class _FakeProducer:
    """Stands in for confluent_kafka.Producer: records messages, reports deliveries on flush."""

    sent: list[tuple[str, bytes, bytes | None]]
    fail: bool = False

    def __init__(self, config: dict[str, Any]) -> None:
        self.pending: list[Any] = []
        _FakeProducer.sent = []

    def produce(self, topic: str, value: bytes, key: bytes | None, on_delivery: Any) -> None:
        _FakeProducer.sent.append((topic, value, key))
        self.pending.append((on_delivery, topic))

    def poll(self, timeout: float) -> int:
        return 0

    def flush(self, timeout: float) -> int:
        for callback, topic in self.pending:
            msg = type("Msg", (), {"topic": lambda self, t=topic: t})()
            callback("broker down" if _FakeProducer.fail else None, msg)
        return 0


def test_send_kafka_produces_in_emission_order_keyed_by_entity(monkeypatch: pytest.MonkeyPatch) -> None:
    import confluent_kafka

    monkeypatch.setattr(confluent_kafka, "Producer", _FakeProducer)
    small = generate(GeneratorSpec(listings=20, events=100, image_rate=0), "/tmp/images")
    topics = {"listing_changes": "t-listings", "media": "t-media", "seller_policy": "t-sellers"}
    counts = send_kafka(small, "127.0.0.1:1", topics)

    assert counts == {k: len(v) for k, v in small.streams().items()}
    expected = [small.streams()[kind][i] for kind, i in small.emission_order]
    assert [value for _, value, _ in _FakeProducer.sent] == expected
    for topic, value, key in _FakeProducer.sent:
        kind = {v: k for k, v in topics.items()}[topic]
        if classify(kind, value) is None:
            entity = "seller_id" if kind == "seller_policy" else "listing_id"
            assert key == json.loads(value)[entity].encode()

    monkeypatch.setattr(_FakeProducer, "fail", True)
    with pytest.raises(VectorlakeError, match="broker down"):
        send_kafka(small, "127.0.0.1:1", topics)
