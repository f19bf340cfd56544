"""The text and image encoders, each loaded once per worker process by a cached loader.

    enc = load_text_encoder(ref.path, "auto", batch_size=64, overlap=32, torch_threads=None)
    vectors = enc.encode(texts)          # (n, enc.dim) float32, unit rows

`TextEncoder` tokenizes a whole batch in one call, cuts a text longer than the model's window into
overlapping windows, runs the windows sorted by length (padded to each batch's longest) and pools a text's
window vectors weighted by their token counts. `ImageEncoder` decodes JPEGs at reduced size where it can,
applies the model's own preprocessing and reports a bad image per item instead of raising. Both take the
vector dimension from the model. Models are read from local folders only (``HF_HUB_OFFLINE=1``).
"""

from __future__ import annotations

import functools
import io
import json
import logging
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from vectorlake.embed.device import choose_device
from vectorlake.embed.modelinput import chunk_spans, l2_normalize, pool

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

# Written by `registry.build_artifact` for an `open_clip:<arch>:<tag>` source: the model is open_clip's
# built-in architecture with its named pretrained weights, fetched by open_clip (into its cache) at load.
OPEN_CLIP_SPEC = "open_clip_pretrained.json"
_DECODE_THREADS_MAX = 4


def _offline() -> None:
    """No model-hub downloads: models come from the registry's folders (set before the first HF import)."""
    os.environ["HF_HUB_OFFLINE"] = "1"


def _set_threads(torch_threads: int | None) -> None:
    import torch

    if torch_threads is not None:
        if torch_threads < 1:
            raise ValueError(f"embed.torch_threads must be at least 1 or null, got {torch_threads}")
        torch.set_num_threads(torch_threads)


