"""Model upgrades on the real stack: reindex while the stream writes and queries run, gate, cutover, rollback.

One catalog is streamed once (generation 1, the champion models). Then, with the stream running and a
query loop hitting the read alias:

- a new text model version (MiniLM with slightly perturbed weights, registered from a folder) is reindexed
  into generation 2 while changes arrive; the gate passes; cutover; every change made during the build is
  in generation 2 with its own model's vectors; rollback serves generation 1, also current;
- a deliberately broken text model version (random weights) builds generation 3, whose gate fails on
  relevance and blocks cutover.

No query of the loop may fail or come back empty at any point.
"""

from __future__ import annotations

import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.e2e.test_index_e2e import index_documents
from tests.integration.test_index_stream import Landing
from vectorlake import control
from vectorlake.config import Config, load_config
from vectorlake.embed import registry
from vectorlake.embed.encoders import load_text_encoder
from vectorlake.embed.modelinput import text_input
from vectorlake.errors import IndexStateError
from vectorlake.generate import GeneratorSpec, generate, write_landing
from vectorlake.index import generations
from vectorlake.index.client import make_client
from vectorlake.index.search import Filters, search_vector
from vectorlake.lake.tables import LakeTables
from vectorlake.ops import gate, lifecycle, reindex
from vectorlake.pipeline import stream

SPEC = GeneratorSpec(seed=11, listings=50, sellers=6, events=300, image_size=(64, 48), poison_rate=0.0)


def variant(base: str, out: Path, noise: float | None, seed: int) -> Path:
    """A copy of the sentence-transformers folder `base` with perturbed (`noise`) or random (None) weights."""
    import torch
    from safetensors.torch import load_file, save_file

    shutil.copytree(base, out)
    weights = load_file(str(out / "model.safetensors"))
    gen = torch.Generator().manual_seed(seed)
    changed = {}
    for name, w in weights.items():
        if not w.is_floating_point():
            changed[name] = w
        elif noise is None:
            changed[name] = torch.randn(w.shape, generator=gen, dtype=w.dtype) * 0.05
        else:
            changed[name] = w + torch.randn(w.shape, generator=gen, dtype=w.dtype) * noise
    save_file(changed, str(out / "model.safetensors"))
    return out


class QueryLoop:
    """Queries the read alias every 0.2 s until stopped; counts failures and empty answers."""

    def __init__(self, cfg: Config, vector: list[float]) -> None:
        self.cfg, self.vector = cfg, vector
        self.ok = 0
        self.failures: list[str] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        client = make_client(self.cfg)
        alias = self.cfg.index.alias
        try:
            while not self.stop.is_set():
                try:
                    hits = search_vector(client, alias, "text_vector", self.vector, 5, Filters())
                    if hits:
                        self.ok += 1
                    else:
                        self.failures.append("empty")
                except Exception as e:  # every failure is what this test is about
                    self.failures.append(f"{type(e).__name__}: {e}")
                time.sleep(0.2)
        finally:
            client.close()


@dataclass
class Stack:
    cfg: Config
    landing: Landing
    tables: LakeTables
    g1: str
    text_v1: str
    text_v2: str
    text_broken: str
    loop: QueryLoop


