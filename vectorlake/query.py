"""Search the live index: by text, by image, or more like a listing; filters inside the k-NN query.

    from vectorlake.config import load_config
    from vectorlake.query import Filters, search

    hits = search(load_config(), text="red leather bag", filters=Filters(category_id="bags"), k=5)

A text query is embedded by the text model of the generation the read alias points at (read from its
``_meta``) and matched against ``text_vector``; an image by its image model against ``image_vector``;
``like=LISTING_ID`` takes that listing's ``fused_vector`` and returns the nearest others. The query runs
on that generation's own index, not on the alias, so a cutover between the two steps cannot pair one
generation's query vector with another's vectors. ``exact=True`` scores every filtered document exactly
(a script score over the same vectors) instead of the HNSW graph, to check the approximate results;
approximate queries carry ``index.ef_search``. Scores are cosine similarities in both modes.

`search` is one call that sets everything up; the query service (vectorlake.serve) keeps a `Models` and
a `Generation` between requests and calls `run_query`.
"""

from __future__ import annotations

import dataclasses
import functools
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vectorlake.config import Config
from vectorlake.errors import VectorlakeError
from vectorlake.index.search import Filters, Hit

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

__all__ = ["MAX_K", "Filters", "Generation", "Hit", "Models", "NotIndexed", "live_generation", "search"]

MAX_K = 1000
ROLES = ("text", "image")


class NotIndexed(VectorlakeError):
    """The query names something the index does not hold (no live generation, an unknown listing)."""


def model_label(meta: Mapping[str, Any], role: str) -> str:
    """The model a generation's ``_meta`` names for ``role``, as ``<model>/<version>``."""
    return str(meta.get(f"{role}_model"))


@dataclass(frozen=True)
class Generation:
    """The index generation a query runs on, and the models its vectors came from (its ``_meta``)."""

    index: str
    meta: Mapping[str, Any]

    @property
    def models(self) -> dict[str, str]:
        """``{"text": "<model>/<version>", "image": ...}``, as the generation's ``_meta`` names them."""
        return {role: model_label(self.meta, role) for role in ROLES}


def live_generation(client: OpenSearch, alias: str) -> Generation:
    """The generation ``alias`` serves now; NotIndexed if there is none yet."""
    from vectorlake.index import generations

    index = generations.live_index(client, alias)
    if index is None:
        raise NotIndexed(f"no index behind the alias '{alias}' yet: run `vectorlake stream` first")
    return Generation(index, generations.generation_meta(client, index))


@functools.lru_cache(maxsize=4)
def _locales(categories_csv: str, locales_csv: str) -> Mapping[str, str]:
    from vectorlake.lake.reference import load_reference

    return load_reference(categories_csv, locales_csv).locales


def normalized(cfg: Config, filters: Filters) -> Filters:
    """The filters with the locale normalized as silver normalizes it (``en_us`` -> ``en-US``)."""
    if filters.locale is None:
        return filters
    from vectorlake.lake.reference import normalize_locale

    table = _locales(cfg.reference.categories, cfg.reference.locales)
    return dataclasses.replace(filters, locale=normalize_locale(filters.locale, table))


