"""The canonical listing state as a join-semilattice of last-writer-wins registers (pure Python).

This is the semantics of DESIGN.md ("Semantics") written down once, small enough to read in one go. The
Spark silver merge implements the same rules on DataFrames; tests compare the two, and this module is the
oracle that end-to-end tests check the index against.

Rules:
- Every register is ordered by its key ``(event_ts_ms, event_id)``; merging keeps the larger key. Merging
  is commutative, associative and idempotent, so any order, batching or duplication of the same events
  gives the same state.
- A listing UPSERT writes each field it carries (absent or null = unchanged). ``attributes`` is a map of
  per-key registers, so a partial edit of one attribute keeps the others; an attribute set to null is
  removed.
- A DELETE at key d hides every register written before d; an UPSERT after d revives the listing, with
  only the fields written after d.
- Media: one register per (listing, image); the primary image is the first of ``image_ids`` whose
  latest media record is ADDED. Seller policy: one register per seller; no record means ACTIVE.
- A listing is served when it is live and its seller is not SUPPRESSED.
- ``version`` is the sum of ``event_ts_ms + 1`` over every register of the listing's state: its fields,
  attributes, last upsert and delete, its media and the policy of every seller it has named. Merging only
  raises a register's key or adds one, so every change of the state gives a strictly greater version (a late
  DELETE or SUPPRESSED older than the newest event too), which is what the index's external versioning needs
  to keep every older state out. Not covered: two events for one register in the same millisecond, where the
  event id decides and the sum does not move.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, TypeVar

Key = tuple[int, str]  # (event_ts in epoch milliseconds, event_id)
K = TypeVar("K")

LISTING_FIELDS = ("title", "description", "image_ids", "seller_id", "locale", "category_id")


@dataclass(frozen=True)
class Register:
    key: Key
    value: Any


def _max_key(a: Key | None, b: Key | None) -> Key | None:
    if a is None:
        return b
    if b is None:
        return a
    return max(a, b)


@dataclass(frozen=True)
class ListingRegisters:
    fields: Mapping[str, Register] = field(default_factory=dict)
    attributes: Mapping[str, Register] = field(default_factory=dict)
    last_upsert: Key | None = None
    last_delete: Key | None = None
    # every seller the listing ever named (a grow-only set): their policy changes count towards the
    # version even after the listing moves to another seller, so the version cannot go down
    sellers: frozenset[str] = frozenset()

    def merge(self, other: ListingRegisters) -> ListingRegisters:
        return ListingRegisters(
            fields=_merge_maps(self.fields, other.fields),
            attributes=_merge_maps(self.attributes, other.attributes),
            last_upsert=_max_key(self.last_upsert, other.last_upsert),
            last_delete=_max_key(self.last_delete, other.last_delete),
            sellers=self.sellers | other.sellers,
        )

    @property
    def live(self) -> bool:
        return self.last_upsert is not None and (
            self.last_delete is None or self.last_upsert > self.last_delete
        )

    def visible(self, reg: Register) -> bool:
        return self.last_delete is None or reg.key > self.last_delete


def _merge_maps(a: Mapping[K, Register], b: Mapping[K, Register]) -> dict[K, Register]:
    out = dict(a)
    for name, reg in b.items():
        old = out.get(name)
        out[name] = reg if old is None or reg.key > old.key else old
    return out


@dataclass(frozen=True)
class CatalogState:
    listings: Mapping[str, ListingRegisters] = field(default_factory=dict)
    media: Mapping[tuple[str, str], Register] = field(default_factory=dict)  # value: (op, url)
    policy: Mapping[str, Register] = field(default_factory=dict)  # value: status

    def merge(self, other: CatalogState) -> CatalogState:
        listings = dict(self.listings)
        for lid, regs in other.listings.items():
            listings[lid] = listings[lid].merge(regs) if lid in listings else regs
        return CatalogState(
            listings, _merge_maps(self.media, other.media), _merge_maps(self.policy, other.policy)
        )


def listing_event(e: Mapping[str, Any]) -> CatalogState:
    """The state holding one validated ListingChangeEvent (event_ts already in epoch ms)."""
    key: Key = (int(e["event_ts"]), str(e["event_id"]))
    if e["op"] == "DELETE":
        return CatalogState(listings={e["listing_id"]: ListingRegisters(last_delete=key)})
    fields = {name: Register(key, e[name]) for name in LISTING_FIELDS if e.get(name) is not None}
    attrs = {k: Register(key, v) for k, v in (e.get("attributes") or {}).items()}
    return CatalogState(
        listings={
            e["listing_id"]: ListingRegisters(
                fields=fields,
                attributes=attrs,
                last_upsert=key,
                sellers=frozenset([e["seller_id"]]) if e.get("seller_id") is not None else frozenset(),
            )
        }
    )


def media_event(e: Mapping[str, Any]) -> CatalogState:
    key: Key = (int(e["event_ts"]), str(e["event_id"]))
    return CatalogState(media={(e["listing_id"], e["image_id"]): Register(key, (e["op"], e.get("url")))})


def policy_event(e: Mapping[str, Any]) -> CatalogState:
    key: Key = (int(e["event_ts"]), str(e["event_id"]))
    return CatalogState(policy={e["seller_id"]: Register(key, e["status"])})


def fold(states: Iterable[CatalogState]) -> CatalogState:
    out = CatalogState()
    for s in states:
        out = out.merge(s)
    return out


@dataclass(frozen=True)
class ServedListing:
    """What the index holds for one listing (the filterable metadata; vectors come later)."""

    listing_id: str
    version: int
    title: str | None
    description: str | None
    attributes: Mapping[str, Any]
    image_ids: tuple[str, ...]
    seller_id: str | None
    locale: str | None
    category_id: str | None
    primary_image_id: str | None
    primary_image_url: str | None
    policy_status: str


def state_keys(state: CatalogState, lid: str) -> list[Key]:
    """The key of every register of listing ``lid``'s state (its media and its sellers' policy too)."""
    regs = state.listings[lid]
    keys = [r.key for r in regs.fields.values()] + [r.key for r in regs.attributes.values()]
    keys += [k for k in (regs.last_upsert, regs.last_delete) if k is not None]
    keys += [r.key for (m_lid, _), r in state.media.items() if m_lid == lid]
    keys += [state.policy[s].key for s in regs.sellers if s in state.policy]
    return keys


def version(state: CatalogState, lid: str) -> int:
    """The state version of listing ``lid``: the sum of ``event_ts_ms + 1`` over its registers' keys."""
    return sum(k[0] + 1 for k in state_keys(state, lid))


