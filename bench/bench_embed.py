"""Benchmark (not a test): text embedding items/s on CPU, ours against plain SentenceTransformer.encode.

    .venv/bin/python bench/bench_embed.py [--n 2000] [--repeats 3] [--threads N] [--batch-size B] [--out PATH]

Texts are the model input of real-looking listings: the seeded generator (`vectorlake.generate`) makes
``--n`` listings and each listing's first full UPSERT (poison lines the ingest would quarantine are skipped)
becomes ``modelinput.text_input(title, description, category_id, attributes, embed.text_attributes)``.
In one process, on the same texts, with the same torch threads (``--threads``, default
``embed.torch_threads`` or torch's default) and the same batch size (``--batch-size``, default
``embed.batch_size``):

- ours: ``TextEncoder.encode(texts)`` (one tokenizer call, length-sorted batches, window chunking);
- baseline: ``SentenceTransformer.encode(texts, batch_size=B, normalize_embeddings=True)``;
- stage (unless ``--no-spark``): the embedding stage as the pipeline runs it, the iterator pandas UDF
  (`vectorlake.embed.stage.text_udf`) over a DataFrame of the same texts in ``spark.default.parallelism``
  partitions, each Python worker with ``cores / parallelism`` torch threads (so the same threads in all),
  materialized with a local checkpoint; warmed up on 256 texts first (workers started, models loaded).

Both load the same model folder (``registry.build_artifact("text", embed.text_model.source)`` in a temporary
folder: the files the registry holds). Each is warmed up on 256 texts, then timed ``--repeats`` times, taking
turns (which goes first alternates); the best time of each is reported. Prints items/s of each and the ratio
(ours / baseline items/s; above 1 is faster) and writes ``bench/results/embed_cpu.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import benchlib
import numpy as np

from vectorlake.argtypes import OneLineParser, positive_int
from vectorlake.config import Config, load_config
from vectorlake.contracts import MAX_DESCRIPTION_BYTES
from vectorlake.embed import encoders, modelinput, registry
from vectorlake.embed.fetch import FetchPolicy
from vectorlake.generate import GeneratorSpec, generate

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "embed_cpu.json"
SEED = 7
WARMUP = 256


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(prog="bench_embed.py", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--n", type=positive_int, default=2000, help="texts (listings)")
    p.add_argument("--repeats", type=positive_int, default=3, help="timed runs of each; the best is reported")
    p.add_argument(
        "--threads", type=positive_int, default=None, help="torch threads (default: config or torch's)"
    )
    p.add_argument(
        "--batch-size", type=positive_int, default=None, help="texts per forward (default: config)"
    )
    p.add_argument("--no-spark", action="store_true", help="skip the Spark stage measurement")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where the JSON goes")
    return p.parse_args(argv)


def spark_stage_seconds(cfg: Config, folder: Path, texts: list[str], batch: int, repeats: int) -> list[float]:
    """Seconds of each timed run of the pipeline's text UDF over `texts` on Spark (after a warm-up)."""
    from pyspark.sql import functions as F

    from vectorlake.embed import stage
    from vectorlake.spark import build_session

    spark = build_session(cfg, app_name="vectorlake-bench-embed")
    parallelism = max(1, spark.sparkContext.defaultParallelism)
    settings = stage.EncoderSettings(
        path=str(folder),
        device="cpu",
        batch_size=batch,
        overlap=cfg.embed.chunk_overlap_tokens,
        torch_threads=max(1, (os.cpu_count() or 1) // parallelism),
        fetch=FetchPolicy(timeout_s=1.0),  # text only: no image is fetched
    )
    udf: Any = stage.text_udf(settings)

    def frame(rows: list[str]) -> Any:
        df = spark.createDataFrame([(t,) for t in rows], "input string").repartition(parallelism)
        return df.localCheckpoint(eager=True)

    def run(df: Any) -> float:
        began = time.perf_counter()
        df.select(udf(F.col("input")).alias("vector")).localCheckpoint(eager=True)
        return time.perf_counter() - began

    run(frame(texts[:WARMUP]))
    data = frame(texts)
    out = []
    for repeat in range(repeats):
        out.append(run(data))
        print(f"repeat {repeat}: stage (Spark pandas UDF) {out[-1]:.2f} s", flush=True)
    return out


def listing_texts(cfg: Config, n: int) -> list[str]:
    """The text model input of ``n`` generated listings (their first full UPSERT), in listing order."""
    spec = GeneratorSpec(seed=SEED, listings=n, sellers=max(20, n // 10), events=n, image_rate=0.0)
    catalog = generate(spec, image_root=tempfile.gettempdir())
    texts: dict[str, str] = {}
    for line in catalog.listing_changes:
        try:
            event = json.loads(line)
        except ValueError:
            continue  # a poison line
        if not isinstance(event, dict) or event.get("op") != "UPSERT" or "title" not in event:
            continue
        listing_id, description = event.get("listing_id"), event.get("description")
        if not isinstance(listing_id, str) or listing_id in texts:
            continue
        if isinstance(description, str) and len(description.encode()) > MAX_DESCRIPTION_BYTES:
            continue  # a poison line the ingest quarantines (description_too_large)
        attrs = event.get("attributes")
        texts[listing_id] = modelinput.text_input(
            title=str(event.get("title") or ""),
            description=description if isinstance(description, str) else None,
            category_path=event.get("category_id") if isinstance(event.get("category_id"), str) else None,
            attributes={str(k): str(v) for k, v in attrs.items()} if isinstance(attrs, dict) else None,
            attribute_keys=cfg.embed.text_attributes,
        )
    out = [texts[k] for k in sorted(texts)]
    while len(out) < n:  # a few listings may only have poison or partial lines
        out.append(out[len(out) % len(texts)])
    return out[:n]


def library_state() -> dict[str, Any]:
    """The commit, uncommitted changes under vectorlake/embed, and a hash of each module measured."""
    return benchlib.library_state((encoders, modelinput), ("vectorlake/embed",))


def machine_facts() -> dict[str, Any]:
    import torch

    return {
        "cpu_count": os.cpu_count(),
        "cpu": benchlib.cpu_model(),
        "memory_gib": benchlib.memory_gib(),
        "platform": platform.platform(),
        "python": platform.python_version(),
        "torch": torch.__version__,
        "torch_threads": torch.get_num_threads(),
        "sentence_transformers": benchlib.version("sentence-transformers"),
        "transformers": benchlib.version("transformers"),
        "tokenizers": benchlib.version("tokenizers"),
        "cuda": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
        "loadavg_1m_at_end": round(os.getloadavg()[0], 2),
    }


def timed(fn: Callable[[], np.ndarray]) -> tuple[float, np.ndarray]:
    began = time.perf_counter()
    vectors = fn()
    return time.perf_counter() - began, vectors


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    cfg = load_config()
    import torch

    threads = args.threads or cfg.embed.torch_threads or torch.get_num_threads()
    batch = args.batch_size or cfg.embed.batch_size
    began = time.perf_counter()
    texts = listing_texts(cfg, args.n)
    with tempfile.TemporaryDirectory(prefix="vectorlake-bench-embed-") as tmp:
        folder = registry.build_artifact("text", cfg.embed.text_model.source, Path(tmp) / "text")
        ours = encoders.load_text_encoder(str(folder), "cpu", batch, cfg.embed.chunk_overlap_tokens, threads)
        from sentence_transformers import SentenceTransformer

        plain = SentenceTransformer(str(folder), device="cpu", local_files_only=True)
        torch.set_num_threads(threads)
        tokens = [len(c) for chunks in ours.chunk_ids(texts) for c in chunks]

        def run_ours() -> np.ndarray:
            return ours.encode(texts)

        def run_plain() -> np.ndarray:
            out: np.ndarray = plain.encode(
                texts,
                batch_size=batch,
                normalize_embeddings=True,
                convert_to_numpy=True,
                show_progress_bar=False,
            )
            return out

        ours.encode(texts[:WARMUP])
        plain.encode(texts[:WARMUP], batch_size=batch, show_progress_bar=False)
        seconds: dict[str, list[float]] = {"ours": [], "baseline": []}
        vectors: dict[str, np.ndarray] = {}
        for repeat in range(args.repeats):
            order = [("ours", run_ours), ("baseline", run_plain)]
            for name, fn in order if repeat % 2 == 0 else order[::-1]:
                took, vectors[name] = timed(fn)
                seconds[name].append(took)
            ours_s, base_s = seconds["ours"][-1], seconds["baseline"][-1]
            print(f"repeat {repeat}: ours {ours_s:.2f} s, baseline {base_s:.2f} s", flush=True)
        cosines = (vectors["ours"] * vectors["baseline"]).sum(axis=1)
        if not args.no_spark:
            seconds["stage"] = spark_stage_seconds(cfg, folder, texts, batch, args.repeats)
    best = {name: min(s) for name, s in seconds.items()}
    ips = {name: args.n / s for name, s in best.items()}
    ratio = ips["ours"] / ips["baseline"]
    print(
        f"\n{args.n} texts, {threads} torch threads, batch {batch}: ours {ips['ours']:,.0f} items/s, "
        f"SentenceTransformer.encode {ips['baseline']:,.0f} items/s, ratio {ratio:.2f} "
        f"(min cosine between the two {cosines.min():.6f})"
    )
    if "stage" in ips:
        print(
            f"the Spark stage (pandas UDF, same threads): {ips['stage']:,.0f} items/s, "
            f"ratio {ips['stage'] / ips['baseline']:.2f} against SentenceTransformer.encode"
        )
    result = {
        "bench": "embed_cpu",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "bench/bench_embed.py", *sys.argv[1:]]),
        "wall_s": round(time.perf_counter() - began, 1),
        "machine": machine_facts(),
        "library": library_state(),
        "design": {
            "texts": f"text_input of {args.n} generated listings (seed {SEED}), first full UPSERT each",
            "model": cfg.embed.text_model.source,
            "device": "cpu, fp32",
            "warmup": f"{WARMUP} texts each, untimed",
            "timing": f"{args.repeats} runs each, taking turns; best reported",
            "ratio": "ours items/s / SentenceTransformer.encode items/s",
            "stage_ratio": "Spark pandas-UDF stage items/s / SentenceTransformer.encode items/s",
        },
        "n": args.n,
        "batch_size": batch,
        "torch_threads": threads,
        "tokens_per_text": {
            "mean": round(statistics.fmean(tokens), 1),
            "max": max(tokens),
            "chunks": len(tokens),
        },
        "ours_items_per_s": round(ips["ours"], 1),
        "baseline_items_per_s": round(ips["baseline"], 1),
        "ratio": round(ratio, 3),
        "stage_items_per_s": round(ips["stage"], 1) if "stage" in ips else None,
        "stage_ratio": round(ips["stage"] / ips["baseline"], 3) if "stage" in ips else None,
        "stage_s": [round(s, 3) for s in seconds.get("stage", [])],
        "ours_s": [round(s, 3) for s in seconds["ours"]],
        "baseline_s": [round(s, 3) for s in seconds["baseline"]],
        "min_cosine_ours_vs_baseline": round(float(cosines.min()), 6),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
