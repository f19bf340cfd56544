"""The silver merge as pure DataFrame transforms: events -> registers -> the canonical listing rows.

The rules are those of `vectorlake.lake.registers` (the pure-Python oracle), written as Spark SQL:

- a register is ``struct<ts: bigint, eid: string, value: T>``; Spark orders structs field by field, so
  ``greatest`` keeps the register with the larger ``(event_ts_ms, event_id)`` key. That is the whole
  merge: commutative, associative and idempotent, so arrival order, duplicates and batch boundaries
  cannot change the result, and an event of any lateness still lands in the right place;
- ``attributes`` is a map of such registers merged key by key (``map_zip_with``), so a partial edit of one
  attribute keeps the others, and a null value removes the attribute;
- ``last_upsert`` / ``last_delete`` are keys; a field is visible when it was written after the last
  DELETE, and the listing is live when its last UPSERT is newer than its last DELETE;
- media and seller policy are registers of their own tables (silver/media, silver/seller_policy); the
  listing row joins them whenever either side changes, so it does not matter which arrives first;
- ``version`` is the sum over every register of the listing's state (its fields, attributes, last upsert and
  delete, its media and the policy of every seller it ever named) of ``event_ts_ms + 1``. A merge only
  ever raises a register's key or adds a register, so every change of the state, a late one included (a
  DELETE or SUPPRESSED older than the newest event, an edit of one field), gives a strictly greater
  version, and the index's external versioning can never let an older state back in. The one exception is
  two events for the same register in the same millisecond (the event id breaks the tie, the sum does not
  move). ``event_ts`` is the newest event time among those registers.

Each function takes and returns DataFrames; reading and writing the Delta tables happens in
`vectorlake.pipeline.ingest_batch`.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from vectorlake.lake.reference import Reference

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame

KEY = "struct<ts: bigint, eid: string>"
SCALAR_FIELDS = ("title", "description", "seller_id", "locale", "category_id")
FIELD_TYPES = {name: "string" for name in SCALAR_FIELDS} | {"image_ids": "array<string>"}


def _reg(value_type: str) -> str:
    return f"struct<ts: bigint, eid: string, value: {value_type}>"


ATTRIBUTES = f"map<string, {_reg('string')}>"
REGISTERS = (
    "struct<"
    + ", ".join(f"{name}: {_reg(t)}" for name, t in FIELD_TYPES.items())
    + f", attributes: {ATTRIBUTES}, last_upsert: {KEY}, last_delete: {KEY}, sellers: array<string>>"
)
_EMPTY_ATTRIBUTES = f"cast(map() AS {ATTRIBUTES})"

# The columns of silver/listings, in order (`registers` and the two hashes are internal state).
LISTING_COLUMNS = {
    "listing_id": "string",
    "live": "boolean",
    "served": "boolean",
    "version": "bigint",
    "event_ts": "timestamp",
    "title": "string",
    "description": "string",
    "attributes": "map<string, string>",
    "image_ids": "array<string>",
    "seller_id": "string",
    "locale": "string",
    "category_id": "string",
    "category_path": "string",
    "primary_image_id": "string",
    "primary_image_url": "string",
    "policy_status": "string",
    "state_hash": "string",
    "reg_hash": "string",
    "registers": REGISTERS,
}
# What a listing looks like from outside: the columns the state hash covers.
STATE_COLUMNS = tuple(c for c in LISTING_COLUMNS if c not in ("state_hash", "reg_hash", "registers"))

MEDIA_COLUMNS = {
    "listing_id": "string",
    "image_id": "string",
    "op": "string",
    "url": "string",
    "sha256": "string",
    "event_ts": "timestamp",
    "event_ts_ms": "bigint",
    "event_id": "string",
}
POLICY_COLUMNS = {
    "seller_id": "string",
    "status": "string",
    "reason": "string",
    "event_ts": "timestamp",
    "event_ts_ms": "bigint",
    "event_id": "string",
}


def listing_deltas(events: DataFrame) -> DataFrame:
    """Listing change events (bronze columns) -> one row per listing: ``listing_id``, ``registers``."""
    from pyspark.sql import functions as F

    up = "op = 'UPSERT'"
    fields = [
        F.expr(
            f"max(CASE WHEN {up} AND {name} IS NOT NULL "
            f"THEN named_struct('ts', event_ts_ms, 'eid', event_id, 'value', {name}) END)"
        ).alias(name)
        for name in FIELD_TYPES
    ]
    attributes = F.expr(
        f"aggregate(collect_list(CASE WHEN {up} AND attributes IS NOT NULL "
        f"THEN named_struct('ts', event_ts_ms, 'eid', event_id, 'attrs', attributes) END), "
        f"{_EMPTY_ATTRIBUTES}, "
        f"(acc, e) -> map_zip_with(acc, transform_values(e.attrs, "
        f"(k, v) -> named_struct('ts', e.ts, 'eid', e.eid, 'value', v)), (k, a, b) -> greatest(a, b)))"
    ).alias("attributes")
    keys = [
        F.expr(f"max(CASE WHEN op = '{op}' THEN named_struct('ts', event_ts_ms, 'eid', event_id) END)").alias(
            name
        )
        for op, name in (("UPSERT", "last_upsert"), ("DELETE", "last_delete"))
    ]
    sellers = F.expr(f"array_sort(collect_set(CASE WHEN {up} THEN seller_id END))").alias("sellers")
    agg = events.groupBy("listing_id").agg(*fields, attributes, *keys, sellers)
    return agg.select(
        "listing_id",
        F.struct(*[F.col(c) for c in (*FIELD_TYPES, "attributes", "last_upsert", "last_delete", "sellers")])
        .cast(REGISTERS)
        .alias("registers"),
    )


def merge_registers(current: DataFrame, deltas: DataFrame) -> DataFrame:
    """Join two sets of (listing_id, registers) into their least upper bound, per listing and register."""
    from pyspark.sql import functions as F

    joined = current.alias("a").join(deltas.alias("b"), "listing_id", "full_outer")
    parts: list[Column] = [
        F.expr(f"greatest(a.registers.{name}, b.registers.{name})").alias(name) for name in FIELD_TYPES
    ]
    parts.append(
        F.expr(
            f"map_zip_with(coalesce(a.registers.attributes, {_EMPTY_ATTRIBUTES}), "
            f"coalesce(b.registers.attributes, {_EMPTY_ATTRIBUTES}), (k, x, y) -> greatest(x, y))"
        ).alias("attributes")
    )
    parts += [
        F.expr(f"greatest(a.registers.{name}, b.registers.{name})").alias(name)
        for name in ("last_upsert", "last_delete")
    ]
    parts.append(
        F.expr(
            "array_sort(array_union(coalesce(a.registers.sellers, array()), "
            "coalesce(b.registers.sellers, array())))"
        ).alias("sellers")
    )
    return joined.select("listing_id", F.struct(*parts).cast(REGISTERS).alias("registers"))


def _sql_map(mapping: Mapping[str, str]) -> str:
    if not mapping:
        return "cast(map() AS map<string, string>)"
    return "map(" + ", ".join(f"{_quote(k)}, {_quote(v)}" for k, v in sorted(mapping.items())) + ")"


def _quote(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _normalized_locale(raw: str, table: Mapping[str, str]) -> str:
    """SQL for `vectorlake.lake.reference.normalize_locale`."""
    t = f"trim({raw})"
    parts = f"split({t}, '[-_]')"
    formatted = (
        f"CASE WHEN {t} RLIKE '^[A-Za-z]{{2,3}}([-_]([A-Za-z]{{2}}|[0-9]{{3}}))?$' "
        f"THEN concat(lower({parts}[0]), coalesce(concat('-', upper(try_element_at({parts}, 2))), '')) "
        f"ELSE {t} END"
    )
    return f"coalesce(try_element_at({_sql_map(table)}, {formatted}), {formatted})"


def media_by_listing(media: DataFrame) -> DataFrame:
    """silver/media rows -> per listing: ``images`` (image_id -> op, url), ``media_ts`` (the newest event
    time) and ``media_sum`` (the registers' share of the version)."""
    from pyspark.sql import functions as F

    return media.groupBy("listing_id").agg(
        F.expr("map_from_entries(collect_list(struct(image_id, named_struct('op', op, 'url', url))))").alias(
            "images"
        ),
        F.max("event_ts_ms").alias("media_ts"),
        F.sum(F.col("event_ts_ms") + 1).alias("media_sum"),
    )


def _own_times(r: str) -> tuple[str, str]:
    """SQL over the registers column ``r``: the newest event time, and the sum of ``event_ts_ms + 1``."""
    own_ts = (
        f"greatest({', '.join(f'{r}.{n}.ts' for n in FIELD_TYPES)}, {r}.last_upsert.ts, {r}.last_delete.ts, "
        f"array_max(transform(map_values({r}.attributes), x -> x.ts)))"
    )
    own_sum = " + ".join(
        [f"coalesce({r}.{n}.ts + 1, 0)" for n in (*FIELD_TYPES, "last_upsert", "last_delete")]
        + [f"aggregate(map_values({r}.attributes), cast(0 AS bigint), (acc, x) -> acc + x.ts + 1)"]
    )
    return own_ts, own_sum


def derive(registers: DataFrame, media: DataFrame, policy: DataFrame, reference: Reference) -> DataFrame:
    """(listing_id, registers) + silver/media + silver/seller_policy -> silver/listings rows.

    `media` and `policy` may hold more than the listings at hand; only the matching rows are used.
    """
    from pyspark.sql import functions as F

    r = "registers"
    live = f"({r}.last_upsert IS NOT NULL AND ({r}.last_delete IS NULL OR {r}.last_upsert > {r}.last_delete))"

    def visible(reg: str) -> str:
        return (
            f"({r}.last_delete IS NULL OR named_struct('ts', {reg}.ts, 'eid', {reg}.eid) > {r}.last_delete)"
        )

    def value(name: str) -> str:
        return f"CASE WHEN {live} AND {visible(f'{r}.{name}')} THEN {r}.{name}.value END"

    policy_ts = (
        registers.select("listing_id", F.explode(f"{r}.sellers").alias("seller_id"))
        .join(policy.select("seller_id", "event_ts_ms"), "seller_id")
        .groupBy("listing_id")
        .agg(F.max("event_ts_ms").alias("policy_ts"), F.sum(F.col("event_ts_ms") + 1).alias("policy_sum"))
    )
    status = policy.select("seller_id", F.col("status").alias("_status"))
    rows = (
        registers.withColumn("_live", F.expr(live))
        .withColumn("_seller", F.expr(value("seller_id")))
        .join(
            media_by_listing(media.join(registers.select("listing_id"), "listing_id", "left_semi")),
            "listing_id",
            "left",
        )
        .join(policy_ts, "listing_id", "left")
        .join(status, F.col("_seller") == status["seller_id"], "left")
        .drop(status["seller_id"])
    )
    own_ts, own_sum = _own_times(r)
    attributes = (
        f"CASE WHEN _live THEN transform_values(map_filter({r}.attributes, (k, x) -> x.value IS NOT NULL "
        f"AND {visible('x')}), (k, x) -> x.value) END"
    )
    image_ids = value("image_ids")
    primary = f"try_element_at(filter({image_ids}, i -> try_element_at(images, i).op = 'ADDED'), 1)"
    policy_status = "coalesce(_status, 'ACTIVE')"
    category = value("category_id")
    out = rows.select(
        "listing_id",
        F.col("_live").alias("live"),
        F.expr(f"_live AND {policy_status} <> 'SUPPRESSED'").alias("served"),
        F.expr(f"{own_sum} + coalesce(media_sum, 0) + coalesce(policy_sum, 0)").alias("version"),
        F.expr(value("title")).alias("title"),
        F.expr(value("description")).alias("description"),
        F.expr(attributes).alias("attributes"),
        F.expr(image_ids).alias("image_ids"),
        F.col("_seller").alias("seller_id"),
        F.expr(_normalized_locale(value("locale"), reference.locales)).alias("locale"),
        F.expr(category).alias("category_id"),
        F.expr(f"try_element_at({_sql_map(reference.category_paths)}, {category})").alias("category_path"),
        F.expr(primary).alias("primary_image_id"),
        F.expr(f"try_element_at(images, {primary}).url").alias("primary_image_url"),
        F.expr(policy_status).alias("policy_status"),
        F.col(r),
        F.expr(f"timestamp_millis(greatest({own_ts}, media_ts, policy_ts))").alias("event_ts"),
    )
    state = F.struct(*[_sortable(c) for c in STATE_COLUMNS])
    regs_sorted = F.expr(
        f"struct({', '.join(f'{r}.{n}' for n in FIELD_TYPES)}, "
        f"array_sort(map_entries({r}.attributes)) AS attributes, "
        f"{r}.last_upsert, {r}.last_delete, {r}.sellers)"
    )
    return out.select(
        *[F.col(c) for c in STATE_COLUMNS],
        F.sha2(F.to_json(state), 256).alias("state_hash"),
        F.sha2(F.to_json(regs_sorted), 256).alias("reg_hash"),
        F.col(r),
    )


def _sortable(column: str) -> Column:
    """A column as hashed: maps become sorted entry arrays, so equal maps hash equally."""
    from pyspark.sql import functions as F

    if LISTING_COLUMNS[column].startswith("map"):
        return F.array_sort(F.map_entries(F.col(column))).alias(column)
    return F.col(column)


def _newest(events: DataFrame, keys: tuple[str, ...], values: tuple[str, ...]) -> DataFrame:
    """The newest event per key by (event_ts_ms, event_id): the keys, the values, then its time and id."""
    from pyspark.sql import functions as F

    record = ", ".join(f"'{v}', {v}" for v in values)
    newest = events.groupBy(*keys).agg(
        F.expr(f"max(named_struct('ts', event_ts_ms, 'eid', event_id, {record}))").alias("r")
    )
    return newest.select(
        *keys,
        *[f"r.{v}" for v in values],
        F.expr("timestamp_millis(r.ts)").alias("event_ts"),
        F.col("r.ts").alias("event_ts_ms"),
        F.col("r.eid").alias("event_id"),
    )


def media_deltas(events: DataFrame) -> DataFrame:
    """Media events -> the newest record per (listing_id, image_id), with the columns of silver/media."""
    return _newest(events, ("listing_id", "image_id"), ("op", "url", "sha256"))


def policy_deltas(events: DataFrame) -> DataFrame:
    """Seller policy events -> the newest record per seller, with the columns of silver/seller_policy."""
    return _newest(events, ("seller_id",), ("status", "reason"))


# MERGE condition: the source record s is newer than the target record t
NEWER = (
    "named_struct('ts', s.event_ts_ms, 'eid', s.event_id) "
    "> named_struct('ts', t.event_ts_ms, 'eid', t.event_id)"
)
