"""Benchmark (not a test): the query service's QPS and latency against raw OpenSearch, same run.

    .venv/bin/python bench/bench_serve.py [--docs 5000] [--seconds 10] [--clients 1,4,16] [--out PATH]

A generation of N listing documents (random unit vectors of the registered models' dimensions, 384-d text,
1280-d image, 1664-d fused) is built behind an alias of its own, with the models' labels in its ``_meta``,
before any clock starts. `vectorlake serve` is then started on a free port for that alias and waited on
until ``/healthz`` says its models are loaded. For each number of concurrent clients (threads of this
process, each with its own keep-alive connection) two loads take turns for ``--seconds`` each:

- service: ``POST /search {"text": q, "k": 10}``, the query embedded by the service (text model on CPU);
- raw: the same k-NN body the service sends (``index.search.knn_query``: k 10, ``index.ef_search``) sent
  straight to OpenSearch's ``_search`` with the query's vector precomputed here (the floor: no embedding,
  no service hop).

The queries are 60 product phrases, cycled. Recorded per load: requests, QPS, P50/P99 latency in ms.
Prints ratio = service QPS / raw QPS per client count; targets (issue 22): service P99 under 100 ms at 4
clients, ratio at least 0.7 at 16. Writes ``bench/results/serve.json`` (``--out``) with the machine's
facts, stops the service and deletes the index. The clients, the service, OpenSearch and the model share
the machine's cores.
"""

from __future__ import annotations

import argparse
import datetime as dt
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import benchlib
import numpy as np

