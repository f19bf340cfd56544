"""Benchmark (not a test): the embedding stage on a GPU against the raw fp16 forward pass of the same models.

    .venv/bin/python bench/bench_embed_gpu.py [--n 20000] [--images 2000] [--batch-sizes 64,256,1024,4096]
                                              [--image-batch-sizes 64,256,1024] [--repeats 3] [--out PATH]
    .venv/bin/python bench/bench_embed_gpu.py --device cpu --n 200 --images 32    # smoke check, no GPU
    python3 bench/bench_embed_gpu.py --text-model DIR --image-model DIR           # prebuilt model folders

``--text-model`` / ``--image-model`` take model folders that `registry.build_artifact` wrote beforehand
instead of building them from ``embed.*_model.source``: a GPU machine without the source packages (or room
for them) runs the bench that way.

On a machine without CUDA (and without ``--device cpu``) it exits 2 with a one-line message.

Text: the listing texts of `bench_embed.py` (``--n`` generated listings through ``modelinput.text_input``).

- ours: ``TextEncoder.encode(texts)`` end to end (one tokenizer call on the host, window chunking,
  length-sorted batches, host-to-device copies, fp16 forward, pooling, copy back), at the configured
  ``embed.batch_size`` and at each size of ``--batch-sizes``;
- ceiling: the model's forward alone (``SentenceTransformer.forward``, fp16, ``torch.inference_mode``) over
  the same texts tokenized beforehand (same windows, sorted by length, padded per batch, already on the
  GPU), for each size of ``--batch-sizes``; the best is the ceiling.

Images: ``--images`` JPEGs from the generator (320x240 crops of scikit-image photos).

- ours: ``ImageEncoder.encode(jpegs)`` end to end (PIL decode with draft, the model's preprocessing, batch
  forward, normalization), at the configured batch size and at each of ``--image-batch-sizes``;
- ceiling: ``model.encode_image`` alone on preprocessed tensors already on the GPU, per batch size; best.

Each measurement is warmed up, then timed ``--repeats`` times (best kept), with ``torch.cuda.synchronize``
around the clock. Prints items/s and the ratio ours / ceiling (1.0 would mean the stage adds nothing to the
model's own cost), and writes ``bench/results/embed_gpu.json`` (``--out``; a ``--device cpu`` run writes
nothing unless ``--out`` is given).
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import json
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from bench_embed import library_state, listing_texts, machine_facts

from vectorlake.argtypes import OneLineParser, positive_int
from vectorlake.config import Config, load_config
from vectorlake.embed import encoders, registry
from vectorlake.generate import GeneratorSpec, generate

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_OUT = ROOT / "bench" / "results" / "embed_gpu.json"
SEED = 11


def _sizes(text: str) -> tuple[int, ...]:
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise argparse.ArgumentTypeError("expected a comma-separated list like 64,256,1024")
    return tuple(positive_int(p) for p in parts)


def _model_dir(text: str) -> Path:
    path = Path(text)
    if not path.is_dir():
        raise argparse.ArgumentTypeError(f"{text} is not a model folder")
    return path


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    p = OneLineParser(prog="bench_embed_gpu.py", description=__doc__.splitlines()[0] if __doc__ else None)
    p.add_argument("--device", choices=("cuda", "cpu"), default="cuda", help="cpu: a smoke check only")
    p.add_argument("--n", type=positive_int, default=20_000, help="texts (listings)")
    p.add_argument("--images", type=positive_int, default=2_000, help="JPEGs")
    p.add_argument("--batch-sizes", type=_sizes, default=(64, 256, 1024, 4096), help="text batch sweep")
    p.add_argument("--image-batch-sizes", type=_sizes, default=(64, 256, 1024), help="image batch sweep")
    p.add_argument("--repeats", type=positive_int, default=3, help="timed runs per measurement; best kept")
    p.add_argument("--out", type=Path, default=None, help=f"default {DEFAULT_OUT} (cuda runs only)")
    p.add_argument("--text-model", type=_model_dir, default=None, help="a prebuilt text model folder")
    p.add_argument("--image-model", type=_model_dir, default=None, help="a prebuilt image model folder")
    return p.parse_args(argv)


def best_seconds(fn: Callable[[], Any], repeats: int, sync: Callable[[], None]) -> float:
    fn()  # warm-up: kernels, allocator, cuDNN autotuning
    sync()
    best = float("inf")
    for _ in range(repeats):
        began = time.perf_counter()
        fn()
        sync()
        best = min(best, time.perf_counter() - began)
    return best


def generated_jpegs(n: int) -> list[bytes]:
    spec = GeneratorSpec(seed=SEED, listings=max(10, n // 2), events=max(10, n // 2), image_rate=1.0)
    images = list(generate(spec, image_root=tempfile.gettempdir()).images.values())
    return [images[i % len(images)] for i in range(n)]


def text_ceiling(enc: encoders.TextEncoder, texts: Sequence[str], batch: int) -> Callable[[], None]:
    """The fp16 forward alone over pre-tokenized, length-sorted, padded batches already on the device."""
    import torch

    chunks = sorted((c for cs in enc.chunk_ids(texts) for c in cs), key=len, reverse=True)
    batches = []
    for start in range(0, len(chunks), batch):
        rows = chunks[start : start + batch]
        ids: np.ndarray = np.zeros((len(rows), len(rows[0])), dtype=np.int64)
        mask = np.zeros_like(ids)
        for r, c in enumerate(rows):
            ids[r, : len(c)] = c
            mask[r, : len(c)] = 1
        t_ids = torch.from_numpy(ids).to(enc.device)
        batches.append(
            {
                "input_ids": t_ids,
                "attention_mask": torch.from_numpy(mask).to(enc.device),
                "token_type_ids": torch.zeros_like(t_ids),
            }
        )
    model = enc._model  # the same module TextEncoder runs

    def run() -> None:
        with torch.inference_mode():
            for features in batches:
                model.forward(dict(features))["sentence_embedding"]

    return run


def image_ceiling(
    enc: encoders.ImageEncoder, jpegs: Sequence[bytes], batch: int
) -> tuple[Callable[[], None], int]:
    """``encode_image`` alone on one preprocessed batch already on the device, run over and over; items."""
    import torch

    tensors = [enc._decode(j)[0] for j in jpegs[:batch]]
    pixels = torch.stack([t for t in tensors if t is not None]).to(device=enc.device, dtype=enc.dtype)
    reps = max(1, len(jpegs) // len(pixels))
    model = enc._model

    def run() -> None:
        with torch.inference_mode():
            for _ in range(reps):
                model.encode_image(pixels)

    return run, reps * len(pixels)


def measure_text(
    args: argparse.Namespace, cfg: Config, text_dir: Path, texts: Sequence[str], sync: Callable[[], None]
) -> dict[str, Any]:
    """Ours per batch size; plain ``SentenceTransformer.encode`` (tokenizes, truncates at the model's
    maximum length) per batch size; the fp16 forward alone per batch size."""
    ours: dict[int, float] = {}
    for batch in sorted({cfg.embed.batch_size, *args.batch_sizes}):
        enc = encoders.load_text_encoder(
            str(text_dir), args.device, batch, cfg.embed.chunk_overlap_tokens, None
        )
        ours[batch] = args.n / best_seconds(functools.partial(enc.encode, texts), args.repeats, sync)
        print(f"text ours     batch {batch:>5}: {ours[batch]:>10,.0f} items/s", flush=True)
    plain: dict[int, float] = {}
    for batch in args.batch_sizes:
        run = functools.partial(enc._model.encode, list(texts), batch_size=batch, show_progress_bar=False)
        plain[batch] = args.n / best_seconds(run, args.repeats, sync)
        print(f"text plain    batch {batch:>5}: {plain[batch]:>10,.0f} items/s", flush=True)
    ceiling: dict[int, float] = {}
    for batch in args.batch_sizes:
        ceiling[batch] = args.n / best_seconds(text_ceiling(enc, texts, batch), args.repeats, sync)
        print(f"text ceiling  batch {batch:>5}: {ceiling[batch]:>10,.0f} items/s", flush=True)
    best_ceiling = max(ceiling.values())
    # the same vectors as plain encode where no text is cut into windows (fp16 on a GPU: not bit-equal)
    single = [t for t, cs in zip(texts, enc.chunk_ids(texts), strict=True) if len(cs) == 1][:2000]
    cosines = np.sum(enc.encode(single) * enc._model.encode(single, normalize_embeddings=True), axis=1)
    print(f"text ours vs plain on {len(single)} one-window texts: min cosine {cosines.min():.5f}")
    result = {
        "min_cosine_vs_plain_encode": round(float(cosines.min()), 5),
        "n": args.n,
        "tokens_per_text_mean": round(float(np.mean([len(c) for cs in enc.chunk_ids(texts) for c in cs])), 1),
        "dtype": str(enc._model[0].auto_model.dtype),
        "ours_items_per_s": {str(k): round(v, 1) for k, v in ours.items()},
        "plain_encode_items_per_s": {str(k): round(v, 1) for k, v in plain.items()},
        "ceiling_items_per_s": {str(k): round(v, 1) for k, v in ceiling.items()},
        "ratio_at_config_batch": round(ours[cfg.embed.batch_size] / best_ceiling, 3),
        "ratio_best": round(max(ours.values()) / best_ceiling, 3),
        "ours_over_plain_best": round(max(ours.values()) / max(plain.values()), 3),
    }
    encoders.load_text_encoder.cache_clear()
    return result


def measure_image(
    args: argparse.Namespace, cfg: Config, image_dir: Path, jpegs: Sequence[bytes], sync: Callable[[], None]
) -> dict[str, Any]:
    """Ours per batch size (the stage's own decode threads) and per decode-thread count at the configured
    batch size; ``encode_image`` alone per batch size."""
    ours: dict[int, float] = {}
    for batch in sorted({cfg.embed.batch_size, *args.image_batch_sizes}):
        ienc = encoders.load_image_encoder(str(image_dir), args.device, batch, None)
        ours[batch] = args.images / best_seconds(functools.partial(ienc.encode, jpegs), args.repeats, sync)
        print(f"image ours    batch {batch:>5}: {ours[batch]:>10,.0f} items/s", flush=True)
    stage_threads = ienc._pool._max_workers if ienc._pool else 1
    by_threads: dict[int, float] = {}
    for threads in sorted({1, 4, stage_threads}):
        enc = encoders.ImageEncoder(
            ienc._model, ienc.preprocess, ienc.device, ienc.dtype, cfg.embed.batch_size, threads
        )
        by_threads[threads] = args.images / best_seconds(
            functools.partial(enc.encode, jpegs), args.repeats, sync
        )
        print(f"image ours  threads {threads:>5}: {by_threads[threads]:>10,.0f} items/s", flush=True)
    ceiling: dict[int, float] = {}
    for batch in args.image_batch_sizes:
        run, items = image_ceiling(ienc, jpegs, batch)
        ceiling[batch] = items / best_seconds(run, args.repeats, sync)
        print(f"image ceiling batch {batch:>5}: {ceiling[batch]:>10,.0f} items/s", flush=True)
    best = max(ceiling.values())
    return {
        "n": args.images,
        "jpeg": "320x240, quality 85",
        "decode_threads": stage_threads,
        "ours_items_per_s": {str(k): round(v, 1) for k, v in ours.items()},
        "ours_by_decode_threads_items_per_s": {str(k): round(v, 1) for k, v in by_threads.items()},
        "ceiling_items_per_s": {str(k): round(v, 1) for k, v in ceiling.items()},
        "ratio_at_config_batch": round(ours[cfg.embed.batch_size] / best, 3),
        "ratio_best": round(max(ours.values()) / best, 3),
    }


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    import torch

    if args.device == "cuda" and not torch.cuda.is_available():
        print(
            "bench_embed_gpu.py: no CUDA device here (use a GPU machine, or --device cpu for a smoke check)",
            file=sys.stderr,
        )
        return 2
    cfg = load_config()
    out_path = args.out or (DEFAULT_OUT if args.device == "cuda" else None)

    def sync() -> None:
        if args.device == "cuda":
            torch.cuda.synchronize()

    began = time.perf_counter()
    texts = listing_texts(cfg, args.n)
    jpegs = generated_jpegs(args.images)
    with tempfile.TemporaryDirectory(prefix="vectorlake-bench-embed-gpu-") as tmp:
        text_dir = args.text_model or registry.build_artifact(
            "text", cfg.embed.text_model.source, Path(tmp) / "text"
        )
        image_dir = args.image_model or registry.build_artifact(
            "image", cfg.embed.image_model.source, Path(tmp) / "image"
        )
        results = {
            "text": measure_text(args, cfg, text_dir, texts, sync),
            "image": measure_image(args, cfg, image_dir, jpegs, sync),
        }
    for role in ("text", "image"):
        r = results[role]
        print(
            f"{role}: ours at batch {cfg.embed.batch_size} / ceiling {r['ratio_at_config_batch']:.2f}, "
            f"best ours / ceiling {r['ratio_best']:.2f}"
        )
    over_plain = results["text"]["ours_over_plain_best"]
    print(f"text: best ours / best plain SentenceTransformer.encode {over_plain:.2f}")
    if out_path is None:
        print("(--device cpu: smoke check, no JSON written; pass --out to keep it)")
        return 0
    result = {
        "bench": "embed_gpu",
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": " ".join([".venv/bin/python", "bench/bench_embed_gpu.py", *sys.argv[1:]]),
        "wall_s": round(time.perf_counter() - began, 1),
        "device": args.device,
        "machine": machine_facts(),
        "library": library_state(),
        "config_batch_size": cfg.embed.batch_size,
        "models": {
            "text": str(args.text_model) if args.text_model else cfg.embed.text_model.source,
            "image": str(args.image_model) if args.image_model else cfg.embed.image_model.source,
        },
        "results": results,
    }
    out_path.parent.mkdir(parents=True, exist_ok=True)
    out_path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
