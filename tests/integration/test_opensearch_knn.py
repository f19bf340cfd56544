from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from vectorlake.config import Config


@pytest.fixture
def client(cfg: Config) -> Iterator[Any]:
    from opensearchpy import OpenSearch

    c = OpenSearch(hosts=list(cfg.opensearch_hosts), timeout=30)
    yield c
    c.close()


def test_knn_plugin_is_installed(client: Any) -> None:
    names = {p["component"] for p in client.cat.plugins(format="json")}
    assert "opensearch-knn" in names


def test_filtered_knn_query_on_a_lucene_hnsw_cosine_field(client: Any, cfg: Config, unique_name: str) -> None:
    index = unique_name
    client.indices.create(
        index=index,
        body={
            "settings": {"index": {"knn": True, "number_of_shards": 1, "number_of_replicas": 0}},
            "mappings": {
                "properties": {
                    "vec": {
                        "type": "knn_vector",
                        "dimension": 3,
                        "method": {
                            "name": "hnsw",
                            "engine": cfg.index.engine,
                            "space_type": cfg.index.space_type,
                            "parameters": {"m": cfg.index.m, "ef_construction": cfg.index.ef_construction},
                        },
                    },
                    "category_id": {"type": "keyword"},
                }
            },
        },
    )
    try:
        docs = {
            "closest-but-shoes": ([1.0, 0.0, 0.0], "shoes"),
            "bag-near": ([0.9, 0.2, 0.0], "bags"),
            "bag-far": ([0.0, 0.0, 1.0], "bags"),
            "bag-opposite": ([-1.0, 0.0, 0.0], "bags"),
        }
        for doc_id, (vec, cat) in docs.items():
            client.index(index=index, id=doc_id, body={"vec": vec, "category_id": cat})
        client.indices.refresh(index=index)

        mapping = client.indices.get_mapping(index=index)[index]["mappings"]["properties"]["vec"]
        assert mapping["method"]["engine"] == "lucene"

        def knn(filter_: dict[str, Any] | None, k: int) -> list[tuple[str, float]]:
            clause: dict[str, Any] = {"vector": [1.0, 0.0, 0.0], "k": k}
            if filter_ is not None:
                clause["filter"] = filter_
            res = client.search(index=index, body={"size": k, "query": {"knn": {"vec": clause}}})
            return [(h["_id"], h["_score"]) for h in res["hits"]["hits"]]

        unfiltered = knn(None, 1)
        assert [i for i, _ in unfiltered] == ["closest-but-shoes"]
        filtered = knn({"term": {"category_id": "bags"}}, 3)
        assert [i for i, _ in filtered] == ["bag-near", "bag-far", "bag-opposite"]
        # cosinesimil scores are (1 + cosine) / 2 in OpenSearch
        cosine = 0.9 / (0.9**2 + 0.2**2) ** 0.5
        assert filtered[0][1] == pytest.approx((1 + cosine) / 2, rel=1e-4)
    finally:
        client.indices.delete(index=index)
