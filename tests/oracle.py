"""Compare the lake with the pure-Python register oracle (`vectorlake.lake.registers`)."""

from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from vectorlake.lake import registers
from vectorlake.lake.reference import Reference, normalize_locale
from vectorlake.lake.tables import LakeTables

SERVED_FIELDS = (
    "version",
    "title",
    "description",
    "attributes",
    "image_ids",
    "seller_id",
    "locale",
    "category_id",
    "primary_image_id",
    "primary_image_url",
    "policy_status",
)


def _scalar(value: Any) -> str | None:
    """An attribute value as silver keeps it: its JSON text, numbers without trailing zeros."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bool):
        return "true" if value else "false"
    try:
        d = Decimal(str(value)).normalize()
    except InvalidOperation:
        return str(value)
    return format(d, "f")


def bronze_events(spark: Any, tables: LakeTables) -> list[registers.CatalogState]:
    """Every accepted event in bronze as a one-event oracle state."""
    return events_from_rows(
        *(
            [r.asDict() for r in spark.read.format("delta").load(tables.bronze(kind)).collect()]
            for kind in ("listing_changes", "media", "seller_policy")
        )
    )


def events_from_rows(
    listing_changes: list[dict[str, Any]], media: list[dict[str, Any]], seller_policy: list[dict[str, Any]]
) -> list[registers.CatalogState]:
    """Bronze rows (as dicts, from Spark or delta-rs) as one-event oracle states."""
    states = []
    for rows, event in (
        (listing_changes, registers.listing_event),
        (media, registers.media_event),
        (seller_policy, registers.policy_event),
    ):
        for row in rows:
            e = dict(row)
            e["event_ts"] = e.pop("event_ts_ms")
            if isinstance(e.get("attributes"), list):  # a map read by pyarrow: (key, value) pairs
                e["attributes"] = dict(e["attributes"])
            states.append(event(e))
    return states


def expected_served(states: list[registers.CatalogState], reference: Reference) -> dict[str, dict[str, Any]]:
    """listing_id -> the served fields the oracle computes, normalized like silver."""
    out = {}
    for lid, s in registers.served(registers.fold(states)).items():
        out[lid] = {
            "version": s.version,
            "title": s.title,
            "description": s.description,
            "attributes": {k: _scalar(v) for k, v in s.attributes.items()},
            "image_ids": list(s.image_ids),
            "seller_id": s.seller_id,
            "locale": normalize_locale(s.locale, reference.locales),
            "category_id": s.category_id,
            "primary_image_id": s.primary_image_id,
            "primary_image_url": s.primary_image_url,
            "policy_status": s.policy_status,
        }
    return out


def silver_served(spark: Any, tables: LakeTables) -> dict[str, dict[str, Any]]:
    """listing_id -> the served fields of silver/listings (rows with served = true)."""
    rows = spark.read.format("delta").load(tables.listings).where("served").collect()
    return served_from_rows([r.asDict() for r in rows])


def served_from_rows(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """listing_id -> the served fields of silver/listings rows (from Spark or delta-rs) with served = true."""
    out = {}
    for r in rows:
        if not r["served"]:
            continue
        d = {f: r[f] for f in SERVED_FIELDS}
        d["attributes"] = dict(d["attributes"] or {})
        d["image_ids"] = list(d["image_ids"]) if d["image_ids"] is not None else []
        out[r["listing_id"]] = d
    return out


def silver_rows(spark: Any, tables: LakeTables) -> list[tuple[Any, ...]]:
    """Every silver/listings row (all state columns and the registers), sorted: equal lakes, equal lists."""
    df = spark.read.format("delta").load(tables.listings)
    rows = []
    for r in df.collect():
        d = r.asDict(recursive=True)
        d["attributes"] = sorted((d["attributes"] or {}).items())
        d["registers"]["attributes"] = sorted((d["registers"]["attributes"] or {}).items())
        d.pop("registers")
        rows.append(tuple(sorted((k, repr(v)) for k, v in d.items())))
    return sorted(rows)