from vectorlake.argtypes import OneLineParser, positive_int
from vectorlake.config import Config, load_config
from vectorlake.embed import registry
from vectorlake.embed.encoders import load_text_encoder, model_dim
from vectorlake.embed.modelinput import text_input
from vectorlake.index import generations
from vectorlake.index.client import make_client
from vectorlake.index.mappings import index_body
from vectorlake.index.search import Filters, knn_query

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "serve.json"
K = 10
NOUNS = ("chair", "table", "lamp", "bag", "scarf", "shoe", "jacket", "sofa", "watch", "mug", "desk", "rug")
ADJECTIVES = ("red", "steel", "leather", "wooden", "vintage")
QUERIES = [f"{a} {n}" for a in ADJECTIVES for n in NOUNS]  # 60


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(prog="bench_serve.py", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--docs", type=positive_int, default=5000, help="documents in the generation")
    p.add_argument("--seconds", type=positive_int, default=10, help="seconds of each load at each level")
    p.add_argument("--clients", default="1,4,16", help="comma-separated concurrent client counts")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the JSON results go")
    args = p.parse_args(argv)
    try:
        args.clients = [int(c) for c in args.clients.split(",")]
    except ValueError:
        p.error(f"--clients: expected comma-separated integers, got {args.clients!r}")
    if not args.clients or min(args.clients) < 1:
        p.error("--clients: every count must be at least 1")
    return args


def build_generation(cfg: Config, n: int) -> tuple[str, int, int]:
    """The bench's generation behind its alias: n documents of random unit vectors; its index name."""
    from opensearchpy import helpers

    text, image = registry.resolve(cfg, "text"), registry.resolve(cfg, "image")
    text_dim, image_dim = model_dim("text", text.path), model_dim("image", image.path)
    meta = {
        "text_model": text.label,
        "image_model": image.label,
        "text_dim": text_dim,
        "image_dim": image_dim,
    }
    rng = np.random.default_rng(7)

    def unit(dim: int) -> list[float]:
        v = rng.standard_normal(dim).astype(np.float32)
        return [float(x) for x in v / np.linalg.norm(v)]

    name = generations.generation_name(cfg.index.alias, 1)
    body = index_body(cfg.index, text_dim, image_dim, meta)
    body["aliases"] = {cfg.index.alias: {"is_write_index": True}}
    client = make_client(cfg)
    try:
        client.indices.create(index=name, body=body)
        docs = (
            {"_index": name, "_id": f"l-{i:07d}", "listing_id": f"l-{i:07d}", "title": QUERIES[i % 60],
             "text_vector": unit(text_dim), "image_vector": unit(image_dim),
             "fused_vector": unit(text_dim + image_dim)}
            for i in range(n)
        )  # fmt: skip
        helpers.bulk(client, docs, chunk_size=250, request_timeout=300)
        client.indices.refresh(index=name)
        client.indices.forcemerge(index=name, max_num_segments=1, request_timeout=600)
    finally:
        client.close()
    return name, text_dim, image_dim


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_service(env: dict[str, str], port: int) -> subprocess.Popen[bytes]:
    vl = str(ROOT / ".venv" / "bin" / "vectorlake")
    proc = subprocess.Popen(
        [vl, "serve", "--port", str(port)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            time.sleep(1)
    proc.kill()
    raise SystemExit("bench_serve: the service did not become healthy within 300 s")


Request = Callable[[http.client.HTTPConnection, int], None]


def service_request(port: int) -> tuple[str, int, Request]:
    def send(conn: http.client.HTTPConnection, i: int) -> None:
        body = json.dumps({"text": QUERIES[i % len(QUERIES)], "k": K})
        conn.request("POST", "/search", body, {"content-type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"service: HTTP {resp.status}: {data[:200]!r}")

    return "127.0.0.1", port, send


def raw_request(cfg: Config, index: str, vectors: list[list[float]]) -> tuple[str, int, Request]:
    bodies = [json.dumps(knn_query("text_vector", v, K, Filters(), cfg.index.ef_search)) for v in vectors]

    def send(conn: http.client.HTTPConnection, i: int) -> None:
        conn.request(
            "POST", f"/{index}/_search", bodies[i % len(bodies)], {"content-type": "application/json"}
        )
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise RuntimeError(f"raw: HTTP {resp.status}: {data[:200]!r}")

    return "127.0.0.1", cfg.opensearch.port, send


def load(target: tuple[str, int, Request], clients: int, seconds: float) -> dict[str, Any]:
    """``clients`` threads sending requests back to back for ``seconds``; QPS and latency percentiles."""
    host, port, send = target
    latencies: list[list[float]] = [[] for _ in range(clients)]
    errors: list[str] = []
    stop = threading.Event()

    def worker(w: int) -> None:
        conn = http.client.HTTPConnection(host, port, timeout=60)
        i = w
        try:
            while not stop.is_set():
                t0 = time.perf_counter()
                send(conn, i)
                latencies[w].append(time.perf_counter() - t0)
                i += clients
        except Exception as e:  # recorded: a load with errors is reported, not hidden
            errors.append(f"{type(e).__name__}: {e}")
        finally:
            conn.close()

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(clients)]
    t0 = time.perf_counter()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    wall = time.perf_counter() - t0
    flat = sorted(x for lat in latencies for x in lat)
    return {
        "requests": len(flat),
        "errors": errors[:5],
        "qps": round(len(flat) / wall, 1),
        "p50_ms": round(1000 * statistics.median(flat), 1) if flat else None,
        "p99_ms": round(1000 * flat[min(len(flat) - 1, int(0.99 * len(flat)))], 1) if flat else None,
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    alias = f"bench-serve-{uuid.uuid4().hex[:8]}"
    env = dict(os.environ) | {"VECTORLAKE__INDEX__ALIAS": alias}
    cfg = load_config(environ=env)
    registry.register_all(cfg)
    t0 = time.perf_counter()
    index, _, _ = build_generation(cfg, args.docs)
    print(f"generation {index}: {args.docs} documents in {time.perf_counter() - t0:.0f} s")
    ref, e = registry.resolve(cfg, "text"), cfg.embed
    encoder = load_text_encoder(ref.path, e.device, e.batch_size, e.chunk_overlap_tokens, e.torch_threads)
    vectors = [
        [float(x) for x in v] for v in encoder.encode([text_input(q, None, None, None, ()) for q in QUERIES])
    ]
    port = free_port()
    proc = start_service(env, port)
    levels = []
    try:
        service, raw = service_request(port), raw_request(cfg, index, vectors)
        load(service, 2, 3)  # warm-up: both paths, untimed
        load(raw, 2, 3)
        for i, clients in enumerate(args.clients):
            order = [("service", service), ("raw", raw)]
            results = {
                name: load(target, clients, args.seconds)
                for name, target in order[:: 1 if i % 2 == 0 else -1]
            }
            ratio = results["service"]["qps"] / results["raw"]["qps"] if results["raw"]["qps"] else None
            levels.append({"clients": clients, **results, "qps_ratio": round(ratio, 3) if ratio else None})
            s, r = results["service"], results["raw"]
            print(
                f"{clients:3d} clients: service {s['qps']:7.1f} q/s P50 {s['p50_ms']} ms "
                f"P99 {s['p99_ms']} ms | raw {r['qps']:7.1f} q/s P50 {r['p50_ms']} ms "
                f"P99 {r['p99_ms']} ms | ratio {ratio:.3f}"
            )
    finally:
        proc.terminate()
        proc.wait(timeout=60)
        client = make_client(cfg)
        client.indices.delete(index=index)
        client.close()
    out = {
        "bench": "serve",
        "when": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "code": benchlib.library_state([], ["vectorlake/serve", "vectorlake/query.py"]),
        "machine": benchlib.machine("fastapi", "uvicorn", "torch", "opensearch-py"),
        "docs": args.docs,
        "seconds_per_load": args.seconds,
        "k": K,
        "ef_search": cfg.index.ef_search,
        "text_model": ref.label,
        "device": e.device,
        "levels": levels,
        "targets": {"p99_ms_at_4_clients": 100, "qps_ratio_at_16_clients": 0.7},
        "note": "clients, service, model and OpenSearch share the machine's cores",
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"results: {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