class Models:
    """The query encoders of each generation's models, resolved in the registry and loaded once per
    process; each encoder runs one query at a time (its tokenizer is not thread-safe)."""

    def __init__(self, cfg: Config) -> None:
        self._cfg = cfg
        self._paths: dict[tuple[str, str], str] = {}
        self._locks: dict[tuple[str, str], threading.Lock] = {}
        self._guard = threading.Lock()

    def _path(self, role: str, meta: Mapping[str, Any]) -> tuple[tuple[str, str], str]:
        from vectorlake.embed import registry
        from vectorlake.index.generations import model_version

        key = (role, model_version(meta, role))
        with self._guard:
            if key not in self._paths:
                self._paths[key] = str(registry.resolve(self._cfg, role, key[1]).path)
                self._locks[key] = threading.Lock()
            return key, self._paths[key]

    def _encoder(self, role: str, path: str) -> Any:
        from vectorlake.embed.encoders import load_image_encoder, load_text_encoder

        e = self._cfg.embed
        if role == "text":
            return load_text_encoder(path, e.device, e.batch_size, e.chunk_overlap_tokens, e.torch_threads)
        return load_image_encoder(path, e.device, e.batch_size, e.torch_threads)

    def warm(self, meta: Mapping[str, Any]) -> list[str]:
        """Load both models of a generation now (not at its first query); their ``role:version`` keys."""
        keys = []
        for role in ROLES:
            key, path = self._path(role, meta)
            with self._locks[key]:
                self._encoder(role, path)
            keys.append(f"{role}:{key[1]}")
        return keys

    def embed_text(self, meta: Mapping[str, Any], text: str) -> list[float]:
        if not text.strip():
            raise VectorlakeError("the text query is empty")
        return self.embed_texts(meta, [text])[0]

    def embed_texts(self, meta: Mapping[str, Any], texts: list[str]) -> list[list[float]]:
        """Several text queries in one model call (the service batches the queries that wait)."""
        from vectorlake.embed.modelinput import text_input

        key, path = self._path("text", meta)
        with self._locks[key]:
            vectors = self._encoder("text", path).encode([text_input(t, None, None, None, ()) for t in texts])
        return [[float(x) for x in v] for v in vectors]

    def embed_image(self, meta: Mapping[str, Any], data: bytes, what: str) -> list[float]:
        key, path = self._path("image", meta)
        with self._locks[key]:
            vectors, errors = self._encoder("image", path).encode([data])
        if errors[0] is not None:
            raise VectorlakeError(f"cannot use {what} as an image query: {errors[0]}")
        return [float(x) for x in vectors[0]]


@dataclass(frozen=True)
class Query:
    """One search: exactly one of ``text``, ``image`` (the bytes of an image) or ``like`` (a listing id)."""

    text: str | None = None
    image: bytes | None = None
    like: str | None = None
    filters: Filters = dataclasses.field(default_factory=Filters)
    k: int = 10
    exact: bool = False
    image_name: str = "the image"  # how an error names the image (a file path, "image_url", ...)

    def __post_init__(self) -> None:
        given = [
            n for n, v in (("text", self.text), ("image", self.image), ("like", self.like)) if v is not None
        ]
        if len(given) != 1:
            raise VectorlakeError("give exactly one of text, image or like")
        if not 1 <= self.k <= MAX_K:
            raise VectorlakeError(f"k must be between 1 and {MAX_K}, got {self.k}")


def run_query(
    cfg: Config, client: OpenSearch, generation: Generation, models: Models, query: Query
) -> list[Hit]:
    """The hits of ``query`` on ``generation``'s index, its vector made by that generation's models."""
    from vectorlake.index import search as index_search

    wanted = normalized(cfg, query.filters)
    exclude = None
    if query.text is not None:
        field_name, vector = "text_vector", models.embed_text(generation.meta, query.text)
    elif query.image is not None:
        field_name, vector = (
            "image_vector",
            models.embed_image(generation.meta, query.image, query.image_name),
        )
    else:
        assert query.like is not None
        found = index_search.document_vector(client, generation.index, query.like, "fused_vector")
        if found is None:
            raise NotIndexed(f"listing '{query.like}' is not in the index")
        field_name, vector, exclude = "fused_vector", found, query.like
    return index_search.search_vector(
        client,
        generation.index,
        field_name,
        vector,
        query.k,
        wanted,
        exact=query.exact,
        exclude_id=exclude,
        ef_search=cfg.index.ef_search,
    )


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
    data = None
    if image is not None:
        try:
            data = Path(image).read_bytes()
        except OSError as e:
            raise VectorlakeError(f"cannot read the image {image}: {e.strerror or e}") from e
    query = Query(text, data, like, filters or Filters(), k, exact, image_name=str(image))
    from vectorlake.index.client import make_client

    client = make_client(cfg)
    try:
        return run_query(cfg, client, live_generation(client, cfg.index.alias), Models(cfg), query)
    finally:
        client.close()
