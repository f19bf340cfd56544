"""Search the live index: by text, by image, or more like a listing; filters inside the k-NN query.

    from vectorlake.config import load_config
    from vectorlake.query import Filters, search

    hits = search(load_config(), text="red leather bag", filters=Filters(category_id="bags"), k=5)

A text query is embedded by the text model of the generation the read alias points at (read from its
``_meta``) and matched against ``text_vector``; an image file by its image model against ``image_vector``;
``like=LISTING_ID`` takes that listing's ``fused_vector`` and returns the nearest others. ``exact=True``
scores every filtered document exactly (a script score over the same vectors) instead of the HNSW graph,
to check the approximate results. Scores are cosine similarities in both modes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from vectorlake.config import Config
from vectorlake.errors import VectorlakeError
from vectorlake.index.search import Filters, Hit

__all__ = ["MAX_K", "Filters", "Hit", "search"]

MAX_K = 1000


def _normalized(cfg: Config, filters: Filters) -> Filters:
    """The filters with the locale normalized as silver normalizes it (``en_us`` -> ``en-US``)."""
    if filters.locale is None:
        return filters
    from vectorlake.lake.reference import load_reference, normalize_locale

    reference = load_reference(cfg.reference.categories, cfg.reference.locales)
    return dataclasses.replace(filters, locale=normalize_locale(filters.locale, reference.locales))


def search(
    cfg: Config,
    *,
    text: str | None = None,
    image: str | Path | None = None,
    like: str | None = None,
    filters: Filters | None = None,
    k: int = 10,
    exact: bool = False,
) -> list[Hit]:
    """The `k` nearest live listings to exactly one of `text`, `image` (a file) or `like` (a listing id)."""
    given = [name for name, value in (("text", text), ("image", image), ("like", like)) if value is not None]
    if len(given) != 1:
        raise VectorlakeError("give exactly one of text, image or like")
    if not 1 <= k <= MAX_K:
        raise VectorlakeError(f"k must be between 1 and {MAX_K}, got {k}")
    from vectorlake.embed import registry
    from vectorlake.index import generations
    from vectorlake.index import search as index_search
    from vectorlake.index.client import make_client

    wanted = _normalized(cfg, filters or Filters())
    client = make_client(cfg)
    try:
        index = generations.live_index(client, cfg.index.alias)
        if index is None:
            raise VectorlakeError(
                f"no index behind the alias '{cfg.index.alias}' yet: run `vectorlake stream` first"
            )
        meta = generations.generation_meta(client, index)
        vector: list[float]
        exclude = None
        if text is not None:
            if not text.strip():
                raise VectorlakeError("the text query is empty")
            field_name, vector = "text_vector", _embed_text(cfg, registry, meta, text)
        elif image is not None:
            field_name, vector = "image_vector", _embed_image(cfg, registry, meta, Path(image))
        else:
            assert like is not None
            found = index_search.document_vector(client, cfg.index.alias, like, "fused_vector")
            if found is None:
                raise VectorlakeError(f"listing '{like}' is not in the index")
            field_name, vector, exclude = "fused_vector", found, like
        return index_search.search_vector(
            client, cfg.index.alias, field_name, vector, k, wanted, exact=exact, exclude_id=exclude
        )
    finally:
        client.close()


def _model_path(cfg: Config, registry: Any, meta: Mapping[str, Any], role: str) -> str:
    from vectorlake.index.generations import model_version

    return str(registry.resolve(cfg, role, model_version(meta, role)).path)


def _embed_text(cfg: Config, registry: Any, meta: Mapping[str, Any], text: str) -> list[float]:
    from vectorlake.embed.encoders import load_text_encoder
    from vectorlake.embed.modelinput import text_input

    encoder = load_text_encoder(
        _model_path(cfg, registry, meta, "text"),
        cfg.embed.device,
        cfg.embed.batch_size,
        cfg.embed.chunk_overlap_tokens,
        cfg.embed.torch_threads,
    )
    return [float(x) for x in encoder.encode([text_input(text, None, None, None, ())])[0]]


def _embed_image(cfg: Config, registry: Any, meta: Mapping[str, Any], path: Path) -> list[float]:
    from vectorlake.embed.encoders import load_image_encoder

    try:
        data = path.read_bytes()
    except OSError as e:
        raise VectorlakeError(f"cannot read the image {path}: {e.strerror or e}") from e
    encoder = load_image_encoder(
        _model_path(cfg, registry, meta, "image"),
        cfg.embed.device,
        cfg.embed.batch_size,
        cfg.embed.torch_threads,
    )
    vectors, errors = encoder.encode([data])
    if errors[0] is not None:
        raise VectorlakeError(f"cannot use {path} as an image query: {errors[0]}")
    return [float(x) for x in vectors[0]]
