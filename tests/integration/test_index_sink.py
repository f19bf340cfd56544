"""The index package against the real local OpenSearch: generations, the versioned bulk sink, k-NN search.

Every test makes its own alias (``unique_name``) and deletes its generations afterwards.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest

from tests.ports import free_port
from vectorlake.config import Config
from vectorlake.errors import ConfigError, IndexStateError, IndexUnavailable
from vectorlake.index import generations, search, sink
from vectorlake.index.client import client_for, make_client
from vectorlake.index.sink import Delete, Upsert, WriteResult

TEXT_DIM, IMAGE_DIM = 8, 4
META = {"text_model": "vectorlake-text-encoder/3", "image_model": "vectorlake-image-encoder/1"}


@pytest.fixture
def client(cfg: Config) -> Iterator[Any]:
    c = make_client(cfg)
    yield c
    c.close()


@pytest.fixture
def alias_cfg(cfg: Config, client: Any, unique_name: str) -> Iterator[Config]:
    """The config with a fresh alias of its own; its generations are deleted afterwards."""
    yield dataclasses.replace(cfg, index=dataclasses.replace(cfg.index, alias=unique_name))
    client.indices.delete(index=f"{unique_name}_g*", params={"expand_wildcards": "all"})


@pytest.fixture
def alias(alias_cfg: Config, client: Any) -> str:
    """A live generation behind the fresh alias."""
    generations.ensure_live_generation(client, alias_cfg, TEXT_DIM, IMAGE_DIM, META)
    return alias_cfg.index.alias


def no_sleep(_: float) -> None:
    raise AssertionError("nothing should be retried here")


def doc(listing_id: str, title: str, vec: list[float] | None = None, **extra: Any) -> dict[str, Any]:
    d: dict[str, Any] = {"listing_id": listing_id, "title": title, "category_id": "bags", **extra}
    d["text_vector"] = vec if vec is not None else [1.0] + [0.0] * (TEXT_DIM - 1)
    return d


def write(client: Any, alias: str, cfg: Config, actions: list[sink.Action], **kw: Any) -> list[WriteResult]:
    kw.setdefault("sleep", no_sleep)
    return sink.write(client, alias, actions, cfg.sink, rng=random.Random(0), **kw)


def source(client: Any, alias: str, listing_id: str) -> dict[str, Any] | None:
    found = client.get(index=alias, id=listing_id, params={"ignore": 404})
    return found.get("_source") if found.get("found") else None


# --- client ------------------------------------------------------------------------------------------


def test_basic_auth_without_its_environment_variables_is_a_config_error(cfg: Config) -> None:
    basic = dataclasses.replace(cfg.opensearch, auth="basic")
    with pytest.raises(ConfigError, match=f"{cfg.opensearch.username_env} and {cfg.opensearch.password_env}"):
        client_for(basic, cfg.opensearch_hosts, environ={})
    c = client_for(basic, cfg.opensearch_hosts, environ={basic.username_env: "u", basic.password_env: "p"})
    c.close()


def test_sigv4_needs_a_region_and_signs_with_boto3_credentials(
    cfg: Config, monkeypatch: pytest.MonkeyPatch
) -> None:
    from opensearchpy import AWSV4SignerAuth, RequestsHttpConnection

    sigv4 = dataclasses.replace(cfg.opensearch, auth="sigv4", region=None)
    with pytest.raises(ConfigError, match=r"opensearch\.region"):
        client_for(sigv4, ("https://search.example.com",), environ={})
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "secret")
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    signed = client_for(dataclasses.replace(sigv4, region="eu-west-1"), ("https://search.example.com",))
    (connection,) = signed.transport.connection_pool.connections
    assert isinstance(connection, RequestsHttpConnection)
    assert isinstance(connection.session.auth, AWSV4SignerAuth)
    assert connection.session.verify not in (False, None)  # TLS verified (a CA bundle path or True)
    signed.close()


def test_the_client_does_not_retry_by_itself(client: Any) -> None:
    assert client.transport.max_retries == 0
    assert client.info()["version"]["distribution"] == "opensearch"


# --- generations -------------------------------------------------------------------------------------


def test_ensure_live_generation_creates_g1_behind_the_alias_then_reuses_it(
    client: Any, alias_cfg: Config
) -> None:
    alias = alias_cfg.index.alias
    assert generations.live_index(client, alias) is None
    index = generations.ensure_live_generation(client, alias_cfg, TEXT_DIM, IMAGE_DIM, META)
    assert index == f"{alias}_g1"
    assert generations.live_index(client, alias) == index
    aliases = client.indices.get_alias(name=alias)
    assert aliases == {index: {"aliases": {alias: {"is_write_index": True}}}}
    mapping = client.indices.get_mapping(index=index)[index]["mappings"]
    assert mapping["dynamic"] == "strict"
    assert mapping["properties"]["fused_vector"]["dimension"] == TEXT_DIM + IMAGE_DIM
    assert mapping["properties"]["text_vector"]["method"]["engine"] == alias_cfg.index.engine
    assert generations.generation_meta(client, index) == META
    settings = client.indices.get_settings(index=index)[index]["settings"]["index"]
    assert settings["knn"] == "true" and settings["knn.algo_param"]["ef_search"] == str(
        alias_cfg.index.ef_search
    )
    assert (
        settings["search"]["concurrent_segment_search"]["mode"] == alias_cfg.index.concurrent_segment_search
    )
    assert settings["gc_deletes"] == f"{alias_cfg.index.gc_deletes_s}s"

    def gc_deletes() -> str:
        return str(client.indices.get_settings(index=index)[index]["settings"]["index"].get("gc_deletes"))

    # a generation made before index.gc_deletes_s existed gets it; one remembering longer keeps its own
    for before, after in (("60s", "3600s"), ("12h", "12h"), (None, "3600s")):  # None: OpenSearch's 60 s
        client.indices.put_settings(index=index, body={"index": {"gc_deletes": before}})
        generations.remember_deletes(client, alias_cfg.index, index)
        assert gc_deletes() == after, before

    again = generations.ensure_live_generation(client, alias_cfg, TEXT_DIM, IMAGE_DIM, {"other": "meta"})
    assert again == index
    assert generations.generations(client, alias) == [index]
    assert generations.generation_meta(client, index) == META  # untouched by the second call


def test_a_leftover_generation_without_the_alias_is_not_reused(client: Any, alias_cfg: Config) -> None:
    alias = alias_cfg.index.alias
    client.indices.create(index=f"{alias}_g1", body={"settings": {"number_of_replicas": 0}})
    index = generations.ensure_live_generation(client, alias_cfg, TEXT_DIM, IMAGE_DIM, META)
    assert index == f"{alias}_g2"
    assert generations.generations(client, alias) == [f"{alias}_g1", f"{alias}_g2"]
    assert generations.live_index(client, alias) == index


def test_a_plain_index_named_like_the_alias_is_an_error(client: Any, unique_name: str) -> None:
    client.indices.create(index=unique_name, body={"settings": {"number_of_replicas": 0}})
    try:
        with pytest.raises(IndexStateError, match="plain index"):
            generations.live_index(client, unique_name)
    finally:
        client.indices.delete(index=unique_name)


# --- the sink: versions ------------------------------------------------------------------------------


def test_an_older_version_is_stale_and_the_newer_data_stays(
    client: Any, alias: str, alias_cfg: Config
) -> None:
    results = write(client, alias, alias_cfg, [Upsert("L1", 5, doc("L1", "five"))])
    assert [(r.outcome, r.status) for r in results] == [("applied", 201)]
    (older,) = write(client, alias, alias_cfg, [Upsert("L1", 3, doc("L1", "three"))])
    assert (older.outcome, older.status, older.action, older.version) == ("stale", 409, "index", 3)
    assert older.error is not None and "version_conflict_engine_exception" in older.error
    assert source(client, alias, "L1") == doc("L1", "five")
    found = client.get(index=alias, id="L1")
    assert found["_version"] == 5


def test_the_same_version_again_is_applied(client: Any, alias: str, alias_cfg: Config) -> None:
    write(client, alias, alias_cfg, [Upsert("L1", 5, doc("L1", "first"))])
    (again,) = write(client, alias, alias_cfg, [Upsert("L1", 5, doc("L1", "replayed"))])
    assert (again.outcome, again.status) == ("applied", 200)  # external_gte: a replay rewrites
    assert source(client, alias, "L1") == doc("L1", "replayed")


def test_a_delete_wins_over_an_older_upsert(client: Any, alias: str, alias_cfg: Config) -> None:
    write(client, alias, alias_cfg, [Upsert("L1", 5, doc("L1", "five"))])
    (deleted,) = write(client, alias, alias_cfg, [Delete("L1", 6)])
    assert (deleted.outcome, deleted.status, deleted.action) == ("applied", 200, "delete")
    assert source(client, alias, "L1") is None
    # The tombstone keeps version 6 for index.gc_deletes (default 60 s): a late v4 within that window is
    # stale. After it, a late upsert older than the delete would be applied; the writer always writes
    # the current silver state, which is why replays still converge.
    (late,) = write(client, alias, alias_cfg, [Upsert("L1", 4, doc("L1", "four"))])
    assert (late.outcome, late.status) == ("stale", 409)
    assert source(client, alias, "L1") is None
    (revived,) = write(client, alias, alias_cfg, [Upsert("L1", 7, doc("L1", "seven"))])
    assert revived.outcome == "applied"
    assert source(client, alias, "L1") == doc("L1", "seven")


def test_deleting_a_missing_document_is_applied(client: Any, alias: str, alias_cfg: Config) -> None:
    (r,) = write(client, alias, alias_cfg, [Delete("never-indexed", 2)])
    assert (r.outcome, r.status, r.error) == ("applied", 404, None)
    (late,) = write(client, alias, alias_cfg, [Upsert("never-indexed", 1, doc("never-indexed", "one"))])
    assert late.outcome == "stale"  # the delete's version is remembered even though nothing was there


def test_a_bad_document_is_rejected_with_its_reason_and_the_rest_is_applied(
    client: Any, alias: str, alias_cfg: Config
) -> None:
    actions: list[sink.Action] = [
        Upsert("ok-1", 1, doc("ok-1", "fine")),
        Upsert("bad-dim", 1, doc("bad-dim", "short vector", vec=[1.0, 0.0])),
        Upsert("bad-field", 1, {**doc("bad-field", "typo"), "titel": "x"}),
        Upsert("ok-2", 1, doc("ok-2", "fine too", attributes={"color": "red", "size": 42, "new": True})),
        Delete("ok-3", 1),
    ]
    results = write(client, alias, alias_cfg, actions)
    assert [r.listing_id for r in results] == [a.listing_id for a in actions]  # one per action, in order
    assert [r.outcome for r in results] == ["applied", "rejected", "rejected", "applied", "applied"]
    bad_dim, bad_field = results[1], results[2]
    assert bad_dim.status == 400 and bad_dim.error is not None
    assert bad_dim.error.startswith("mapper_parsing_exception: failed to parse field [text_vector]")
    assert "Vector dimension mismatch. Expected: 8, Given: 2" in bad_dim.error
    assert bad_field.error is not None and bad_field.error.startswith("strict_dynamic_mapping_exception")
    assert sink.counts(results) == {"applied": 3, "stale": 0, "rejected": 2, "total": 5}
    assert source(client, alias, "bad-dim") is None and source(client, alias, "bad-field") is None
    stored = source(client, alias, "ok-2")
    assert stored is not None and stored["attributes"] == {"color": "red", "size": 42, "new": True}
    index = generations.live_index(client, alias)
    attrs = client.indices.get_mapping(index=index)[index]["mappings"]["properties"]["attributes"]
    assert attrs == {"type": "flat_object"}  # the attribute keys add no field to the mapping
    client.indices.refresh(index=alias)
    for key, value in (("color", "red"), ("size", "42"), ("new", "true")):  # every value a keyword
        query = {"term": {f"attributes.{key}": value}}
        assert client.count(index=alias, body={"query": query})["count"] == 1, key


def test_many_actions_in_small_chunks_and_parallel_requests(
    client: Any, alias: str, alias_cfg: Config
) -> None:
    small = dataclasses.replace(
        alias_cfg, sink=dataclasses.replace(alias_cfg.sink, bulk_docs=7, bulk_bytes=900)
    )
    rng = np.random.default_rng(0)
    actions: list[sink.Action] = [
        Upsert(f"L{i}", 10 + i % 3, doc(f"L{i}", f"t{i}", vec=rng.normal(size=TEXT_DIM).astype(np.float32)))
        for i in range(120)
    ]
    actions += [Delete(f"L{i}", 100) for i in range(0, 120, 10)]
    results = write(client, alias, small, actions, concurrency=3)
    assert [r.listing_id for r in results] == [a.listing_id for a in actions]
    assert {r.outcome for r in results} == {"applied"}
    client.indices.refresh(index=alias)
    assert client.count(index=alias)["count"] == 120 - 12
    stored = source(client, alias, "L7")
    assert stored is not None
    np.testing.assert_allclose(stored["text_vector"], actions[7].doc["text_vector"], rtol=1e-6)  # type: ignore[union-attr]


# --- the sink: what is retried ----------------------------------------------------------------------


def test_connection_refused_is_retried_max_retries_times_then_index_unavailable(cfg: Config) -> None:
    down = client_for(cfg.opensearch, (f"http://127.0.0.1:{free_port()}",))
    sleeps: list[float] = []
    try:
        with pytest.raises(IndexUnavailable) as info:
            sink.write(
                down,
                "listings-x",
                [Upsert("L1", 1, doc("L1", "t"))],
                cfg.sink,
                random.Random(1),
                sleeps.append,
            )
    finally:
        down.close()
    assert len(sleeps) == cfg.sink.max_retries
    assert all(0 <= s <= cfg.sink.backoff_max_s for s in sleeps)
    message = str(info.value)
    assert "'listings-x'" in message and "ConnectionError" in message
    assert f"after {cfg.sink.max_retries} retries" in message


def block(client: Any, alias: str, on: bool) -> None:
    """The flood-stage disk block: every write to the index then fails with a real per-item 429."""
    client.indices.put_settings(
        index=alias, body={"index.blocks.read_only_allow_delete": True if on else None}
    )


def test_a_429_item_is_retried_and_applied_once_the_node_accepts_again(
    client: Any, alias: str, alias_cfg: Config
) -> None:
    write(client, alias, alias_cfg, [Upsert("kept", 1, doc("kept", "v1"))])
    block(client, alias, True)
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        if len(sleeps) == 2:
            block(client, alias, False)

    try:
        actions: list[sink.Action] = [
            Upsert("new", 1, doc("new", "n")),
            Upsert("kept", 2, doc("kept", "v2")),
            Upsert("kept", 1, doc("kept", "v1 again")),
        ]
        results = write(client, alias, alias_cfg, actions, sleep=sleep)
    finally:
        block(client, alias, False)
    assert len(sleeps) == 2  # two rounds were refused, the third went through
    # same bulk request, same shard, in order: v2 then v1 (stale) once the block is gone
    assert [(r.outcome, r.status) for r in results] == [("applied", 201), ("applied", 200), ("stale", 409)]
    assert source(client, alias, "kept") == doc("kept", "v2")


def test_429_that_never_ends_raises_index_unavailable_naming_the_alias_and_error(
    client: Any, alias: str, alias_cfg: Config
) -> None:
    few = dataclasses.replace(alias_cfg.sink, max_retries=2)
    block(client, alias, True)
    sleeps: list[float] = []
    try:
        with pytest.raises(IndexUnavailable) as info:
            sink.write(client, alias, [Upsert("x", 1, doc("x", "x"))], few, random.Random(0), sleeps.append)
    finally:
        block(client, alias, False)
    assert len(sleeps) == 2
    assert f"'{alias}'" in str(info.value)
    assert "429 cluster_block_exception" in str(info.value)


def test_real_bulk_items_are_classified(client: Any, alias: str) -> None:
    """The per-item classification, on items of real responses (the unit tests hold captured copies)."""

    def bulk(lines: list[dict[str, Any]]) -> list[tuple[str, dict[str, Any]]]:
        response = client.bulk(index=alias, body=lines, params={"require_alias": "true"})
        return [next(iter(entry.items())) for entry in response["items"]]

    ext = {"version_type": "external_gte"}
    items = bulk(
        [
            {"index": {"_id": "a", "version": 5, **ext}},
            doc("a", "a"),
            {"index": {"_id": "a", "version": 3, **ext}},
            doc("a", "a"),
            {"index": {"_id": "b", "version": 1, **ext}},
            doc("b", "b", vec=[1.0]),
            {"delete": {"_id": "missing", "version": 1, **ext}},
        ]
    )
    outcomes = [sink.classify_item(op, item).outcome for op, item in items]
    assert outcomes == ["applied", "stale", "rejected", "applied"]
    block(client, alias, True)
    try:
        blocked = bulk([{"index": {"_id": "c", "version": 1, **ext}}, doc("c", "c")])
    finally:
        block(client, alias, False)
    verdict = sink.classify_item(*blocked[0])
    assert (verdict.outcome, verdict.status) == ("retry", 429)
    with pytest.raises(IndexUnavailable, match="require_alias"):
        sink.classify_item(*bulk_to_missing_alias(client))


def bulk_to_missing_alias(client: Any) -> tuple[str, dict[str, Any]]:
    response = client.bulk(
        index="vectorlake-no-such-alias",
        body=[{"index": {"_id": "a"}}, {"x": 1}],
        params={"require_alias": "true"},
    )
    op, item = next(iter(response["items"][0].items()))
    return str(op), dict(item)


def test_writing_to_a_missing_alias_creates_nothing(client: Any, cfg: Config, unique_name: str) -> None:
    with pytest.raises(IndexUnavailable, match="no such index"):
        sink.write(client, unique_name, [Upsert("L1", 1, doc("L1", "t"))], cfg.sink, sleep=no_sleep)
    assert not client.indices.exists(index=unique_name)  # no auto-created index with dynamic mappings


# --- search ------------------------------------------------------------------------------------------


def unit(v: np.ndarray) -> np.ndarray:
    out: np.ndarray = np.asarray(v / np.linalg.norm(v), dtype=np.float64)
    return out


@pytest.fixture
def catalog(client: Any, alias: str, alias_cfg: Config) -> dict[str, tuple[np.ndarray, str, str]]:
    """60 listings: id -> (text vector, category, locale); 'near-*' (shoes) sit close to QUERY."""
    rng = np.random.default_rng(11)
    listings: dict[str, tuple[np.ndarray, str, str]] = {}
    for i in range(10):
        listings[f"near-{i}"] = (QUERY + 0.15 * rng.normal(size=TEXT_DIM), "shoes", "en-US")
    for i in range(50):
        listings[f"other-{i}"] = (
            rng.normal(size=TEXT_DIM),
            "bags" if i % 2 else "hats",
            "de-DE" if i % 3 else "en-US",
        )
    actions: list[sink.Action] = [
        Upsert(
            lid,
            1,
            {
                "listing_id": lid,
                "title": f"title {lid}",
                "category_id": cat,
                "locale": loc,
                "seller_id": f"s{n % 4}",
                "attributes": {"color": "red" if n % 2 else "blue"},
                "text_vector": vec.tolist(),
            },
        )
        for n, (lid, (vec, cat, loc)) in enumerate(listings.items())
    ]
    results = write(client, alias, alias_cfg, actions)
    assert {r.outcome for r in results} == {"applied"}
    client.indices.refresh(index=alias)
    return listings


QUERY = unit(np.arange(1.0, TEXT_DIM + 1.0))


def cosines(catalog: dict[str, tuple[np.ndarray, str, str]], query: np.ndarray) -> dict[str, float]:
    return {lid: float(unit(vec) @ unit(query)) for lid, (vec, _, _) in catalog.items()}


def test_filtered_ann_and_exact_agree_and_scores_are_cosine(client: Any, alias: str, catalog: Any) -> None:
    expected = cosines(catalog, QUERY)
    filters = search.Filters(locale="de-DE")
    ann = search.search_vector(client, alias, "text_vector", QUERY.tolist(), 8, filters, ef_search=200)
    exact = search.search_vector(client, alias, "text_vector", QUERY.tolist(), 8, filters, exact=True)
    assert [h.listing_id for h in ann] == [h.listing_id for h in exact]
    truth = sorted(
        (lid for lid, (_, _, loc) in catalog.items() if loc == "de-DE"), key=lambda i: -expected[i]
    )
    assert [h.listing_id for h in exact] == truth[:8]
    for hit in [*ann, *exact]:
        assert hit.locale == "de-DE"
        assert hit.score == pytest.approx(expected[hit.listing_id], abs=1e-5)


def test_scores_are_cosine_across_the_whole_range(client: Any, alias: str, catalog: Any) -> None:
    expected = cosines(catalog, QUERY)
    everything = search.search_vector(
        client, alias, "text_vector", QUERY.tolist(), 60, search.Filters(), exact=True
    )
    assert len(everything) == 60
    assert min(h.score for h in everything) < -0.3  # negative cosines convert too
    for hit in everything:
        assert hit.score == pytest.approx(expected[hit.listing_id], abs=1e-5)


def test_the_filter_inside_knn_returns_k_hits_of_the_category(client: Any, alias: str, catalog: Any) -> None:
    unfiltered = search.search_vector(client, alias, "text_vector", QUERY.tolist(), 5, search.Filters())
    assert {h.category_id for h in unfiltered} == {"shoes"}  # the nearest are all shoes
    bags = search.search_vector(
        client, alias, "text_vector", QUERY.tolist(), 5, search.Filters(category_id="bags")
    )
    assert len(bags) == 5 and {h.category_id for h in bags} == {"bags"}
    expected = cosines(catalog, QUERY)
    best_bags = sorted((i for i, (_, c, _) in catalog.items() if c == "bags"), key=lambda i: -expected[i])
    assert [h.listing_id for h in bags] == best_bags[:5]


def test_attribute_and_seller_filters(client: Any, alias: str, catalog: Any) -> None:
    filters = search.Filters(seller_id="s1", attributes={"color": "red"})
    hits = search.search_vector(client, alias, "text_vector", QUERY.tolist(), 5, filters)
    assert len(hits) == 5
    for hit in hits:
        assert hit.seller_id == "s1" and hit.attributes == {"color": "red"}
        assert hit.title == f"title {hit.listing_id}"


def test_more_like_this_excludes_the_listing_itself(client: Any, alias: str, catalog: Any) -> None:
    vector = search.document_vector(client, alias, "near-3", "text_vector")
    assert vector is not None
    np.testing.assert_allclose(vector, catalog["near-3"][0], rtol=1e-6)
    for exact in (False, True):
        hits = search.search_vector(
            client, alias, "text_vector", vector, 5, search.Filters(), exact=exact, exclude_id="near-3"
        )
        assert len(hits) == 5
        assert "near-3" not in {h.listing_id for h in hits}
        assert {h.category_id for h in hits} == {"shoes"}
    assert search.document_vector(client, alias, "no-such-listing", "text_vector") is None
    assert search.document_vector(client, alias, "near-3", "image_vector") is None  # it has none


def test_any_number_of_distinct_attribute_keys_is_indexed_and_filterable(
    client: Any, alias: str, alias_cfg: Config
) -> None:
    """Sellers invent attribute keys; a field per key would pass index.mapping.total_fields.limit (1,000)
    and OpenSearch would refuse every later document with a new key. One flat_object field holds them all,
    and a term filter on any key still works, with k-NN too."""
    from vectorlake.index.search import Filters, filter_clause

    actions: list[sink.Action] = [
        Upsert(
            f"L{n}", 1, doc(f"L{n}", "bag", attributes={f"k{n}": "x", "color": "red" if n % 2 else "blue"})
        )
        for n in range(1_100)
    ]
    results = write(client, alias, alias_cfg, actions)
    assert {r.outcome for r in results} == {"applied"} and len(results) == 1_100
    client.indices.refresh(index=alias)
    for attributes, hits in (({"k1042": "x"}, 1), ({"color": "red"}, 550), ({"k7": "y"}, 0)):
        query = filter_clause(Filters(attributes=attributes))
        assert client.count(index=alias, body={"query": query})["count"] == hits, attributes
    red = filter_clause(Filters(attributes={"color": "red"}))
    knn = {"knn": {"text_vector": {"vector": [1.0] + [0.0] * (TEXT_DIM - 1), "k": 5, "filter": red}}}
    found = client.search(index=alias, body={"size": 5, "query": knn})["hits"]["hits"]
    assert len(found) == 5 and {h["_source"]["attributes"]["color"] for h in found} == {"red"}
