"""The embed + index query on real Spark/Delta, mlflow and OpenSearch: re-embedding only on relevant
change, late images, suppression and reactivation, replays, and an OpenSearch outage mid-stream."""

from __future__ import annotations

import io
import json
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from PIL import Image

from tests import oracle
from tests.e2e.test_index_e2e import drop_alias, index_documents
from vectorlake.config import Config, load_config
from vectorlake.embed import registry
from vectorlake.generate import GeneratorSpec, generate
from vectorlake.index import sink
from vectorlake.index.client import make_client
from vectorlake.lake.tables import LakeTables
from vectorlake.pipeline import index_query, stream


def _cfg(tmp: Path, alias: str, **overrides: str) -> Config:
    env = dict(os.environ) | {"VECTORLAKE__LAKE__ROOT": str(tmp / "lake"), "VECTORLAKE__INDEX__ALIAS": alias}
    env |= {f"VECTORLAKE__{k.upper()}": v for k, v in overrides.items()}
    return load_config(environ=env)


class Landing:
    """A landing folder that tests add part files to, one call = one new file per kind given."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.n = 0

    def add(self, **lines: list[dict[str, Any]] | list[bytes]) -> None:
        self.n += 1
        for kind, events in lines.items():
            folder = self.root / kind
            folder.mkdir(parents=True, exist_ok=True)
            data = b"".join((e if isinstance(e, bytes) else json.dumps(e).encode()) + b"\n" for e in events)
            tmp = folder / f".part-{self.n:04d}.jsonl"
            tmp.write_bytes(data)
            tmp.rename(folder / f"part-{self.n:04d}.jsonl")


def _jpeg(color: tuple[int, int, int], path: Path) -> str:
    img = Image.new("RGB", (64, 48), color)
    for x in range(0, 64, 8):  # some structure, so images differ in more than their mean
        for y in range(0, 48, 6):
            img.putpixel((x, y), (255 - color[0], 255 - color[1], 255 - color[2]))
    buf = io.BytesIO()
    img.save(buf, format="JPEG")
    path.write_bytes(buf.getvalue())
    return f"file://{path}"


def _listing(
    lid: str, ts: int, seller: str, title: str, price: float, image_ids: list[str]
) -> dict[str, Any]:
    return {
        "event_id": f"{lid}-{ts}",
        "listing_id": lid,
        "event_ts": ts,
        "op": "UPSERT",
        "title": title,
        "description": f"A fine {title.lower()} in very good shape.",
        "attributes": {"brand": "Acme", "color": "red", "price": price},
        "image_ids": image_ids,
        "seller_id": seller,
        "locale": "en_us",
        "category_id": "cat-clothing-accessories",
    }


def _media(lid: str, image_id: str, ts: int, url: str) -> dict[str, Any]:
    return {"event_id": f"m-{image_id}-{ts}", "listing_id": lid, "image_id": image_id, "event_ts": ts,
            "op": "ADDED", "url": url}  # fmt: skip


def _policy(seller: str, ts: int, status: str) -> dict[str, Any]:
    return {
        "event_id": f"p-{seller}-{ts}",
        "seller_id": seller,
        "event_ts": ts,
        "status": status,
        "reason": "t",
    }


def _without_indexed_at(docs: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    return {k: {f: v for f, v in d.items() if f != "indexed_at"} for k, d in docs.items()}


_VECTORS = ("text_vector", "image_vector", "fused_vector")


def same_index(got: dict[str, dict[str, Any]], want: dict[str, dict[str, Any]]) -> bool:
    """Same documents: every field equal but `indexed_at`, vectors equal up to float noise (a model run
    on a different batch pads differently, which moves the last bits)."""
    if got.keys() != want.keys():
        return False
    for lid, doc in got.items():
        other = want[lid]
        if {k: v for k, v in doc.items() if k not in (*_VECTORS, "indexed_at")} != {
            k: v for k, v in other.items() if k not in (*_VECTORS, "indexed_at")
        }:
            return False
        for name in _VECTORS:
            if (name in doc) != (name in other):
                return False
            if name in doc and not np.allclose(doc[name], other[name], atol=1e-5):
                return False
    return True


@pytest.fixture
def alias(unique_name: str) -> Iterator[str]:
    yield unique_name
    drop_alias(load_config(environ=dict(os.environ) | {"VECTORLAKE__INDEX__ALIAS": unique_name}))


def test_only_relevant_changes_reach_the_models(spark: Any, tmp_path: Path, alias: str) -> None:
    cfg = _cfg(tmp_path, alias)
    registry.register_all(cfg)
    landing = Landing(tmp_path / "landing")
    images = tmp_path / "images"
    images.mkdir()
    url1, url2 = _jpeg((200, 30, 30), images / "i1.jpg"), _jpeg((30, 30, 200), images / "i2.jpg")

    def run(only: stream.Only = "all") -> stream.IndexTotals:
        totals = stream.run(spark, cfg, "files", once=True, landing_dir=str(landing.root), only=only)
        assert totals.index is not None and totals.index.rejected == 0
        return totals.index

    landing.add(
        listing_changes=[
            _listing("L1", 1_000, "s1", "Red leather bag", 10.5, ["i1"]),
            _listing("L2", 1_000, "s2", "Blue wool scarf", 20.0, ["i2"]),  # its image comes late
            _listing("L3", 1_000, "s1", "Green cotton shirt", 5.0, []),
        ],
        media=[_media("L1", "i1", 1_100, url1)],
    )
    first = run()
    assert (first.text_model_calls, first.image_model_calls) == (3, 1)
    docs, first_versions = index_documents(cfg)
    assert set(docs) == {"L1", "L2", "L3"}
    assert "image_vector" not in docs["L2"] and "image_vector" in docs["L1"]

    # a price-only change: the price is not part of the model input, so no model runs
    landing.add(listing_changes=[_listing("L1", 2_000, "s1", "Red leather bag", 12.0, ["i1"])])
    price = run()
    assert (price.text_model_calls, price.image_model_calls, price.upserts) == (0, 0, 1)
    after_price, versions = index_documents(cfg)
    # a version sums event_ts_ms + 1 over the state's registers: ten of them moved from 1,000 to 2,000
    assert (
        after_price["L1"]["attributes"]["price"] == "12" and versions["L1"] == first_versions["L1"] + 10_000
    )
    assert after_price["L1"]["text_vector"] == docs["L1"]["text_vector"]

    # a late image (event time before the listing's last change, arriving after it)
    landing.add(media=[_media("L2", "i2", 1_500, url2)])
    late = run()
    assert (late.text_model_calls, late.image_model_calls) == (0, 1)
    after_image, versions = index_documents(cfg)
    before_policy = dict(versions)
    l2 = after_image["L2"]
    assert l2["image_id"] == "i2" and len(l2["image_vector"]) == 1280
    assert versions["L2"] == first_versions["L2"] + 1_501  # a new media register: a greater version
    assert l2["fused_vector"] != docs["L2"]["fused_vector"] and l2["text_vector"] == docs["L2"]["text_vector"]
    assert float(np.dot(l2["fused_vector"], l2["fused_vector"])) == pytest.approx(1.0, abs=1e-5)

    # a suppressed seller's listings vanish, and come back without re-embedding
    landing.add(seller_policy=[_policy("s1", 3_000, "SUPPRESSED")])
    suppressed = run()
    assert (suppressed.deletes, suppressed.text_model_calls, suppressed.image_model_calls) == (2, 0, 0)
    assert set(index_documents(cfg)[0]) == {"L2"}
    landing.add(seller_policy=[_policy("s1", 4_000, "ACTIVE")])
    active = run()
    assert (active.upserts, active.text_model_calls, active.image_model_calls) == (2, 0, 0)
    back, versions = index_documents(cfg)
    assert set(back) == {"L1", "L2", "L3"}
    assert (versions["L1"], versions["L3"]) == (
        before_policy["L1"] + 4_001,
        first_versions["L3"] + 4_001,
    )
    assert back["L1"]["text_vector"] == after_image["L1"]["text_vector"]
    assert back["L1"]["image_vector"] == after_image["L1"]["image_vector"]

    # a full replay of the change feed (the index query's checkpoint is gone): no model call, same index
    shutil.rmtree(index_query.checkpoint_path(cfg))
    replay = run(only="index")
    assert (replay.text_model_calls, replay.image_model_calls, replay.listings) == (0, 0, 3)
    again, again_versions = index_documents(cfg)
    assert _without_indexed_at(again) == _without_indexed_at(back) and again_versions == versions
    log = spark.read.format("delta").load(LakeTables(cfg.lake.root).index_log)
    assert log.where("outcome = 'applied'").count() >= 3 + 1 + 1 + 2 + 2 + 3
    assert spark.read.format("delta").load(LakeTables(cfg.lake.root).embeddings).count() == 3 + 2

    # a late suppression, older than L2's newest event (its image at 1,500), is still a new state with a
    # greater version: a writer holding the state read before it (a reindex bucket, a backfill, a dead-letter
    # retry) can no longer bring L2 back, although its newest event time did not move
    landing.add(seller_policy=[_policy("s2", 1_200, "SUPPRESSED")])
    assert run().deletes == 1
    assert "L2" not in index_documents(cfg)[0]
    client = make_client(cfg)
    try:
        (stale,) = sink.write(
            client, cfg.index.alias, [sink.Upsert("L2", versions["L2"], back["L2"])], cfg.sink
        )
    finally:
        client.close()
    assert (stale.outcome, stale.status) == ("stale", 409)
    assert "L2" not in index_documents(cfg)[0]


def test_an_image_that_cannot_or_may_not_be_fetched_is_dead_lettered_and_indexed_by_text(
    spark: Any, tmp_path: Path, alias: str
) -> None:
    cfg = _cfg(tmp_path, alias)
    landing = Landing(tmp_path / "landing")
    (tmp_path / "bad.jpg").write_bytes(b"not a jpeg at all")
    bomb = io.BytesIO()  # a small PNG whose header declares 81 million pixels (over fetch.max_pixels)
    Image.new("1", (9_000, 9_000)).save(bomb, "PNG")
    (tmp_path / "bomb.png").write_bytes(bomb.getvalue())
    landing.add(
        listing_changes=[
            _listing("M1", 1_000, "s1", "Steel lamp", 30.0, ["gone"]),
            _listing("M2", 1_000, "s1", "Oak table", 90.0, ["bad"]),
            _listing("M3", 1_000, "s1", "Brass bell", 12.0, ["meta"]),
            _listing("M4", 1_000, "s1", "Glass vase", 15.0, ["bomb"]),
        ],
        media=[
            _media("M1", "gone", 1_100, f"file://{tmp_path}/missing.jpg"),
            _media("M2", "bad", 1_100, f"file://{tmp_path}/bad.jpg"),
            # the cloud metadata address: refused by the fetch policy, never requested
            _media("M3", "meta", 1_100, "http://169.254.169.254/latest/meta-data/iam/"),
            _media("M4", "bomb", 1_100, f"file://{tmp_path}/bomb.png"),
        ],
    )
    totals = stream.run(spark, cfg, "files", once=True, landing_dir=str(landing.root)).index
    assert totals is not None and totals.image_failures == 4
    docs, _ = index_documents(cfg)
    assert set(docs) == {"M1", "M2", "M3", "M4"} and all(
        "image_vector" not in d and "text_vector" in d for d in docs.values()
    )
    dead = spark.read.format("delta").load(LakeTables(cfg.lake.root).embed_dead_letters).collect()
    assert sorted((r["listing_id"], r["reason"]) for r in dead) == [
        ("M1", "not_found"),
        ("M2", "decode_failed"),
        ("M3", "refused"),
        ("M4", "too_large"),
    ]


def _wait(what: str, check: Callable[[], bool], timeout_s: float, thread: threading.Thread) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        if not thread.is_alive():
            raise AssertionError(f"the stream ended while waiting for {what}")
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def test_an_opensearch_outage_mid_stream(spark: Any, tmp_path: Path, unique_name: str) -> None:
    """Silver keeps ingesting while OpenSearch is down; the index catches up after it is back and ends up
    equal to the index of an uninterrupted run over the same events."""
    from vectorlake.stack import process, servers

    catalog = generate(GeneratorSpec(seed=5, listings=40, sellers=6, events=300, poison_rate=0.0,
                                     image_size=(48, 36)), image_root=str(tmp_path / "images"))  # fmt: skip
    (tmp_path / "images").mkdir()
    for image_id, data in catalog.images.items():
        (tmp_path / "images" / f"{image_id}.jpg").write_bytes(data)
    streams = catalog.streams()
    halves = [
        {k: v[: len(v) // 2] for k, v in streams.items()},
        {k: v[len(v) // 2 :] for k, v in streams.items()},
    ]

    # the uninterrupted run, for comparison
    ref_alias = f"{unique_name}-ref"
    ref_cfg = _cfg(tmp_path / "ref", ref_alias)
    ref_landing = Landing(tmp_path / "ref-landing")
    ref_landing.add(**streams)
    live_alias = f"{unique_name}-live"
    cfg = _cfg(tmp_path / "live", live_alias, sources__trigger_interval="1 second",
               embed__trigger_interval="1 second", sink__restart_delay_s="2", sink__max_retries="2",
               sink__backoff_initial_s="0.2", sink__backoff_max_s="1", opensearch__timeout_s="5",
               sink__restart_max_delay_s="8")  # fmt: skip
    opensearch = servers.opensearch(cfg)
    stop = threading.Event()
    thread: threading.Thread | None = None
    try:
        stream.run(spark, ref_cfg, "files", once=True, landing_dir=str(ref_landing.root))
        want, want_versions = index_documents(ref_cfg)
        want_silver = oracle.silver_rows(spark, LakeTables(ref_cfg.lake.root))
        assert len(want) > 10

        landing = Landing(tmp_path / "landing")
        landing.add(**halves[0])
        result: dict[str, Any] = {}

        def job() -> None:
            try:
                result["totals"] = stream.run(
                    spark, cfg, "files", once=False, landing_dir=str(landing.root), stop=stop
                )
            except BaseException as e:  # reported by the test thread
                result["error"] = e

        thread = threading.Thread(target=job, daemon=True)
        thread.start()
        tables = LakeTables(cfg.lake.root)

        def indexed_some() -> bool:
            try:
                return len(index_documents(cfg)[0]) > 5
            except Exception:
                return False

        _wait("the first half to be indexed", indexed_some, 240, thread)
        assert process.stop(opensearch)
        landing.add(**halves[1])
        _wait("silver to take in the second half while OpenSearch is down",
              lambda: oracle.silver_rows(spark, tables) == want_silver, 240, thread)  # fmt: skip
        assert not process.state(opensearch).healthy
        proc = process.launch(opensearch)
        process.wait_healthy(opensearch, proc, cfg.stack.startup_timeout_s)

        def caught_up() -> bool:
            try:
                return same_index(index_documents(cfg)[0], want)
            except Exception:
                return False

        _wait("the index to catch up", caught_up, 300, thread)
        stop.set()
        thread.join(timeout=300)
        assert "error" not in result, result.get("error")
        got, got_versions = index_documents(cfg)
        assert same_index(got, want) and got_versions == want_versions
        totals = result["totals"].index
        assert totals.restarts >= 1  # the outage was noticed, and survived
        # each failure is a row of ops/stream_failures, with the restart delay doubling up to its cap
        from vectorlake.ops import metrics

        failures = sorted(metrics.read_rows(cfg, tables.stream_failures), key=lambda r: r["failed_at"])
        assert len(failures) >= totals.restarts and {r["stream"] for r in failures} == {"index"}
        assert failures[0]["in_a_row"] == 1 and failures[0]["restart_in_s"] == 2.0
        assert all(r["restart_in_s"] == min(8.0, 2.0 * 2 ** (r["in_a_row"] - 1)) for r in failures)
        # and the metrics count them, the stream no longer failing: batches completed after the last one
        exposition = metrics.exposition(cfg, with_opensearch=False)
        assert f'vectorlake_stream_failures_total{{stream="index"}} {float(len(failures))}' in exposition
        assert 'vectorlake_stream_failing{stream="index"} 0.0' in exposition
    finally:
        stop.set()
        if thread is not None:
            thread.join(timeout=300)
        if not process.state(opensearch).healthy:
            proc = process.launch(opensearch)
            process.wait_healthy(opensearch, proc, cfg.stack.startup_timeout_s)
        drop_alias(ref_cfg)
        drop_alias(cfg)
