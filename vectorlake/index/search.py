"""k-NN search over an index alias: filtered approximate (HNSW) and exact (script_score) queries.

Filters go INSIDE the knn clause, so the lucene engine filters while it walks the graph ("efficient
filtering") and still returns k hits of the filtered set; a post_filter would cut the k nearest down to
those that match and could return none.

Scores. With ``space_type: cosinesimil`` OpenSearch 2.19 (lucene engine) scores both the approximate knn
query and the exact ``knn_score`` script as ``(1 + cosine) / 2``, so ``cosine = 2 * score - 1`` in both
modes. This was checked against the server (tests/integration/test_index_sink.py compares with numpy);
note that the k-NN docs give ``1 + cosine`` for the script, which is not what 2.19 returns for a lucene
field. Hits carry the cosine similarity, whichever mode found them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from typing import TYPE_CHECKING, Any

from vectorlake.index.mappings import VECTOR_FIELDS

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

MAX_K = 10_000  # the k-NN plugin's limit on k
_SOURCE = {"excludes": list(VECTOR_FIELDS)}


@dataclass(frozen=True)
class Filters:
    """Exact-match filters on structured fields; None (or no attributes) means no filter on that field."""

    category_id: str | None = None
    locale: str | None = None
    seller_id: str | None = None
    attributes: Mapping[str, str] = dataclass_field(default_factory=dict)


@dataclass(frozen=True)
class Hit:
    listing_id: str
    score: float  # cosine similarity to the query vector, in [-1, 1]
    title: str | None
    category_id: str | None
    locale: str | None
    seller_id: str | None
    image_id: str | None
    attributes: Mapping[str, Any]


def filter_clause(filters: Filters) -> dict[str, Any] | None:
    """A bool filter of term queries (structured values, never a query string), or None if none apply."""
    terms: list[dict[str, Any]] = []
    for name in ("category_id", "locale", "seller_id"):
        value = getattr(filters, name)
        if value is not None:
            terms.append({"term": {name: value}})
    for key, value in sorted(filters.attributes.items()):
        if not key or "*" in key or key.startswith(".") or key.endswith("."):
            raise ValueError(f"not an attribute name: {key!r}")
        terms.append({"term": {f"attributes.{key}": value}})
    return {"bool": {"filter": terms}} if terms else None


def _restriction(filters: Filters, exclude_id: str | None, *extra: dict[str, Any]) -> dict[str, Any] | None:
    clause = filter_clause(filters)
    if exclude_id is None and not extra:
        return clause
    bool_: dict[str, Any] = {"filter": [*extra, *(clause["bool"]["filter"] if clause else [])]}
    if exclude_id is not None:
        bool_["must_not"] = [{"ids": {"values": [exclude_id]}}]
    return {"bool": bool_}


def _check(field: str, vector: Sequence[float], k: int) -> list[float]:
    if field not in VECTOR_FIELDS:
        raise ValueError(f"not a vector field: {field!r} (one of {', '.join(VECTOR_FIELDS)})")
    if not 1 <= k <= MAX_K:
        raise ValueError(f"k must be in [1, {MAX_K}], got {k}")
    if len(vector) == 0:
        raise ValueError("the query vector is empty")
    return [float(x) for x in vector]


def knn_query(
    field: str,
    vector: Sequence[float],
    k: int,
    filters: Filters,
    ef_search: int | None = None,
    exclude_id: str | None = None,
) -> dict[str, Any]:
    """The approximate k-NN search body, with the filter (and the excluded id) inside the knn clause."""
    clause: dict[str, Any] = {"vector": _check(field, vector, k), "k": k}
    restriction = _restriction(filters, exclude_id)
    if restriction is not None:
        clause["filter"] = restriction
    if ef_search is not None:
        clause["method_parameters"] = {"ef_search": max(ef_search, k)}
    return {"size": k, "_source": _SOURCE, "query": {"knn": {field: clause}}}


def exact_query(
    field: str,
    vector: Sequence[float],
    k: int,
    filters: Filters,
    space_type: str,
    exclude_id: str | None = None,
) -> dict[str, Any]:
    """The exact search body: ``knn_score`` over every document that matches the same filter.

    Documents without the field are filtered out (the script would score them 0, which reads as a
    cosine of -1).
    """
    restriction = _restriction(filters, exclude_id, {"exists": {"field": field}})
    script = {
        "source": "knn_score",
        "lang": "knn",
        "params": {
            "field": field,
            "query_value": _check(field, vector, k),
            "space_type": space_type,
        },
    }
    return {
        "size": k,
        "_source": _SOURCE,
        "query": {"script_score": {"query": restriction, "script": script}},
    }


def cosine_from_score(score: float, space_type: str) -> float:
    """The cosine similarity behind an OpenSearch k-NN score (approximate or exact; see the module doc)."""
    if space_type != "cosinesimil":
        raise ValueError(
            f"scores convert to cosine similarity only for space_type cosinesimil, not {space_type}"
        )
    return 2.0 * score - 1.0


def search_vector(
    client: OpenSearch,
    alias: str,
    field: str,
    vector: Sequence[float],
    k: int,
    filters: Filters,
    exact: bool = False,
    exclude_id: str | None = None,
    *,
    space_type: str = "cosinesimil",
    ef_search: int | None = None,
) -> list[Hit]:
    """The k nearest listings to ``vector`` on ``field`` that match ``filters``, best first."""
    if exact:
        body = exact_query(field, vector, k, filters, space_type, exclude_id)
    else:
        body = knn_query(field, vector, k, filters, ef_search, exclude_id)
    response = client.search(index=alias, body=body)
    return [_hit(h, space_type) for h in response["hits"]["hits"]]


def _hit(raw: Mapping[str, Any], space_type: str) -> Hit:
    source: Mapping[str, Any] = raw.get("_source") or {}
    return Hit(
        listing_id=str(source.get("listing_id", raw["_id"])),
        score=cosine_from_score(float(raw["_score"]), space_type),
        title=source.get("title"),
        category_id=source.get("category_id"),
        locale=source.get("locale"),
        seller_id=source.get("seller_id"),
        image_id=source.get("image_id"),
        attributes=dict(source.get("attributes") or {}),
    )


def document_vector(client: OpenSearch, alias: str, listing_id: str, field: str) -> list[float] | None:
    """A listing's stored ``field`` vector (for more-like-this); None if the listing or field is absent."""
    from opensearchpy import NotFoundError

    if field not in VECTOR_FIELDS:
        raise ValueError(f"not a vector field: {field!r} (one of {', '.join(VECTOR_FIELDS)})")
    try:
        found = client.get(index=alias, id=listing_id, params={"_source_includes": field})
    except NotFoundError:
        return None
    value = (found.get("_source") or {}).get(field)
    return [float(x) for x in value] if value is not None else None