def _wait(what: str, check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(2)
    raise AssertionError(f"timed out after {timeout_s:.0f} s waiting for {what}")


def _silver(cfg: Config) -> dict[str, dict[str, Any]]:
    from deltalake import DeltaTable

    rows = DeltaTable(LakeTables(cfg.lake.root).listings).to_pyarrow_table(
        columns=["listing_id", "served", "version", "title"]
    )
    return {r["listing_id"]: r for r in rows.to_pylist()}


def _docs(cfg: Config, index: str) -> tuple[dict[str, dict[str, Any]], dict[str, int]]:
    from vectorlake.config import load_config as _load

    env = dict(os.environ) | {"VECTORLAKE__LAKE__ROOT": cfg.lake.root, "VECTORLAKE__INDEX__ALIAS": index}
    return index_documents(_load(environ=env))  # scans `index` through its name


@pytest.fixture(scope="module")
def stack(spark: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    tmp = tmp_path_factory.mktemp("reindex")
    catalog = generate(SPEC, image_root=str(tmp / "landing" / "images"))
    write_landing(catalog, tmp / "landing", files_per_kind=1)
    alias = f"t-reindex-{os.getpid()}"
    env = dict(os.environ) | {
        "VECTORLAKE__LAKE__ROOT": str(tmp / "lake"),
        "VECTORLAKE__INDEX__ALIAS": alias,
        "VECTORLAKE__SOURCES__TRIGGER_INTERVAL": "2 seconds",
        "VECTORLAKE__EMBED__TRIGGER_INTERVAL": "2 seconds",
        "VECTORLAKE__REINDEX__CHUNKS": "3",
        "VECTORLAKE__GATE__LABELLED_QUERIES": str(tmp / "landing" / "queries.jsonl"),
    }
    cfg = load_config(environ=env)
    registry.register_all(cfg)
    stream.run(spark, cfg, "files", once=True, landing_dir=str(tmp / "landing"))
    base = registry.resolve(cfg, "text")
    v2 = registry.register_folder(cfg, "text", variant(base.path, tmp / "v2", 1e-4, 1), "test:perturbed")
    broken = registry.register_folder(cfg, "text", variant(base.path, tmp / "v3", None, 2), "test:random")
    assert len({base.version, v2.version, broken.version}) == 3

    client = make_client(cfg)
    g1 = generations.live_index(client, alias)
    assert g1 is not None
    client.close()
    encoder = load_text_encoder(base.path, "cpu", 32, cfg.embed.chunk_overlap_tokens, None)
    vector = [float(x) for x in encoder.encode([text_input("leather bag", None, None, None, ())])[0]]
    loop = QueryLoop(cfg, vector)
    loop.thread.start()

    stop = threading.Event()
    errors: list[BaseException] = []

    def job() -> None:
        try:
            stream.run(spark, cfg, "files", once=False, landing_dir=str(tmp / "landing"), stop=stop)
        except BaseException as e:  # reported by the test, not lost in the thread
            errors.append(e)

    streaming = threading.Thread(target=job, daemon=True)
    streaming.start()
    landing = Landing(tmp / "landing")
    landing.n = 100  # after the generator's part files
    yield Stack(cfg, landing, LakeTables(cfg.lake.root), g1, base.version, v2.version, broken.version, loop)
    stop.set()
    streaming.join(timeout=120)
    loop.stop.set()
    loop.thread.join(timeout=10)
    client = make_client(cfg)
    try:
        for index in generations.generations(client, alias):
            client.indices.delete(index=index)
    finally:
        client.close()
    assert not errors, f"the stream failed: {errors[0]}"


def _change(lid: str, ts_ms: int, title: str | None = None, op: str = "UPSERT") -> dict[str, Any]:
    event: dict[str, Any] = {"event_id": f"chg-{lid}-{ts_ms}", "listing_id": lid, "event_ts": ts_ms, "op": op}
    if title is not None:
        event["title"] = title
    return event


def test_reindex_under_load_cutover_and_rollback(stack: Stack, spark: Any) -> None:
    cfg = stack.cfg
    served = sorted(lid for lid, r in _silver(cfg).items() if r["served"])
    assert len(served) > 20

    gen = lifecycle.create_generation(cfg, text_version=stack.text_v2)
    assert gen.index == generations.generation_name(cfg.index.alias, 2) and gen.state == "building"
    assert lifecycle.create_generation(cfg, text_version=stack.text_v2).index == gen.index  # idempotent

    # changes arrive while generation 2 builds: retitles and a delete
    now = int(time.time() * 1000)
    retitled = {lid: f"Vintage brass lamp {i}" for i, lid in enumerate(served[:4])}
    deleted = served[4]
    stack.landing.add(
        listing_changes=[_change(lid, now, title) for lid, title in retitled.items()]
        + [_change(deleted, now, op="DELETE")]
    )
    result = reindex.load(spark, cfg, gen.index)
    assert result.index == gen.index and result.upserts >= len(served) - 1 and result.rejected == 0

    def changes_everywhere() -> bool:
        silver = _silver(cfg)
        if any(silver[lid]["title"] != t for lid, t in retitled.items()) or silver[deleted]["served"]:
            return False
        for index in (stack.g1, gen.index):
            docs, _ = _docs(cfg, index)
            if deleted in docs or any(docs.get(lid, {}).get("title") != t for lid, t in retitled.items()):
                return False
        return True

    _wait("the stream to write the changes to both generations", changes_everywhere, 240)

    report = gate.validate(cfg)
    assert report.passed, report.text()
    assert {c.name for c in report.checks} == {
        "count_parity",
        "missing_vectors",
        "recall_at_10",
        "relevance",
        "embeddings_quality",
    }
    relevance = next(c for c in report.checks if c.name == "relevance")
    assert relevance.value is not None, relevance.detail  # compared with generation 1, not skipped

    swap = lifecycle.cutover(cfg)
    assert (swap.live, swap.retired) == (gen.index, stack.g1)
    client = make_client(cfg)
    try:
        assert generations.alias_map(client, cfg.index) == {"live": gen.index, "prev": stack.g1}
    finally:
        client.close()

    # the new generation is exactly the served silver state, embedded with the new model
    silver = _silver(cfg)
    docs, versions = index_documents(cfg)  # through the read alias
    want = {lid: r for lid, r in silver.items() if r["served"]}
    assert set(docs) == set(want)
    for lid, row in want.items():
        assert versions[lid] == row["version"], lid
        assert docs[lid]["text_model"] == f"{cfg.embed.text_model.name}/{stack.text_v2}"
        assert docs[lid].get("title") == row["title"]
    lid = next(iter(retitled))
    got = np.asarray(docs[lid]["text_vector"], dtype=np.float32)
    from deltalake import DeltaTable

    cached = [
        r
        for r in DeltaTable(stack.tables.embeddings).to_pyarrow_table().to_pylist()
        if r["listing_id"] == lid and r["model_version"] == docs[lid]["text_model"]
    ]
    assert cached, "the new model's vector is in the embeddings cache"
    assert any(np.allclose(got, np.asarray(r["vector"]), atol=1e-5) for r in cached)

    rows = {r["index"]: r for r in control.generations_table(cfg).rows()}
    assert rows[gen.index]["state"] == "live" and rows[gen.index]["validation"] == "passed"
    assert rows[stack.g1]["state"] == "retired" and rows[stack.g1]["retired_at"] is not None
    assert rows[gen.index]["validation_run_id"] == report.run_id

    # rollback: generation 1 serves again, and it has the changes too (the stream kept writing it)
    assert lifecycle.rollback_target(cfg) == stack.g1
    back = lifecycle.rollback(cfg, stack.g1)
    assert (back.live, back.retired) == (stack.g1, gen.index)
    assert lifecycle.rollback(cfg, stack.g1) == back  # a retry does not swap back again
    docs, versions = index_documents(cfg)
    assert set(docs) == set(want)
    assert all(versions[lid] == row["version"] for lid, row in want.items())
    assert {d["text_model"] for d in docs.values()} == {f"{cfg.embed.text_model.name}/{stack.text_v1}"}
    assert all(docs[lid].get("title") == t for lid, t in retitled.items())
    rows = {r["index"]: r for r in control.generations_table(cfg).rows()}
    assert rows[stack.g1]["state"] == "live" and rows[gen.index]["state"] == "retired"

    # retention keeps a generation retired less than index.retention_hours ago, deletes it later
    assert lifecycle.retention(cfg) == []
    future = time.time() + 3600 * (cfg.index.retention_hours + 1)
    from datetime import UTC, datetime

    assert lifecycle.retention(cfg, now=datetime.fromtimestamp(future, UTC)) == [gen.index]
    client = make_client(cfg)
    try:
        assert not client.indices.exists(index=gen.index)
        assert generations.alias_map(client, cfg.index) == {"live": stack.g1}
    finally:
        client.close()
    with pytest.raises(IndexStateError, match="nothing to roll back to"):
        lifecycle.rollback(cfg)

    assert stack.loop.failures == [] and stack.loop.ok > 20, (stack.loop.ok, stack.loop.failures[:3])


def test_a_broken_model_fails_the_gate_and_cannot_go_live(
    stack: Stack, spark: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    from vectorlake.pipeline.publish import IndexWriter

    cfg = stack.cfg
    gen = lifecycle.create_generation(cfg, text_version=stack.text_broken)

    # the load crashes in its second bucket, then a second run resumes after the first
    real = IndexWriter.publish

    def crash_in_bucket_1(self: IndexWriter, spark: Any, keys: Any, batch_id: int, *a: Any, **k: Any) -> Any:
        if batch_id == 1 and "reindex" in a[0]:
            raise RuntimeError("simulated crash")
        return real(self, spark, keys, batch_id, *a, **k)

    monkeypatch.setattr(IndexWriter, "publish", crash_in_bucket_1)
    with pytest.raises(RuntimeError, match="simulated crash"):
        reindex.load(spark, cfg, gen.index)
    monkeypatch.setattr(IndexWriter, "publish", real)
    resumed = reindex.load(spark, cfg, gen.index)
    assert resumed.resumed == 1 and resumed.chunks == 3
    progress = [r for r in control.progress_table(cfg).rows() if r["index"] == gen.index]
    assert sorted(r["chunk"] for r in progress) == [0, 1, 2]  # each bucket recorded once
    docs, versions = _docs(cfg, gen.index)
    served = {lid: r for lid, r in _silver(cfg).items() if r["served"]}
    assert set(docs) == set(served) and all(versions[lid] == r["version"] for lid, r in served.items())
    report = gate.validate(cfg, gen.index)
    assert not report.passed
    failed = {line.split(":", 1)[0] for line in report.failures}
    assert "relevance" in failed, report.text()
    with pytest.raises(IndexStateError, match="failed its gate"):
        lifecycle.cutover(cfg, gen.index)
    client = make_client(cfg)
    try:
        assert generations.live_index(client, cfg.index.alias) == stack.g1
    finally:
        client.close()
    rows = {r["index"]: r for r in control.generations_table(cfg).rows()}
    assert rows[gen.index]["validation"] == "failed" and "relevance" in rows[gen.index]["validation_report"]
    assert lifecycle.abandon(cfg) == gen.index
    with pytest.raises(IndexStateError, match="no generation is building"):
        lifecycle.cutover(cfg)
    assert stack.loop.failures == [], stack.loop.failures[:3]
