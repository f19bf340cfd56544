"""Erased subjects in the lake: how a row, line or event is matched to a subject by hash, and the tombstones.

A subject is recorded as the sha256 of ``"<type>:<id>"`` (`subject_hash`); a `Match` holds the hashed
sellers, listings and image URLs of one or more subjects, and `row_condition` turns it into Spark SQL over a
table's id columns (only validated hex digests ever reach the SQL). The ingest drops the events of erased
subjects with `tombstone_hashes` and `mark_erased`; the erasure (`vectorlake.ops.erasure`) uses the same
matching to erase and to prove absence.
"""

from __future__ import annotations

import hashlib
import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vectorlake.lake.tables import LakeTables

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

log = logging.getLogger(__name__)

# Tokens of a free-text payload (quarantine, landing lines): ids are made of these characters.
TOKEN_SEPARATOR = r"[^A-Za-z0-9_.:@-]+"  # noqa: S105 (a regex, not a secret)
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


def subject_hash(subject_type: str, subject_id: str) -> str:
    """sha256 of ``"<type>:<id>"``, hex: the only form in which a subject is recorded after its erasure."""
    return hashlib.sha256(f"{subject_type}:{subject_id}".encode()).hexdigest()


@dataclass(frozen=True)
class Match:
    """What belongs to a subject: hashed sellers, listings and image URLs."""

    sellers: frozenset[str]
    listings: frozenset[str]
    images: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        for h in self.sellers | self.listings | self.images:
            if not SHA256_HEX.fullmatch(h):
                raise ValueError(f"not a sha256 hex digest: {h!r}")

    def empty(self) -> bool:
        return not (self.sellers or self.listings)

    def mentions(self, text: str) -> bool:
        """Whether a free-text payload names one of the subject's sellers or listings: exactly in the
        ``seller_id`` / ``listing_id`` field of a JSON object (ids of any characters: spaces, slashes,
        non-ASCII), or as a whole token of the text (ids made of `TOKEN_SEPARATOR`'s complement)."""
        for kind, value in _json_ids(text):
            if subject_hash(kind, value) in (self.sellers if kind == "seller" else self.listings):
                return True
        for token in re.split(TOKEN_SEPARATOR, text):
            if token and (
                subject_hash("seller", token) in self.sellers
                or subject_hash("listing", token) in self.listings
            ):
                return True
        return False


def _json_ids(text: str) -> list[tuple[str, str]]:
    """("seller" | "listing", id) of a JSON object's ``seller_id`` and ``listing_id`` string fields."""
    import json

    stripped = text.strip()
    if not stripped.startswith("{"):
        return []
    try:
        event = json.loads(stripped)
    except ValueError:
        return []
    if not isinstance(event, dict):
        return []
    return [
        (kind, event[field])
        for kind, field in (("seller", "seller_id"), ("listing", "listing_id"))
        if isinstance(event.get(field), str)
    ]


def hash_in(expr: str, hashes: Iterable[str]) -> str:
    values = sorted(hashes)
    if not values:
        return "false"
    return f"{expr} IN ({', '.join(repr(h) for h in values)})"


def row_condition(columns: Mapping[str, str], match: Match) -> str | None:
    """Spark SQL selecting the subject's rows of a table with these columns (None: it has no id columns).

    Only validated hex digests are put into the SQL (`Match` checks them), never an id."""
    parts: list[str] = []
    if "listing_id" in columns:
        parts.append(hash_in("sha2(concat('listing:', listing_id), 256)", match.listings))
    if "seller_id" in columns:
        parts.append(hash_in("sha2(concat('seller:', seller_id), 256)", match.sellers))
    if "registers" in columns and match.sellers:  # every seller a listing ever named
        seller = hash_in("sha2(concat('seller:', s), 256)", match.sellers)
        parts.append(f"exists(registers.sellers, s -> {seller})")
    if "payload_text" in columns:
        token = (
            "("
            + hash_in("sha2(concat('seller:', t), 256)", match.sellers)
            + " OR "
            + hash_in("sha2(concat('listing:', t), 256)", match.listings)
            + ")"
        )
        # payload_text is null when the bytes are not UTF-8: the raw bytes are searched then
        text = (
            "coalesce(payload_text, cast(payload AS string), '')"
            if "payload" in columns
            else ("coalesce(payload_text, '')")
        )
        parts.append(f"exists(split({text}, '{TOKEN_SEPARATOR}'), t -> {token})")
        # exactly, in the id fields of a payload that is JSON: ids of any characters
        for kind, hashes in (("seller", match.sellers), ("listing", match.listings)):
            field = f"get_json_object({text}, '$.{kind}_id')"
            parts.append(hash_in(f"sha2(concat('{kind}:', {field}), 256)", hashes))
    if not parts:
        return None
    return "(" + " OR ".join(f"coalesce({p}, false)" for p in parts) + ")"


def tombstone_hashes(tables: LakeTables, storage_options: Mapping[str, str] | None = None) -> list[str]:
    """Hashes of erased (or to-be-erased) subjects: every request's subject, and the tombstones.

    Read on the driver with delta-rs (two small control tables): no Spark job in front of every ingest
    batch. ``storage_options``: delta-rs options for an ``s3a://`` lake."""
    from deltalake import DeltaTable

    from vectorlake.lake.arrow import dataset, delta_rs_location

    found: set[str] = set()
    for path in (tables.erasure_requests, tables.erasure_tombstones):
        uri, options = delta_rs_location(path, storage_options)
        if not DeltaTable.is_deltatable(uri, storage_options=options):
            continue
        data = dataset(DeltaTable(uri, storage_options=options), options)
        found |= {h for h in data.to_table(columns=["subject_hash"]).column(0).to_pylist() if h is not None}
    invalid = sorted(h for h in found if not SHA256_HEX.fullmatch(h))
    if invalid:  # matches no id (ids hash to hex digests): skipped, so a bad row cannot stop the ingest
        log.warning("%d erasure hash(es) are not sha256 hex digests and are ignored", len(invalid))
    return sorted(found - set(invalid))


def mark_erased(batch: DataFrame, hashes: Sequence[str]) -> DataFrame:
    """``batch`` (parsed events) with a boolean ``_erased``: the event names an erased seller or listing.

    Accepted events are matched by their listing_id and seller_id; rejected ones also by the tokens of
    their raw payload (they would otherwise land in quarantine)."""
    from pyspark.sql import functions as F

    if not hashes:
        return batch.withColumn("_erased", F.lit(False))
    every = frozenset(hashes)
    ids = row_condition({"listing_id": "string", "seller_id": "string"}, Match(every, every))
    text = row_condition({"payload_text": "string"}, Match(every, every))
    assert ids is not None and text is not None
    return (
        batch.withColumn("_payload_text", F.col("value").cast("string"))
        .withColumn(
            "_erased",
            F.expr(f"{ids} OR (rejection IS NOT NULL AND {text.replace('payload_text', '_payload_text')})"),
        )
        .drop("_payload_text")
    )
