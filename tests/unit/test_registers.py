"""The listing-state semantics: order-independent, idempotent, batch-independent (hypothesis)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.strategies import raw_events
from vectorlake.lake.registers import (
    CatalogState,
    fold,
    listing_event,
    media_event,
    policy_event,
    served,
    state_keys,
    version,
)


@st.composite
def event_multisets(draw: st.DrawFn, prefix: str = "e") -> list[CatalogState]:
    builders = {"listing_changes": listing_event, "media": media_event, "seller_policy": policy_event}
    return [builders[kind](e) for kind, e in draw(raw_events(prefix))]


@settings(max_examples=300, deadline=None)
@given(events=event_multisets(), data=st.data())
def test_any_order_duplicates_and_batching_give_the_same_state(
    events: list[CatalogState], data: st.DataObject
) -> None:
    reference = fold(events)
    shuffled = data.draw(st.permutations(events))
    dupes = data.draw(st.lists(st.sampled_from(events), max_size=10))
    replayed = shuffled + dupes
    cut = data.draw(st.integers(0, len(replayed)))
    batched = fold([fold(replayed[:cut]), fold(replayed[cut:])])  # two micro-batches
    assert batched == reference
    assert fold([reference, reference]) == reference  # idempotent: a replay changes nothing
    assert served(batched) == served(reference)


@settings(max_examples=200, deadline=None)
@given(events=event_multisets(), extra=event_multisets(prefix="x"))
def test_the_version_never_decreases_as_events_arrive(
    events: list[CatalogState], extra: list[CatalogState]
) -> None:
    before = fold(events)
    after = before.merge(fold(extra))
    old = {lid: s.version for lid, s in served(before).items()}
    for lid, s in served(after).items():
        if lid in old:
            assert s.version >= old[lid]


@settings(max_examples=300, deadline=None)
@given(events=event_multisets(), extra=event_multisets(prefix="x"))
def test_every_change_of_what_is_served_gives_a_strictly_greater_version(
    events: list[CatalogState], extra: list[CatalogState]
) -> None:
    """Served or not, and with which fields: any change of it (late deletes, suppressions and edits older
    than the newest event included) moves the version up, so an index write of the older state, at its
    version, can never win. The one case left out is a same-millisecond tie decided by the event id."""
    before = fold(events)
    after = before.merge(fold(extra))
    was, now = served(before), served(after)
    for lid in before.listings:
        if was.get(lid) == now.get(lid):
            assert version(after, lid) >= version(before, lid)
            continue
        tie_only = sorted(k[0] for k in state_keys(after, lid)) == sorted(
            k[0] for k in state_keys(before, lid)
        )
        assert version(after, lid) > version(before, lid) or tie_only, lid


def test_a_late_delete_and_a_late_suppression_raise_the_version() -> None:
    """The two cases that once left the version alone: both older than the listing's newest event."""
    state = fold([_l("a", 10, title="lamp", seller_id="s1"), _l("b", 30, title="lamp v2")])
    v = version(state, "L1")
    suppressed = state.merge(
        policy_event({"event_id": "p", "seller_id": "s1", "event_ts": 20, "status": "SUPPRESSED"})
    )
    assert served(suppressed) == {} and version(suppressed, "L1") == v + 21
    deleted = state.merge(_l("d", 20, op="DELETE"))
    assert served(deleted)["L1"].title == "lamp v2"  # the delete is older than the upsert at 30 ...
    assert version(deleted, "L1") == v + 21  # ... and still a new state: the seller written at 10 is hidden
    assert served(deleted)["L1"].seller_id is None


def _l(eid: str, t: int, op: str = "UPSERT", **fields: Any) -> CatalogState:
    return listing_event({"event_id": eid, "listing_id": "L1", "event_ts": t, "op": op, **fields})


def test_partial_updates_merge_per_field_and_per_attribute() -> None:
    state = fold(
        [
            _l("a", 10, title="red chair", seller_id="s1", attributes={"color": "red", "price": 5}),
            _l("b", 20, attributes={"price": 7}),
            _l("c", 15, title="older title"),  # late, but newer than the first title
        ]
    )
    doc = served(state)["L1"]
    assert doc.title == "older title"
    assert dict(doc.attributes) == {"color": "red", "price": 7}
    # title (15) + seller_id (10) + color (10) + price (20) + last upsert (20), each event_ts_ms + 1
    assert doc.version == 16 + 11 + 11 + 21 + 21
    removed = served(state.merge(_l("d", 30, attributes={"color": None})))["L1"]
    assert dict(removed.attributes) == {"price": 7}


def test_delete_hides_older_writes_and_a_later_upsert_revives() -> None:
    created = _l("a", 10, title="chair", locale="en-US")
    deleted = fold([created, _l("d", 20, op="DELETE")])
    assert served(deleted) == {}
    assert served(fold([deleted, _l("late", 15, title="late edit")])) == {}  # older than the delete
    revived = served(fold([deleted, _l("r", 30, title="chair again")]))["L1"]
    assert revived.title == "chair again"
    assert revived.locale is None  # written before the delete: hidden
    assert revived.version == 31 + 11 + 31 + 21  # title, hidden locale, last upsert, last delete


def test_primary_image_follows_media_whichever_arrives_first() -> None:
    listing = _l("a", 10, title="lamp", image_ids=["i1", "i2"])
    image2 = media_event(
        {"event_id": "m2", "listing_id": "L1", "image_id": "i2", "event_ts": 5, "op": "ADDED", "url": "u2"}
    )
    image1 = media_event(
        {"event_id": "m1", "listing_id": "L1", "image_id": "i1", "event_ts": 40, "op": "ADDED", "url": "u1"}
    )
    gone1 = media_event(
        {"event_id": "m3", "listing_id": "L1", "image_id": "i1", "event_ts": 50, "op": "REMOVED"}
    )
    assert served(fold([listing]))["L1"].primary_image_id is None
    doc = served(fold([image2, listing]))["L1"]  # image before the listing
    assert (doc.primary_image_id, doc.primary_image_url) == ("i2", "u2")
    doc = served(fold([listing, image2, image1]))["L1"]  # the first of image_ids wins once it is added
    # title, image_ids and last upsert (10), then both images (5 and 40)
    assert (doc.primary_image_id, doc.primary_image_url, doc.version) == ("i1", "u1", 3 * 11 + 6 + 41)
    assert served(fold([listing, image2, image1, gone1]))["L1"].primary_image_id == "i2"


def test_suppressed_sellers_are_not_served_and_come_back_when_active() -> None:
    listing = _l("a", 10, title="lamp", seller_id="s1")
    suppress = policy_event({"event_id": "p1", "seller_id": "s1", "event_ts": 20, "status": "SUPPRESSED"})
    restore = policy_event({"event_id": "p2", "seller_id": "s1", "event_ts": 30, "status": "ACTIVE"})
    assert served(fold([listing, suppress])) == {}
    doc = served(fold([restore, listing, suppress]))["L1"]
    assert (doc.policy_status, doc.version, doc.title) == ("ACTIVE", 3 * 11 + 31, "lamp")  # policy at 30


def test_same_timestamp_ties_break_on_event_id() -> None:
    a = _l("e1", 10, title="from e1")
    b = _l("e2", 10, title="from e2")
    assert served(fold([a, b]))["L1"].title == served(fold([b, a]))["L1"].title == "from e2"
