"""Hypothesis strategies for random catalog events (small id spaces, so events collide on purpose)."""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from hypothesis import strategies as st

LISTINGS = ["L1", "L2", "L3"]
SELLERS = ["s1", "s2"]
IMAGES = ["i1", "i2", "i3"]

ts = st.integers(min_value=0, max_value=50)


@st.composite
def listing_events(draw: st.DrawFn) -> dict[str, Any]:
    op = draw(st.sampled_from(["UPSERT", "UPSERT", "DELETE"]))
    e: dict[str, Any] = {"listing_id": draw(st.sampled_from(LISTINGS)), "event_ts": draw(ts), "op": op}
    if op == "UPSERT":
        optional = {
            "title": st.sampled_from(["red chair", "blue lamp", "oak table"]),
            "description": st.text(max_size=5),
            "image_ids": st.lists(st.sampled_from(IMAGES), max_size=3, unique=True),
            "seller_id": st.sampled_from(SELLERS),
            "locale": st.sampled_from(["en-US", "de-DE"]),
            "category_id": st.sampled_from(["c1", "c2"]),
            "attributes": st.dictionaries(
                st.sampled_from(["color", "price"]), st.one_of(st.none(), st.integers(0, 9)), max_size=2
            ),
        }
        for name, strategy in optional.items():
            if draw(st.booleans()):
                e[name] = draw(strategy)
    return e


@st.composite
def media_events(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "listing_id": draw(st.sampled_from(LISTINGS)),
        "image_id": draw(st.sampled_from(IMAGES)),
        "event_ts": draw(ts),
        "op": draw(st.sampled_from(["ADDED", "ADDED", "REMOVED"])),
        "url": f"file:///img/{draw(st.integers(0, 3))}.jpg",
    }


@st.composite
def policy_events(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "seller_id": draw(st.sampled_from(SELLERS)),
        "event_ts": draw(ts),
        "status": draw(st.sampled_from(["ACTIVE", "SUPPRESSED"])),
    }


@st.composite
def raw_events(
    draw: st.DrawFn, prefix: str = "e", min_size: int = 1, max_size: int = 30
) -> list[tuple[str, dict[str, Any]]]:
    """(kind, event) pairs; event ids are unique per event, a duplicate is the same pair again."""
    kinds = st.one_of(
        listing_events().map(lambda e: ("listing_changes", e)),
        media_events().map(lambda e: ("media", e)),
        policy_events().map(lambda e: ("seller_policy", e)),
    )
    raw = draw(st.lists(kinds, min_size=min_size, max_size=max_size))
    return [(k, {**e, "event_id": f"{prefix}{n:03d}"}) for n, (k, e) in enumerate(raw)]


ATTRIBUTE_KEYS = ["color", "price"]


def random_events(seed: int, n: int) -> list[tuple[str, dict[str, Any]]]:
    """`n` seeded random events over the same small domain as the strategies above (no hypothesis)."""
    rng = random.Random(seed)
    listings = [f"L{n}" for n in range(8)]
    sellers = [f"s{n}" for n in range(4)]
    out: list[tuple[str, dict[str, Any]]] = []
    for i in range(n):
        kind = rng.choices(["listing_changes", "media", "seller_policy"], weights=(6, 3, 1))[0]
        e: dict[str, Any] = {"event_id": f"r{seed}-{i:04d}", "event_ts": rng.randint(0, 50)}
        if kind == "listing_changes":
            e |= {"listing_id": rng.choice(listings), "op": rng.choice(["UPSERT"] * 5 + ["DELETE"])}
            if e["op"] == "UPSERT":
                fields: dict[str, Callable[[], Any]] = {
                    "title": lambda: rng.choice(["red chair", "blue lamp", "oak table"]),
                    "description": lambda: rng.choice(["", "nice", "new"]),
                    "image_ids": lambda: rng.sample(IMAGES, rng.randint(0, 3)),
                    "seller_id": lambda: rng.choice(sellers),
                    "locale": lambda: rng.choice(["en-US", "en_us", "de", "xx-YY"]),
                    "category_id": lambda: rng.choice(["c1", "c2"]),
                    "attributes": lambda: {
                        k: rng.choice([None, 1, 2, 3]) for k in rng.sample(ATTRIBUTE_KEYS, rng.randint(0, 2))
                    },
                }
                e |= {name: make() for name, make in fields.items() if rng.random() < 0.5}
        elif kind == "media":
            e |= {
                "listing_id": rng.choice(listings),
                "image_id": rng.choice(IMAGES),
                "op": rng.choice(["ADDED", "ADDED", "REMOVED"]),
                "url": f"file:///img/{rng.randint(0, 3)}.jpg",
            }
        else:
            e |= {"seller_id": rng.choice(sellers), "status": rng.choice(["ACTIVE", "ACTIVE", "SUPPRESSED"])}
        out.append((kind, e))
    return out
