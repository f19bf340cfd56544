"""Pure builders of the index: the generation body (settings, mappings, _meta) and the k-NN query bodies."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import pytest

from vectorlake.config import Config
from vectorlake.index.mappings import VECTOR_FIELDS, index_body
from vectorlake.index.search import Filters, cosine_from_score, exact_query, filter_clause, knn_query

VEC = [0.1, -0.2, 0.3]


def _walk(node: Any) -> list[str]:
    """Every key anywhere in a JSON-like structure."""
    if isinstance(node, dict):
        return [k for k, v in node.items() for k in (k, *_walk(v))]
    if isinstance(node, list):
        return [k for v in node for k in _walk(v)]
    return []


# --- filters -----------------------------------------------------------------------------------------


def test_no_filter_is_none() -> None:
    assert filter_clause(Filters()) is None
    assert filter_clause(Filters(attributes={})) is None


def test_filters_are_term_queries_on_structured_fields_and_attributes() -> None:
    clause = filter_clause(
        Filters(category_id="c-12", locale="en-US", attributes={"color": "red", "brand": "Acme"})
    )
    assert clause == {
        "bool": {
            "filter": [
                {"term": {"category_id": "c-12"}},
                {"term": {"locale": "en-US"}},
                {"term": {"attributes.brand": "Acme"}},
                {"term": {"attributes.color": "red"}},
            ]
        }
    }


def test_a_value_that_looks_like_a_query_string_stays_a_term_value() -> None:
    tricky = 'shoes OR category_id:* AND "x"'
    clause = filter_clause(Filters(seller_id=tricky))
    assert clause == {"bool": {"filter": [{"term": {"seller_id": tricky}}]}}
    assert "query_string" not in _walk(clause) and "simple_query_string" not in _walk(clause)


@pytest.mark.parametrize("key", ["", "col*", ".x", "x."])
def test_a_bad_attribute_name_is_refused(key: str) -> None:
    with pytest.raises(ValueError, match="attribute"):
        filter_clause(Filters(attributes={key: "v"}))


# --- the approximate query ---------------------------------------------------------------------------


def test_the_filter_is_inside_the_knn_clause_not_a_post_filter() -> None:
    body = knn_query("text_vector", VEC, 5, Filters(category_id="bags"))
    assert "post_filter" not in body
    clause = body["query"]["knn"]["text_vector"]
    assert clause["filter"] == {"bool": {"filter": [{"term": {"category_id": "bags"}}]}}
    assert clause["vector"] == VEC and clause["k"] == 5
    assert body["size"] == 5
    assert set(body["query"]) == {"knn"}  # the knn clause is the whole query, nothing wraps it


def test_no_filter_means_no_filter_key() -> None:
    clause = knn_query("fused_vector", VEC, 3, Filters())["query"]["knn"]["fused_vector"]
    assert "filter" not in clause and "method_parameters" not in clause


def test_the_vector_fields_are_left_out_of_the_returned_source() -> None:
    body = knn_query("image_vector", VEC, 3, Filters())
    assert sorted(body["_source"]["excludes"]) == sorted(VECTOR_FIELDS)


def test_excluding_a_listing_happens_inside_the_knn_clause_too() -> None:
    clause = knn_query("text_vector", VEC, 4, Filters(locale="de-DE"), exclude_id="L1")["query"]["knn"]
    inner = clause["text_vector"]["filter"]["bool"]
    assert inner["must_not"] == [{"ids": {"values": ["L1"]}}]
    assert inner["filter"] == [{"term": {"locale": "de-DE"}}]


def test_ef_search_goes_to_method_parameters_and_is_at_least_k() -> None:
    assert knn_query("text_vector", VEC, 5, Filters(), ef_search=100)["query"]["knn"]["text_vector"][
        "method_parameters"
    ] == {"ef_search": 100}
    assert knn_query("text_vector", VEC, 50, Filters(), ef_search=10)["query"]["knn"]["text_vector"][
        "method_parameters"
    ] == {"ef_search": 50}


def test_vectors_become_plain_floats_and_bad_arguments_are_refused() -> None:
    body = knn_query("text_vector", (1, 2, 3), 1, Filters())
    assert body["query"]["knn"]["text_vector"]["vector"] == [1.0, 2.0, 3.0]
    json.dumps(body)  # it serializes as is
    with pytest.raises(ValueError, match="vector field"):
        knn_query("title", VEC, 1, Filters())
    with pytest.raises(ValueError, match="k must be"):
        knn_query("text_vector", VEC, 0, Filters())
    with pytest.raises(ValueError, match="empty"):
        knn_query("text_vector", [], 1, Filters())


# --- the exact query ---------------------------------------------------------------------------------


def test_exact_query_scores_the_same_field_with_knn_score_over_the_same_filter() -> None:
    filters = Filters(category_id="bags", attributes={"color": "red"})
    body = exact_query("fused_vector", VEC, 7, filters, "cosinesimil", exclude_id="L9")
    assert body["size"] == 7
    script_score = body["query"]["script_score"]
    assert script_score["script"] == {
        "source": "knn_score",
        "lang": "knn",
        "params": {"field": "fused_vector", "query_value": VEC, "space_type": "cosinesimil"},
    }
    inner = script_score["query"]["bool"]
    approximate = knn_query("fused_vector", VEC, 7, filters, exclude_id="L9")["query"]["knn"]["fused_vector"]
    # the same restriction as the approximate query, plus: only documents that have the field
    assert inner["filter"] == [
        {"exists": {"field": "fused_vector"}},
        *approximate["filter"]["bool"]["filter"],
    ]
    assert inner["must_not"] == approximate["filter"]["bool"]["must_not"]
    assert sorted(body["_source"]["excludes"]) == sorted(VECTOR_FIELDS)


def test_scores_convert_to_cosine() -> None:
    assert cosine_from_score(1.0, "cosinesimil") == 1.0
    assert cosine_from_score(0.5, "cosinesimil") == 0.0
    assert cosine_from_score(0.0, "cosinesimil") == -1.0
    with pytest.raises(ValueError, match="cosinesimil"):
        cosine_from_score(0.5, "l2")


# --- the generation body -------------------------------------------------------------------------------


META = {"text_model": "vectorlake-text-encoder/3", "image_model": "vectorlake-image-encoder/1"}


def test_index_body_settings_come_from_config(cfg: Config) -> None:
    index = dataclasses.replace(
        cfg.index, shards=3, replicas=2, ef_search=77, concurrent_segment_search="auto"
    )
    settings = index_body(index, 384, 1280, META)["settings"]["index"]
    assert settings == {
        "knn": True,
        "knn.algo_param.ef_search": 77,
        "number_of_shards": 3,
        "number_of_replicas": 2,
        "search.concurrent_segment_search.mode": "auto",
        "gc_deletes": "3600s",  # index.gc_deletes_s: a delete is remembered an hour, not 60 s
    }
    assert (
        cfg.index.concurrent_segment_search == "all"
    )  # the default: k-NN queries search segments in parallel


def test_vector_fields_have_their_dimensions_and_the_configured_hnsw_method(cfg: Config) -> None:
    index = dataclasses.replace(cfg.index, m=24, ef_construction=256)
    props = index_body(index, 384, 1280, META)["mappings"]["properties"]
    dims = {name: props[name]["dimension"] for name in VECTOR_FIELDS}
    assert dims == {"text_vector": 384, "image_vector": 1280, "fused_vector": 1664}
    for name in VECTOR_FIELDS:
        assert props[name]["type"] == "knn_vector"
        assert props[name]["method"] == {
            "name": "hnsw",
            "engine": cfg.index.engine,
            "space_type": cfg.index.space_type,
            "parameters": {"m": 24, "ef_construction": 256},
        }


def test_mappings_are_strict_and_attributes_one_flat_object(cfg: Config) -> None:
    mappings = index_body(cfg.index, 3, 2, META)["mappings"]
    assert mappings["dynamic"] == "strict"
    assert mappings["_meta"] == META
    props = mappings["properties"]
    assert props["attributes"] == {"type": "flat_object"}  # no field per attribute key
    assert "dynamic_templates" not in mappings


def test_document_fields_have_their_types(cfg: Config) -> None:
    props = index_body(cfg.index, 3, 2, META)["mappings"]["properties"]
    types = {name: spec["type"] for name, spec in props.items()}
    keywords = {"listing_id", "seller_id", "category_id", "category_path", "locale", "image_id"}
    keywords |= {"policy_status", "text_model", "image_model"}
    assert {n for n, t in types.items() if t == "keyword"} == keywords
    assert types["title"] == "text" and props["title"]["fields"]["raw"]["type"] == "keyword"
    for name in ("event_ts", "indexed_at"):
        assert types[name] == "date"
        assert set(props[name]["format"].split("||")) == {"epoch_millis", "strict_date_optional_time"}
    assert types["version"] == "long"
    assert set(types) == keywords | {
        "title",
        "event_ts",
        "indexed_at",
        "version",
        "attributes",
        *VECTOR_FIELDS,
    }


def test_meta_is_copied_not_shared(cfg: Config) -> None:
    meta = dict(META)
    body = index_body(cfg.index, 3, 2, meta)
    meta["text_model"] = "changed"
    assert body["mappings"]["_meta"]["text_model"] == META["text_model"]


def test_a_zero_dimension_is_refused(cfg: Config) -> None:
    with pytest.raises(ValueError, match="dimension"):
        index_body(cfg.index, 0, 2, META)
