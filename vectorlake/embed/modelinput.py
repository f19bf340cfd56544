"""What a model sees and how its outputs combine: pure functions, no torch.

The text a listing is embedded from (`text_input`), the content hash that keys the embedding cache
(`content_hash`), the token windows a long text is cut into (`chunk_spans`), the pooling of window
vectors (`pool`) and the fused listing vector (`fuse`).
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from collections.abc import Mapping, Sequence

import numpy as np

_SPACE = re.compile(r"\s+")


def _clean(value: str | None) -> str:
    """NFKC-normalized, whitespace runs (newlines included) collapsed to one space, stripped."""
    if value is None:
        return ""
    return _SPACE.sub(" ", unicodedata.normalize("NFKC", value)).strip()


def text_input(
    title: str | None,
    description: str | None,
    category_path: str | None,
    attributes: Mapping[str, str] | None,
    attribute_keys: Sequence[str],
) -> str:
    """The text the text model embeds for a listing: deterministic, one field per line.

    Layout (each line only when its field is present and not empty after cleaning)::

        {title}
        {category_path}
        {k1}: {v1}; {k2}: {v2}; ...
        {description}

    Every value is NFKC-normalized, its whitespace runs (newlines included) are collapsed to one space and
    it is stripped, so a field never spans lines. Attributes are those named in ``attribute_keys``, in that
    order; a key that is missing, None or blank is skipped; other attributes are ignored. Attribute values
    are turned into text with ``str`` (a price of 12.5 reads "12.5"). The same listing always gives the
    same string, so its `content_hash` is stable.
    """
    lines = [_clean(title), _clean(category_path)]
    if attributes:
        pairs = []
        for key in attribute_keys:
            raw = attributes.get(key)
            value = _clean(None if raw is None else str(raw))
            if value:
                pairs.append(f"{_clean(key)}: {value}")
        lines.append("; ".join(pairs))
    lines.append(_clean(description))
    return "\n".join(line for line in lines if line)


def content_hash(data: str | bytes) -> str:
    """sha256 hex of the exact model input: the text from `text_input`, UTF-8 encoded, or raw bytes.

    For an image the model input hashed is its URL string, not its bytes: an image URL is treated as
    immutable content (a changed image gets a new URL), so the cache is keyed without fetching the image.
    """
    raw = data.encode("utf-8") if isinstance(data, str) else data
    return hashlib.sha256(raw).hexdigest()


def chunk_spans(n_tokens: int, window: int, overlap: int) -> list[tuple[int, int]]:
    """Half-open token spans ``[start, end)`` of windows that cover ``[0, n_tokens)``.

    Windows are ``window`` tokens long and each starts ``window - overlap`` tokens after the previous one;
    the last one may be shorter, and a window that would only repeat the previous one's tail is not made.
    ``n_tokens <= window`` gives one span (``[(0, 0)]`` for an empty text, which still gets one pass).
    """
    if window < 1:
        raise ValueError(f"window must be at least 1 token, got {window}")
    if not 0 <= overlap < window:
        raise ValueError(f"overlap must be in [0, window={window}), got {overlap}")
    if n_tokens < 0:
        raise ValueError(f"n_tokens must not be negative, got {n_tokens}")
    if n_tokens <= window:
        return [(0, n_tokens)]
    stride = window - overlap
    spans = []
    start = 0
    while True:
        end = min(start + window, n_tokens)
        spans.append((start, end))
        if end == n_tokens:
            return spans
        start += stride


def l2_normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows (or a single vector) scaled to unit L2 norm; an all-zero row stays zero."""
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    out: np.ndarray = np.asarray(vectors / np.where(norms == 0, 1, norms), dtype=np.float32)
    return out


def pool(vectors: np.ndarray, weights: Sequence[float]) -> np.ndarray:
    """One unit vector from the vectors of a text's windows: weighted mean (weights = tokens per window)."""
    matrix = np.asarray(vectors, dtype=np.float64)
    w = np.asarray(weights, dtype=np.float64)
    if matrix.ndim != 2 or matrix.shape[0] == 0:
        raise ValueError(f"expected a non-empty (chunks, dim) matrix, got shape {matrix.shape}")
    if w.shape != (matrix.shape[0],):
        raise ValueError(f"expected {matrix.shape[0]} weights, got {w.shape[0] if w.ndim else w}")
    if (w < 0).any() or w.sum() <= 0:
        raise ValueError(f"weights must be non-negative with a positive sum, got {list(weights)}")
    mean: np.ndarray = (matrix * w[:, None]).sum(axis=0) / w.sum()
    return l2_normalize(mean.astype(np.float32))


def fuse(
    text_vec: np.ndarray,
    image_vec: np.ndarray | None,
    image_dim: int,
    text_weight: float,
    image_weight: float,
) -> np.ndarray:
    """The listing vector: ``l2norm([text_weight * text, image_weight * image])``, float32.

    A listing without an image gets zeros in the image part (``image_dim`` of them), so every listing
    vector has ``len(text_vec) + image_dim`` dimensions and text-only listings rank by their text alone.
    """
    text: np.ndarray = np.asarray(text_vec, dtype=np.float32).reshape(-1)
    image: np.ndarray
    if image_vec is None:
        image = np.zeros(image_dim, dtype=np.float32)
    else:
        image = np.asarray(image_vec, dtype=np.float32).reshape(-1)
        if image.shape[0] != image_dim:
            raise ValueError(f"image vector has {image.shape[0]} dimensions, expected {image_dim}")
    return l2_normalize(np.concatenate([text_weight * text, image_weight * image]))