def served(state: CatalogState) -> dict[str, ServedListing]:
    """listing_id -> served document, for live listings of sellers who are not suppressed."""
    out = {}
    for lid, regs in state.listings.items():
        if not regs.live:
            continue
        f = {name: reg.value for name, reg in regs.fields.items() if regs.visible(reg)}
        seller = f.get("seller_id")
        policy = state.policy.get(seller) if seller is not None else None
        status = policy.value if policy is not None else "ACTIVE"
        if status == "SUPPRESSED":
            continue
        attrs = {k: r.value for k, r in regs.attributes.items() if regs.visible(r) and r.value is not None}
        image_ids = tuple(f.get("image_ids") or ())
        primary = next((i for i in image_ids if _added(state, lid, i)), None)
        media_reg = state.media.get((lid, primary)) if primary is not None else None
        out[lid] = ServedListing(
            listing_id=lid,
            version=version(state, lid),
            title=f.get("title"),
            description=f.get("description"),
            attributes=attrs,
            image_ids=image_ids,
            seller_id=seller,
            locale=f.get("locale"),
            category_id=f.get("category_id"),
            primary_image_id=primary,
            primary_image_url=media_reg.value[1] if media_reg is not None else None,
            policy_status=status,
        )
    return out


def _added(state: CatalogState, listing_id: str, image_id: str) -> bool:
    reg = state.media.get((listing_id, image_id))
    return reg is not None and reg.value[0] == "ADDED"
