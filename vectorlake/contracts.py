"""The input contract: the three event kinds of DESIGN.md ("Events"), their parsing and validation.

`parse_events` is a pure ``DataFrame -> DataFrame`` transform over raw records (one JSON text each, from a
Kafka message or a landing-file line). Every record comes out exactly once: either typed and valid
(``rejection`` is null) or rejected with one stable reason code from `REASONS` and, where it helps, the
field at fault in ``rejection_detail``. Nothing is dropped here.

Parsing uses Spark's VARIANT type (``try_parse_json``, ``schema_of_variant``), so the JSON type of every
field is checked exactly (a title of ``5`` is a wrong type, not the string "5") without a Python UDF.

Rules beyond the schema:
- a required field that is absent, null or an empty string is missing; optional fields may be absent or
  null (in an UPSERT: unchanged);
- ``event_ts`` is ISO-8601 with a zone (``Z`` or ``+hh:mm``) or an integer of epoch milliseconds;
- ``attributes`` is an object of scalars (string, number, boolean, or null to remove the attribute);
  values are kept as their JSON text (``29.90`` becomes ``"29.9"``);
- the whole record must be valid UTF-8;
- bounds (`vectorlake.config.ContractsConfig`, the ``contracts:`` section): ``event_ts`` not before 1970
  and at most ``max_future_skew_s`` after ``received_at``; a byte limit on every string field (ids,
  title, description, URL, the short texts) and on each attribute key and value; at most
  ``max_image_ids`` image ids and ``max_attributes`` attribute keys; no control characters (title,
  description and attribute values may hold tab, line feed and carriage return); an attribute key is
  non-empty, has no ``.`` and no leading or trailing space, since the index maps every key to a field.
  One event past a bound is quarantined; it never reaches the index, where it could fail a whole bulk
  request or win forever with a far-future version.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from vectorlake.config import ContractsConfig

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame
    from pyspark.sql.types import StructType

KINDS = ("listing_changes", "media", "seller_policy")
MAX_DESCRIPTION_BYTES = ContractsConfig().max_description_bytes  # the default bound
MAX_EPOCH_MS = 253_402_300_799_999  # 9999-12-31T23:59:59.999Z: the largest time that parses

# Stable reason codes, in the order they are checked: a record gets the first that applies (the size,
# control-character and count bounds go field by field).
REASONS = (
    "invalid_utf8",
    "malformed_json",
    "not_an_object",
    "missing_required_field",
    "wrong_type",
    "bad_timestamp",
    "unknown_op",
    "unknown_status",
    "event_time_out_of_range",
    "description_too_large",
    "field_too_large",
    "too_many_values",
    "control_character",
    "bad_attribute_key",
    "unknown_kind",
)

FieldType = Literal["string", "timestamp", "attributes", "string_array"]


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType
    required: bool = False


CONTRACTS: dict[str, tuple[Field, ...]] = {
    "listing_changes": (
        Field("event_id", "string", True),
        Field("listing_id", "string", True),
        Field("event_ts", "timestamp", True),
        Field("op", "string", True),
        Field("title", "string"),
        Field("description", "string"),
        Field("attributes", "attributes"),
        Field("image_ids", "string_array"),
        Field("seller_id", "string"),
        Field("locale", "string"),
        Field("category_id", "string"),
    ),
    "media": (
        Field("event_id", "string", True),
        Field("listing_id", "string", True),
        Field("image_id", "string", True),
        Field("event_ts", "timestamp", True),
        Field("op", "string", True),
        Field("url", "string", True),
        Field("sha256", "string"),
    ),
    "seller_policy": (
        Field("event_id", "string", True),
        Field("seller_id", "string", True),
        Field("event_ts", "timestamp", True),
        Field("status", "string", True),
        Field("reason", "string"),
    ),
}
OPS = {"listing_changes": ("UPSERT", "DELETE"), "media": ("ADDED", "REMOVED")}
STATUSES = ("ACTIVE", "SUPPRESSED")

_ISO_TS = (
    r"^[0-9]{4}-[0-9]{2}-[0-9]{2}[T ][0-9]{2}:[0-9]{2}(:[0-9]{2}([.][0-9]{1,9})?)?(Z|[+-][0-9]{2}:[0-9]{2})$"
)
_SQL_TYPES = {"string": "string", "attributes": "map<string,string>", "string_array": "array<string>"}

# Columns of the raw records `parse_events` takes (what every source produces).
RAW_COLUMNS = ("kind", "value", "source", "received_at")


def raw_schema() -> StructType:
    """kind, value (the record's bytes), source (where it came from), received_at (batch time)."""
    from pyspark.sql.types import BinaryType, StringType, StructField, StructType, TimestampType

    return StructType(
        [
            StructField("kind", StringType(), False),
            StructField("value", BinaryType(), True),
            StructField("source", StringType(), False),
            StructField("received_at", TimestampType(), False),
        ]
    )


def _lit(s: str) -> str:
    return "'" + s.replace("\\", "\\\\").replace("'", "\\'") + "'"


def _get(name: str) -> str:
    return f"variant_get(_v, '$.{name}')"


def _present(name: str) -> str:
    g = _get(name)
    return (
        f"({g} IS NOT NULL AND NOT is_variant_null({g}) AND "
        f"NOT (schema_of_variant({g}) = 'STRING' AND trim(cast({g} AS string)) = ''))"
    )


def _integral(schema: str) -> str:
    decimal = "'^DECIMAL\\\\([0-9]+,0\\\\)$'"
    return f"({schema} IN ('TINYINT', 'SMALLINT', 'INT', 'BIGINT') OR {schema} RLIKE {decimal})"


def _well_typed(f: Field) -> str:
    """SQL that is true when a present field has the JSON type the contract says."""
    s = f"schema_of_variant({_get(f.name)})"
    if f.type == "string":
        return f"{s} = 'STRING'"
    if f.type == "string_array":
        return f"{s} IN ('ARRAY<STRING>', 'ARRAY<VOID>')"
    if f.type == "attributes":
        values = f"map_values(try_variant_get(_v, '$.{f.name}', 'map<string,variant>'))"
        nested = f"exists({values}, x -> schema_of_variant(x) RLIKE '^(OBJECT|ARRAY)<')"
        return f"({s} RLIKE '^OBJECT<' AND NOT {nested})"
    # timestamps: a string or an integer; the value itself is checked as bad_timestamp
    return f"({s} = 'STRING' OR {_integral(s)})"


def _ts_ms() -> str:
    """Epoch milliseconds of event_ts, or null when it is not a valid timestamp."""
    g = _get("event_ts")
    s = f"schema_of_variant({g})"
    text = "try_variant_get(_v, '$.event_ts', 'string')"
    as_int = "try_variant_get(_v, '$.event_ts', 'bigint')"
    return (
        f"CASE WHEN {s} = 'STRING' AND {text} RLIKE {_lit(_ISO_TS)} "
        f"THEN unix_millis(try_cast({text} AS timestamp)) "
        f"WHEN {_integral(s)} AND {as_int} BETWEEN -{MAX_EPOCH_MS} AND {MAX_EPOCH_MS} THEN {as_int} END"
    )


# control characters: none in ids and short texts; free text may hold tab, line feed and carriage return
_CONTROL = _lit("[\\x00-\\x1f\\x7f]")
_CONTROL_IN_TEXT = _lit("[\\x00-\\x08\\x0b\\x0c\\x0e-\\x1f\\x7f]")
_FREE_TEXT = ("title", "description")


def _byte_limit(name: str, limits: ContractsConfig) -> int:
    if name in ("event_id", "listing_id", "seller_id", "image_id"):
        return limits.max_id_bytes
    if name in ("title", "description", "url"):
        return int(getattr(limits, f"max_{name}_bytes"))
    return limits.max_text_bytes


def _bounds(kind: str, limits: ContractsConfig) -> list[tuple[str, str, str]]:
    """The bound rules of one kind (after the schema rules): (condition, reason, detail)."""
    latest = f"unix_millis(received_at) + {limits.max_future_skew_s * 1000}"
    rules: list[tuple[str, str, str]] = [
        (
            f"_event_ts_ms < 0 OR _event_ts_ms > {latest}",
            "event_time_out_of_range",
            "try_variant_get(_v, '$.event_ts', 'string')",
        )
    ]
    strings = [f.name for f in CONTRACTS[kind] if f.type == "string"]
    for name in strings:
        text = f"try_variant_get(_v, '$.{name}', 'string')"
        reason = "description_too_large" if name == "description" else "field_too_large"
        size = f"octet_length({text})"
        detail = (
            f"cast({size} AS string)"
            if name == "description"
            else f"concat({_lit(name + ': ')}, {size}, ' bytes')"
        )
        rules.append((f"{size} > {_byte_limit(name, limits)}", reason, detail))
    for name in strings:
        text = f"try_variant_get(_v, '$.{name}', 'string')"
        pattern = _CONTROL_IN_TEXT if name in _FREE_TEXT else _CONTROL
        rules.append((f"coalesce({text} RLIKE {pattern}, false)", "control_character", _lit(name)))
    if any(f.name == "image_ids" for f in CONTRACTS[kind]):
        ids = "try_variant_get(_v, '$.image_ids', 'array<string>')"
        rules += [
            (
                f"size({ids}) > {limits.max_image_ids}",
                "too_many_values",
                f"concat('image_ids: ', size({ids}))",
            ),
            (
                f"exists({ids}, x -> octet_length(x) > {limits.max_id_bytes})",
                "field_too_large",
                _lit("image_ids: an id over max_id_bytes"),
            ),
            (f"exists({ids}, x -> x RLIKE {_CONTROL})", "control_character", _lit("image_ids")),
        ]
    if any(f.name == "attributes" for f in CONTRACTS[kind]):
        attrs = "try_variant_get(_v, '$.attributes', 'map<string,variant>')"
        keys, values = f"map_keys({attrs})", f"map_values({attrs})"
        bad_key = (
            f"k = '' OR k <> trim(k) OR k LIKE '%.%' OR k RLIKE {_CONTROL} "
            f"OR octet_length(k) > {limits.max_attribute_key_bytes}"
        )
        value = "cast(x AS string)"
        rules += [
            (
                f"size({keys}) > {limits.max_attributes}",
                "too_many_values",
                f"concat('attributes: ', size({keys}))",
            ),
            (
                f"exists({keys}, k -> {bad_key})",
                "bad_attribute_key",
                f"left(filter({keys}, k -> {bad_key})[0], 80)",
            ),
            (
                f"exists({values}, x -> octet_length({value}) > {limits.max_attribute_value_bytes})",
                "field_too_large",
                _lit("attributes: a value over max_attribute_value_bytes"),
            ),
            (
                f"exists({values}, x -> {value} RLIKE {_CONTROL_IN_TEXT})",
                "control_character",
                _lit("attributes"),
            ),
        ]
    return rules


def _reason(kind: str, limits: ContractsConfig) -> tuple[str, str]:
    """(reason SQL, detail SQL) for one kind: the first rule a record breaks, null when it is valid."""
    fields = CONTRACTS[kind]
    rules: list[tuple[str, str, str]] = [  # (condition, reason, detail)
        ("NOT is_valid_utf8(_text)", "invalid_utf8", "NULL"),
        ("_v IS NULL", "malformed_json", "NULL"),
        ("schema_of_variant(_v) NOT RLIKE '^OBJECT<'", "not_an_object", "schema_of_variant(_v)"),
    ]
    rules += [
        (f"NOT {_present(f.name)}", "missing_required_field", _lit(f.name)) for f in fields if f.required
    ]
    rules += [
        (f"{_present(f.name)} AND NOT {_well_typed(f)}", "wrong_type", _lit(f.name))
        for f in fields
        if f.type != "timestamp"
    ]
    rules.append(("_event_ts_ms IS NULL", "bad_timestamp", "try_variant_get(_v, '$.event_ts', 'string')"))
    if kind in OPS:
        allowed = ", ".join(_lit(o) for o in OPS[kind])
        rules.append((f"_op NOT IN ({allowed})", "unknown_op", "_op"))
    if kind == "seller_policy":
        allowed = ", ".join(_lit(s) for s in STATUSES)
        rules.append((f"_status NOT IN ({allowed})", "unknown_status", "_status"))
    rules += _bounds(kind, limits)
    reason = "CASE " + " ".join(f"WHEN {c} THEN {_lit(r)}" for c, r, _ in rules) + " END"
    detail = "CASE " + " ".join(f"WHEN {c} THEN {d}" for c, _, d in rules) + " END"
    return reason, detail


def _by_kind(per_kind: dict[str, str], otherwise: str) -> str:
    return (
        "CASE kind "
        + " ".join(f"WHEN {_lit(k)} THEN {e}" for k, e in per_kind.items())
        + f" ELSE {otherwise} END"
    )


def event_columns() -> dict[str, str]:
    """Every typed event column over all kinds, name -> Spark SQL type (null where a kind lacks it)."""
    out: dict[str, str] = {}
    for fields in CONTRACTS.values():
        for f in fields:
            if f.type == "timestamp":
                out[f.name] = "timestamp"
                out[f"{f.name}_ms"] = "bigint"
            else:
                out[f.name] = _SQL_TYPES[f.type]
    return out


def parse_events(raw: DataFrame, limits: ContractsConfig | None = None) -> DataFrame:
    """Raw records -> one row each: the typed event fields, ``rejection`` and ``rejection_detail``.

    Input columns: `RAW_COLUMNS`. Output: those, then every column of `event_columns()` (typed values,
    null for a rejected record), ``rejection`` (a code from `REASONS` or null) and ``rejection_detail``.
    ``limits``: the bounds (config's ``contracts:``; default: `ContractsConfig`'s defaults).
    """
    limits = limits or ContractsConfig()
    from pyspark.sql import functions as F

    staged = raw.withColumn("_text", F.col("value").cast("string")).withColumn(
        "_v", F.expr("CASE WHEN is_valid_utf8(_text) THEN try_parse_json(_text) END")
    )
    staged = staged.withColumn("_event_ts_ms", F.expr(_ts_ms()))
    for name in ("op", "status"):
        staged = staged.withColumn(f"_{name}", F.expr(f"try_variant_get(_v, '$.{name}', 'string')"))
    reasons = {k: _reason(k, limits) for k in KINDS}
    staged = staged.withColumn(
        "rejection", F.expr(_by_kind({k: r for k, (r, _) in reasons.items()}, "'unknown_kind'"))
    ).withColumn("rejection_detail", F.expr(_by_kind({k: d for k, (_, d) in reasons.items()}, "kind")))
    columns: list[Column] = [F.col(c) for c in RAW_COLUMNS]
    for name, sql_type in event_columns().items():
        if name == "event_ts_ms":
            value = "_event_ts_ms"
        elif name == "event_ts":
            value = "timestamp_millis(_event_ts_ms)"
        elif sql_type == "map<string,string>":
            as_map = f"try_variant_get(_v, '$.{name}', 'map<string,variant>')"
            value = f"transform_values({as_map}, (k, x) -> cast(x AS string))"
        else:
            value = f"try_variant_get(_v, '$.{name}', {_lit(sql_type)})"
        has = [
            k for k, fields in CONTRACTS.items() if any(f.name == name.removesuffix("_ms") for f in fields)
        ]
        kinds = ", ".join(_lit(k) for k in has)
        columns.append(
            F.expr(f"CASE WHEN rejection IS NULL AND kind IN ({kinds}) THEN {value} END")
            .cast(sql_type)
            .alias(name)
        )
    return staged.select(*columns, "rejection", "rejection_detail")


def bronze_columns(kind: str) -> tuple[str, ...]:
    """The columns of ``bronze/<kind>``: the kind's event fields, then where and when it was received."""
    names: list[str] = []
    for f in CONTRACTS[kind]:
        names.append(f.name)
        if f.type == "timestamp":
            names.append(f"{f.name}_ms")
    return (*names, "source", "received_at")


QUARANTINE_COLUMNS = ("kind", "source", "received_at", "reason", "detail", "payload", "payload_text")


def quarantine_rows(parsed: DataFrame) -> DataFrame:
    """Rejected records as quarantine rows: raw bytes, their text when it is valid UTF-8, and the reason."""
    from pyspark.sql import functions as F

    return parsed.where(F.col("rejection").isNotNull()).select(
        "kind",
        "source",
        "received_at",
        F.col("rejection").alias("reason"),
        F.col("rejection_detail").alias("detail"),
        F.col("value").alias("payload"),
        F.expr("CASE WHEN is_valid_utf8(cast(value AS string)) THEN cast(value AS string) END").alias(
            "payload_text"
        ),
    )


def valid_rows(parsed: DataFrame, kind: str) -> DataFrame:
    """The accepted events of one kind, with the columns of ``bronze/<kind>``."""
    from pyspark.sql import functions as F

    return parsed.where(F.col("rejection").isNull() & (F.col("kind") == kind)).select(*bronze_columns(kind))
