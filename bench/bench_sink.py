"""Benchmark (not a test): docs/s of our bulk sink against opensearch-py's ``parallel_bulk``, same run.

    .venv/bin/python bench/bench_sink.py [--docs 2500] [--repeats 4] [--concurrency 2] [--out PATH]

N synthetic listing documents of realistic size (a 384-d text vector, a 1280-d image vector and their
1664-d fused vector, all float32 made into Python floats as the embedding stage hands them over, plus the
metadata fields of DESIGN.md) are made once, before any clock starts. Each repeat then indexes all N, as
new documents with external versions (``version_type=external_gte``), into two fresh indexes created from
``index_body`` with the project's index config, each behind its own alias:

- raw: ``opensearchpy.helpers.parallel_bulk(thread_count=2)`` with ``chunk_size=sink.bulk_docs`` and
  ``max_chunk_bytes=sink.bulk_bytes``, the same ``_id``/version/version_type, every result consumed;
- ours: ``vectorlake.index.sink.write`` (``--concurrency`` requests in flight, default 2), which also
  classifies every item, keeps a result per action and would retry 429/5xx items.

The two take turns and the one that goes first alternates by repeat. Timed: from the first action to
the last response (no refresh forced, as in the pipeline); afterwards each index is refreshed and its count
checked against N (untimed). The CPU seconds of this process (the client side: serialization, HTTP,
response parsing) are recorded beside the wall time; OpenSearch shares the machine's cores. Prints the
median docs/s of each and ratio = ours docs/s / raw docs/s (the target is at least 0.8), writes
``bench/results/sink.json`` (``--out``) with the machine's facts, and deletes the indexes.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import json
import os
import platform
import statistics
import subprocess
import sys
import time
import uuid
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import benchlib
import numpy as np

from vectorlake.argtypes import OneLineParser, positive_int
from vectorlake.config import Config, load_config
from vectorlake.index import sink
from vectorlake.index.client import make_client
from vectorlake.index.mappings import index_body

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "sink.json"
TEXT_DIM, IMAGE_DIM = 384, 1280
SEED = 7
TARGET_RATIO = 0.8


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(prog="bench_sink.py", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--docs", type=positive_int, default=2500, help="documents per run")
    p.add_argument("--repeats", type=positive_int, default=4, help="runs of each, alternating who goes first")
    p.add_argument(
        "--concurrency", type=positive_int, default=sink.DEFAULT_CONCURRENCY, help="ours: requests in flight"
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the JSON results go")
    return p.parse_args(argv)


def make_docs(n: int) -> list[dict[str, Any]]:
    """N listing documents; vectors are unit-length float32, handed over as Python floats."""
    rng = np.random.default_rng(SEED)

    def unit(dim: int) -> np.ndarray:
        v = rng.standard_normal((n, dim), dtype=np.float32)
        out: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
        return out

    text, image = unit(TEXT_DIM), unit(IMAGE_DIM)
    fused = np.concatenate([text, image], axis=1) / np.float32(np.sqrt(2.0))
    docs = []
    for i in range(n):
        docs.append(
            {
                "listing_id": f"L{i:08d}",
                "seller_id": f"S{i % 997:05d}",
                "title": f"Vintage leather bag no. {i} in excellent condition",
                "category_id": f"c{i % 40}",
                "category_path": ["c0", f"c{i % 8}", f"c{i % 40}"],
                "locale": ("en-US", "de-DE", "fr-FR")[i % 3],
                "attributes": {"brand": f"brand-{i % 50}", "color": ("red", "blue", "black")[i % 3]},
                "image_id": f"img-{i:08d}",
                "policy_status": "ACTIVE",
                "event_ts": 1_790_000_000_000 + i,
                "indexed_at": "2026-11-23T00:00:00Z",
                "version": 1 + i % 5,
                "text_model": "vectorlake-text-encoder/1",
                "image_model": "vectorlake-image-encoder/1",
                "text_vector": text[i].tolist(),
                "image_vector": image[i].tolist(),
                "fused_vector": fused[i].tolist(),
            }
        )
    return docs


def run_raw(client: Any, alias: str, docs: Sequence[dict[str, Any]], cfg: Config) -> float:
    from opensearchpy.helpers import parallel_bulk

    actions = (
        {
            "_index": alias,
            "_id": d["listing_id"],
            "_version": d["version"],
            "_version_type": "external_gte",
            "_source": d,
        }
        for d in docs
    )
    began = time.perf_counter()
    failed = 0
    for ok, _ in parallel_bulk(
        client,
        actions,
        thread_count=2,
        chunk_size=cfg.sink.bulk_docs,
        max_chunk_bytes=cfg.sink.bulk_bytes,
        raise_on_error=False,
    ):
        failed += not ok
    seconds = time.perf_counter() - began
    if failed:
        raise RuntimeError(f"raw: {failed} documents failed")
    return seconds


def run_ours(client: Any, alias: str, docs: Sequence[dict[str, Any]], cfg: Config, concurrency: int) -> float:
    began = time.perf_counter()
    actions = [sink.Upsert(d["listing_id"], d["version"], d) for d in docs]
    results = sink.write(client, alias, actions, cfg.sink, concurrency=concurrency)
    seconds = time.perf_counter() - began
    tally = sink.counts(results)
    if tally["applied"] != len(docs):
        raise RuntimeError(f"ours: {tally}")
    return seconds


def fresh_index(client: Any, cfg: Config, name: str) -> str:
    """A new index from index_body with an alias of its own (the sink writes to aliases only)."""
    body = index_body(cfg.index, TEXT_DIM, IMAGE_DIM, {"bench": "sink"})
    body["aliases"] = {f"{name}-alias": {"is_write_index": True}}
    client.indices.create(index=name, body=body)
    return f"{name}-alias"


def check(client: Any, alias: str, n: int) -> None:
    client.indices.refresh(index=alias)
    count = client.count(index=alias)["count"]
    if count != n:
        raise RuntimeError(f"{alias}: {count} documents, expected {n}")


def machine_facts(client: Any) -> dict[str, Any]:
    info = client.info()["version"]
    return {
        "cores": os.cpu_count(),
        "memory_gib": benchlib.memory_gib(),
        "platform": platform.platform(),
        "cpu": benchlib.cpu_model(),
        "python": platform.python_version(),
        "opensearch_py": benchlib.version("opensearch-py"),
        "opensearch": info["number"],
        "lucene": info.get("lucene_version"),
        "note": "OpenSearch runs on the same machine, sharing its cores with the client",
    }


def commit() -> str:
    try:
        done = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=False
        )
    except OSError:
        return ""
    return done.stdout.strip()


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    cfg = load_config()
    client = make_client(cfg)
    began = time.perf_counter()
    print(
        f"making {args.docs} documents (vectors {TEXT_DIM} + {IMAGE_DIM} + {TEXT_DIM + IMAGE_DIM} dims)",
        flush=True,
    )
    docs = make_docs(args.docs)
    body_bytes = len(json.dumps(docs[0], separators=(",", ":")))
    run_id = uuid.uuid4().hex[:8]
    seconds: dict[str, list[float]] = {"raw": [], "ours": []}
    cpu: dict[str, list[float]] = {"raw": [], "ours": []}
    created: list[str] = []
    try:
        for repeat in range(args.repeats):
            order = ("raw", "ours") if repeat % 2 == 0 else ("ours", "raw")
            for name in order:
                index = f"bench-sink-{run_id}-{name}-{repeat}"
                created.append(index)
                alias = fresh_index(client, cfg, index)
                cpu_began = time.process_time()
                if name == "raw":
                    s = run_raw(client, alias, docs, cfg)
                else:
                    s = run_ours(client, alias, docs, cfg, args.concurrency)
                cpu[name].append(time.process_time() - cpu_began)
                check(client, alias, args.docs)
                seconds[name].append(s)
                print(
                    f"repeat {repeat} {name:>4}: {s:7.2f} s  {args.docs / s:8,.0f} docs/s  "
                    f"client CPU {cpu[name][-1]:6.2f} s  (load {os.getloadavg()[0]:.1f})",
                    flush=True,
                )
                client.indices.delete(index=index)  # keep the node's heap and disk for the next run
                created.remove(index)
    finally:
        for index in created:
            with contextlib.suppress(Exception):
                client.indices.delete(index=index)
    raw_s, ours_s = statistics.median(seconds["raw"]), statistics.median(seconds["ours"])
    raw_dps, ours_dps = args.docs / raw_s, args.docs / ours_s
    ratio = ours_dps / raw_dps
    print(f"\n{'':>6} {'median s':>10} {'docs/s':>10}")
    print(f"{'raw':>6} {raw_s:10.2f} {raw_dps:10,.0f}")
    print(f"{'ours':>6} {ours_s:10.2f} {ours_dps:10,.0f}")
    verdict = "meets" if ratio >= TARGET_RATIO else "BELOW"
    print(f"ratio ours/raw docs/s: {ratio:.3f} ({verdict} the target {TARGET_RATIO})")
    out = {
        "bench": "sink",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "bench/bench_sink.py", *sys.argv[1:]]),
        "wall_s": round(time.perf_counter() - began, 1),
        "commit": commit(),
        "machine": machine_facts(client),
        "design": {
            "docs": args.docs,
            "repeats": args.repeats,
            "dims": {"text": TEXT_DIM, "image": IMAGE_DIM, "fused": TEXT_DIM + IMAGE_DIM},
            "source_bytes_per_doc": body_bytes,
            "bulk_docs": cfg.sink.bulk_docs,
            "bulk_bytes": cfg.sink.bulk_bytes,
            "raw": "opensearchpy.helpers.parallel_bulk, thread_count=2, same chunk limits and versions",
            "ours_concurrency": args.concurrency,
            "index": {
                "engine": cfg.index.engine,
                "space_type": cfg.index.space_type,
                "m": cfg.index.m,
                "ef_construction": cfg.index.ef_construction,
                "shards": cfg.index.shards,
                "replicas": cfg.index.replicas,
            },
        },
        "results": {
            "raw_s": [round(s, 3) for s in seconds["raw"]],
            "ours_s": [round(s, 3) for s in seconds["ours"]],
            "raw_client_cpu_s": [round(s, 3) for s in cpu["raw"]],
            "ours_client_cpu_s": [round(s, 3) for s in cpu["ours"]],
            "raw_docs_per_s": round(raw_dps, 1),
            "ours_docs_per_s": round(ours_dps, 1),
            "ratio": round(ratio, 3),
            "target": TARGET_RATIO,
            "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
        },
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"wrote {args.out}")
    client.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