class TextEncoder:
    """A sentence-transformers model run on pre-tokenized, length-sorted, window-chunked input."""

    def __init__(self, model: Any, device: str, batch_size: int, overlap: int) -> None:
        from tokenizers import Tokenizer

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self._model = model
        self.device = device
        self.batch_size = batch_size
        hf_tokenizer = model[0].tokenizer
        # A private copy of the Rust tokenizer: no truncation, no padding, one call for a whole batch.
        self._tokenizer = Tokenizer.from_str(hf_tokenizer.backend_tokenizer.to_str())
        self._tokenizer.no_truncation()
        self._tokenizer.no_padding()
        probe = self._tokenizer.encode("a", add_special_tokens=False).ids
        full = self._tokenizer.encode("a", add_special_tokens=True).ids
        at = next(i for i in range(len(full)) if full[i : i + len(probe)] == probe)
        self._prefix, self._suffix = full[:at], full[at + len(probe) :]
        self._pad_id = int(hf_tokenizer.pad_token_id or 0)
        self._token_types = "token_type_ids" in hf_tokenizer.model_input_names
        self.max_tokens = int(model.get_max_seq_length())
        self.window = self.max_tokens - len(self._prefix) - len(self._suffix)
        if not 0 <= overlap < self.window:
            raise ValueError(f"chunk overlap must be in [0, {self.window}) tokens, got {overlap}")
        self.overlap = overlap
        get_dim = getattr(model, "get_embedding_dimension", None) or model.get_sentence_embedding_dimension
        dim = get_dim()
        if not dim:
            raise ValueError("the text model does not report its embedding dimension")
        self.dim = int(dim)

    def chunk_ids(self, texts: Sequence[str]) -> list[list[list[int]]]:
        """Per text, the token ids of its windows, special tokens included (one window for most texts)."""
        encodings = self._tokenizer.encode_batch([t.strip() for t in texts], add_special_tokens=False)
        out = []
        for enc in encodings:
            ids = enc.ids
            spans = chunk_spans(len(ids), self.window, self.overlap)
            out.append([[*self._prefix, *ids[s:e], *self._suffix] for s, e in spans])
        return out

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32 unit vectors; a long text is the token-weighted mean of its windows."""
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        per_text = self.chunk_ids(texts)
        flat = [chunk for chunks in per_text for chunk in chunks]
        vectors = self.embed_chunks(flat)
        if len(flat) == len(per_text):
            return l2_normalize(vectors)
        special = len(self._prefix) + len(self._suffix)
        out: np.ndarray = np.empty((len(per_text), self.dim), dtype=np.float32)
        row = 0
        for i, chunks in enumerate(per_text):
            k = len(chunks)
            if k == 1:
                out[i] = l2_normalize(vectors[row])
            else:
                out[i] = pool(vectors[row : row + k], [max(1, len(c) - special) for c in chunks])
            row += k
        return out

    def embed_chunks(self, chunks: Sequence[Sequence[int]]) -> np.ndarray:
        """One model vector per window of token ids, in input order; batches are sorted by length."""
        import torch

        out: np.ndarray = np.empty((len(chunks), self.dim), dtype=np.float32)
        order = sorted(range(len(chunks)), key=lambda j: -len(chunks[j]))
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                width = len(chunks[rows[0]])
                ids: np.ndarray = np.full((len(rows), width), self._pad_id, dtype=np.int64)
                mask: np.ndarray = np.zeros((len(rows), width), dtype=np.int64)
                for r, j in enumerate(rows):
                    n = len(chunks[j])
                    ids[r, :n] = chunks[j]
                    mask[r, :n] = 1
                features = {
                    "input_ids": torch.from_numpy(ids).to(self.device),
                    "attention_mask": torch.from_numpy(mask).to(self.device),
                }
                if self._token_types:
                    features["token_type_ids"] = torch.zeros_like(features["input_ids"])
                emb = self._model.forward(features)["sentence_embedding"]
                out[rows] = emb.float().cpu().numpy()
        return out


def _build_text_encoder(
    path: str, device_pref: str, batch_size: int, overlap: int, torch_threads: int | None
) -> TextEncoder:
    _offline()
    _set_threads(torch_threads)
    import torch
    from sentence_transformers import SentenceTransformer

    device, dtype = choose_device(device_pref)
    model = SentenceTransformer(path, device=device, local_files_only=True)
    if dtype == torch.float16:
        model.half()
    model.eval()
    log.info("text model %s on %s (%s)", path, device, dtype)
    return TextEncoder(model, device, batch_size, overlap)


@functools.lru_cache(maxsize=4)
def load_text_encoder(
    path: str, device_pref: str, batch_size: int, overlap: int, torch_threads: int | None
) -> TextEncoder:
    """The text encoder for a local sentence-transformers folder, loaded once per process."""
    return _build_text_encoder(path, device_pref, batch_size, overlap, torch_threads)


class ImageEncoder:
    """An open_clip model's image tower with the model's own preprocessing."""

    def __init__(
        self,
        model: Any,
        preprocess: Any,
        device: str,
        dtype: torch.dtype,
        batch_size: int,
        decode_threads: int,
    ) -> None:
        import torch

        if batch_size < 1:
            raise ValueError(f"batch_size must be at least 1, got {batch_size}")
        self._model = model
        self.preprocess = preprocess
        self.device = device
        self.dtype = dtype
        self.batch_size = batch_size
        size = getattr(model.visual, "image_size", 224)
        self.image_size: tuple[int, int] = (size, size) if isinstance(size, int) else (size[0], size[1])
        self._pool = ThreadPoolExecutor(decode_threads) if decode_threads > 1 else None
        with torch.inference_mode():
            dummy = torch.zeros((1, 3, *self.image_size), dtype=dtype, device=device)
            self.dim = int(model.encode_image(dummy).shape[-1])

    def _decode(self, data: bytes) -> tuple[Any, str | None]:
        from PIL import Image, UnidentifiedImageError

        try:
            with Image.open(io.BytesIO(data)) as img:
                # JPEG: let the decoder scale down by DCT (to no less than the model's size): 2-4x faster
                img.draft("RGB", self.image_size)
                rgb = img.convert("RGB")
            return self.preprocess(rgb), None
        except UnidentifiedImageError:
            return None, "decode_failed: not an image format PIL can read"
        except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as e:
            return None, f"decode_failed: {type(e).__name__}: {str(e)[:120]}"

    def _decode_all(self, batch: Sequence[bytes]) -> Callable[[], list[tuple[Any, str | None]]]:
        """Decode a batch, on the decode threads when there are some; call the result to wait for it."""
        if self._pool is None:
            decoded = [self._decode(b) for b in batch]
            return lambda: decoded
        futures = [self._pool.submit(self._decode, b) for b in batch]
        return lambda: [f.result() for f in futures]

    def encode(self, images: Sequence[bytes]) -> tuple[np.ndarray, list[str | None]]:
        """(len(images), dim) float32 unit rows and one error per item; a bad image gives a zero row.

        On a GPU the next batch is decoded on the host threads while the current one runs on the device.
        """
        import torch

        out: np.ndarray = np.zeros((len(images), self.dim), dtype=np.float32)
        errors: list[str | None] = [None] * len(images)
        starts = range(0, len(images), self.batch_size)
        overlap = self.device != "cpu" and self._pool is not None
        pending = self._decode_all(images[: self.batch_size]) if overlap and images else None
        for start in starts:
            batch = images[start : start + self.batch_size]
            decoded = pending() if pending is not None else self._decode_all(batch)()
            following = images[start + self.batch_size : start + 2 * self.batch_size]
            pending = self._decode_all(following) if overlap and following else None
            rows, tensors = [], []
            for i, (tensor, error) in enumerate(decoded):
                if error is not None:
                    errors[start + i] = error
                else:
                    rows.append(start + i)
                    tensors.append(tensor)
            if not tensors:
                continue
            with torch.inference_mode():
                pixels = torch.stack(tensors).to(device=self.device, dtype=self.dtype)
                emb = self._model.encode_image(pixels)
            out[rows] = l2_normalize(emb.float().cpu().numpy())
        return out, errors


def _open_clip_spec(path: str) -> dict[str, str] | None:
    spec = Path(path) / OPEN_CLIP_SPEC
    if not spec.is_file():
        return None
    data = json.loads(spec.read_text())
    return {"arch": str(data["arch"]), "pretrained": str(data["pretrained"])}


def _build_image_encoder(
    path: str, device_pref: str, batch_size: int, torch_threads: int | None
) -> ImageEncoder:
    _offline()
    _set_threads(torch_threads)
    import open_clip
    import torch

    device, dtype = choose_device(device_pref)
    precision = "fp16" if dtype == torch.float16 else "fp32"
    spec = _open_clip_spec(path)
    if spec:
        model, _, preprocess = open_clip.create_model_and_transforms(
            spec["arch"], pretrained=spec["pretrained"], device=device, precision=precision
        )
    else:
        model, _, preprocess = open_clip.create_model_and_transforms(
            "local-dir:" + path, device=device, precision=precision
        )
    model.eval()
    threads = torch_threads or torch.get_num_threads()
    log.info("image model %s on %s (%s)", spec or path, device, dtype)
    return ImageEncoder(model, preprocess, device, dtype, batch_size, min(threads, _DECODE_THREADS_MAX))


@functools.lru_cache(maxsize=4)
def load_image_encoder(
    path: str, device_pref: str, batch_size: int, torch_threads: int | None
) -> ImageEncoder:
    """The image encoder for a local open_clip folder (or pretrained spec), loaded once per process."""
    return _build_image_encoder(path, device_pref, batch_size, torch_threads)


@functools.lru_cache(maxsize=8)
def model_dim(role: str, path: str) -> int:
    """The vector dimension of the model in a local artifact folder, read from the model (on CPU).

    An ``open_clip:<arch>:<tag>`` spec is not loaded (that would fetch its weights): its dimension is the
    ``embed_dim`` of open_clip's config for the architecture.
    """
    if role == "text":
        return _build_text_encoder(path, "cpu", 1, 0, None).dim
    if role != "image":
        raise ValueError(f"role must be text or image, got {role!r}")
    spec = _open_clip_spec(path)
    if spec:
        import open_clip

        config = open_clip.get_model_config(spec["arch"])
        if not config:
            raise ValueError(f"open_clip has no architecture {spec['arch']!r}")
        return int(config["embed_dim"])
    return _build_image_encoder(path, "cpu", 1, None).dim
