"""The body of a new index generation (settings + mappings) for the documents of DESIGN.md. Pure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from vectorlake.config import IndexConfig

TEXT_VECTOR = "text_vector"
IMAGE_VECTOR = "image_vector"
FUSED_VECTOR = "fused_vector"
VECTOR_FIELDS = (TEXT_VECTOR, IMAGE_VECTOR, FUSED_VECTOR)

KEYWORD_FIELDS = (
    "listing_id",
    "seller_id",
    "category_id",
    "category_path",
    "locale",
    "image_id",
    "policy_status",
    "text_model",
    "image_model",
)
DATE_FIELDS = ("event_ts", "indexed_at")
DATE_FORMAT = "strict_date_optional_time||epoch_millis"


def vector_field(dimension: int, cfg: IndexConfig) -> dict[str, Any]:
    """A knn_vector field with the HNSW method, engine and space type from config."""
    if dimension < 1:
        raise ValueError(f"a vector dimension must be >= 1, got {dimension}")
    return {
        "type": "knn_vector",
        "dimension": dimension,
        "method": {
            "name": "hnsw",
            "engine": cfg.engine,
            "space_type": cfg.space_type,
            "parameters": {"m": cfg.m, "ef_construction": cfg.ef_construction},
        },
    }


def index_body(cfg: IndexConfig, text_dim: int, image_dim: int, meta: Mapping[str, Any]) -> dict[str, Any]:
    """Settings and mappings of a generation; ``meta`` (model versions, ...) goes to ``_meta``.

    The top level is ``dynamic: strict`` (a misspelt field fails the document instead of growing the
    mapping). ``attributes`` is one ``flat_object`` field: every ``attributes.<key>`` is a keyword for term
    filters, but no key adds a field to the mapping, so sellers' attribute keys, however many distinct ones
    the catalog holds, can never reach ``index.mapping.total_fields.limit`` (1,000) and get documents refused.
    ``fused_vector`` is the concatenation of the two, so its dimension is their sum.
    """
    properties: dict[str, Any] = {name: {"type": "keyword"} for name in KEYWORD_FIELDS}
    properties["title"] = {"type": "text", "fields": {"raw": {"type": "keyword", "ignore_above": 1024}}}
    properties.update({name: {"type": "date", "format": DATE_FORMAT} for name in DATE_FIELDS})
    properties["version"] = {"type": "long"}
    properties["attributes"] = {"type": "flat_object"}
    properties[TEXT_VECTOR] = vector_field(text_dim, cfg)
    properties[IMAGE_VECTOR] = vector_field(image_dim, cfg)
    properties[FUSED_VECTOR] = vector_field(text_dim + image_dim, cfg)
    return {
        "settings": {
            "index": {
                "knn": True,
                "knn.algo_param.ef_search": cfg.ef_search,  # read by the faiss/nmslib engines only
                "number_of_shards": cfg.shards,
                "number_of_replicas": cfg.replicas,
                "search.concurrent_segment_search.mode": cfg.concurrent_segment_search,
                "gc_deletes": f"{cfg.gc_deletes_s}s",
            }
        },
        "mappings": {
            "dynamic": "strict",
            "_meta": dict(meta),
            "properties": properties,
        },
    }
