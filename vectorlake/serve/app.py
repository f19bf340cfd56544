"""The query service's FastAPI application: `create_app(cfg)`, run by `run(cfg, host, port)`.

One process keeps one OpenSearch client, the encoders of the generations it serves (`query.Models`, each
loaded once) and the generation the alias points at. A thread reads the family's aliases every
``serve.refresh_s``: it follows a cutover or a rollback without a restart, and it loads the models of a
generation being built (``<alias>_next``) before the cutover makes it live. A query runs on the index of
the generation whose models embedded it.

Errors are JSON ``{"error": "<one line>"}``: 422 for a request that breaks the schema or a limit, 413 for
a body over ``serve.max_request_bytes`` (411 without a Content-Length), 404 for a ``like`` listing not in
the index, 503 while there is no live generation or OpenSearch does not answer.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent.futures import Future
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, Literal

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field, model_validator

from vectorlake.config import Config
from vectorlake.embed.fetch import FetchPolicy, ImageFetchError, check_pixels, fetch_image
from vectorlake.errors import VectorlakeError, one_line
from vectorlake.query import (
    MAX_K,
    Filters,
    Generation,
    Hit,
    Models,
    NotIndexed,
    Query,
    model_label,
    run_query,
)

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

log = logging.getLogger(__name__)

MAX_ID_CHARS = 512  # listing and seller ids (the index refuses longer document ids)
MAX_ATTRIBUTES = 32
ENDPOINTS = ("/search", "/healthz", "/livez", "/metrics", "/docs", "/openapi.json")
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)


class FilterBody(BaseModel):
    """Exact-match filters, applied inside the k-NN query (k hits of the filtered set)."""

    model_config = ConfigDict(extra="forbid")
    category_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    locale: str | None = Field(
        default=None, max_length=64, description="normalized as silver does: en_us -> en-US"
    )
    seller_id: str | None = Field(default=None, max_length=MAX_ID_CHARS)
    attributes: dict[str, str] = Field(default_factory=dict, max_length=MAX_ATTRIBUTES)


class SearchRequest(BaseModel):
    """Exactly one of ``text``, ``image_url``, ``image_b64`` or ``like``."""

    model_config = ConfigDict(extra="forbid")
    text: str | None = Field(default=None, description="a text query (at most serve.max_text_chars)")
    image_url: str | None = Field(
        default=None, max_length=2048, description="http(s) only, public addresses only"
    )
    image_b64: str | None = Field(default=None, description="an image's bytes, base64")
    like: str | None = Field(
        default=None, max_length=MAX_ID_CHARS, description="listings like this listing id"
    )
    k: int = Field(default=10, ge=1, le=MAX_K)
    filters: FilterBody = Field(default_factory=lambda: FilterBody())
    mode: Literal["vector"] = Field(default="vector", description="k-NN on the query's vector field")
    exact: bool = Field(default=False, description="exact scoring of every filtered document, to check k-NN")

    @model_validator(mode="after")
    def _one_query(self) -> SearchRequest:
        given = [n for n in ("text", "image_url", "image_b64", "like") if getattr(self, n) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of text, image_url, image_b64 or like")
        return self


class HitBody(BaseModel):
    listing_id: str
    score: float = Field(description="cosine similarity to the query vector")
    title: str | None
    category_id: str | None
    locale: str | None
    seller_id: str | None
    image_id: str | None
    attributes: dict[str, Any]


class SearchResponse(BaseModel):
    hits: list[HitBody]
    generation: str = Field(description="the index generation that answered")
    models: dict[str, str] = Field(description="role -> <model>/<version> of that generation")
    took_ms: float


class ServiceError(VectorlakeError):
    """A request the service answers with ``status`` and a one-line reason."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Metrics:
    """The service's Prometheus metrics, in a registry of its own (GET /metrics)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Histogram

        self.registry = CollectorRegistry()
        self.requests = Counter(
            "vectorlake_serve_requests",
            "HTTP requests answered",
            ["endpoint", "code"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "vectorlake_serve_request_seconds",
            "Time to answer a request",
            ["endpoint"],
            buckets=LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "vectorlake_serve_errors",
            "Requests answered with an error",
            ["endpoint", "kind"],
            registry=self.registry,
        )

        self.batches = Histogram(
            "vectorlake_serve_text_batch_queries",
            "Text queries embedded by one model call",
            buckets=(1, 2, 4, 8, 16, 32, 64),
            registry=self.registry,
        )

    def observe(self, endpoint: str, code: int, seconds: float) -> None:
        self.requests.labels(endpoint, str(code)).inc()
        self.latency.labels(endpoint).observe(seconds)


class BatchedModels(Models):
    """`Models` whose text queries are embedded in batches: the queries that arrive while the model runs
    wait for its next call, which takes them all (up to ``embed.batch_size``, one model at a time). One
    query alone is not delayed; under load a model call costs far less per query (13.7 ms for one query,
    35 ms for sixteen, MiniLM on two cores)."""

    def __init__(self, cfg: Config, observe: Callable[[int], None] = lambda n: None) -> None:
        super().__init__(cfg)
        self._max = cfg.embed.batch_size
        self._observe = observe  # the number of queries of each model call
        self._waiting: list[tuple[Mapping[str, Any], str, Future[list[float]]]] = []
        self._ready = threading.Condition()
        threading.Thread(target=self._run, name="text-batcher", daemon=True).start()

    def embed_text(self, meta: Mapping[str, Any], text: str) -> list[float]:
        if not text.strip():
            raise VectorlakeError("the text query is empty")
        done: Future[list[float]] = Future()
        with self._ready:
            self._waiting.append((meta, text, done))
            self._ready.notify()
        return done.result()

    def _take(self) -> list[tuple[Mapping[str, Any], str, Future[list[float]]]]:
        """The waiting queries of the first one's model, oldest first, up to the batch size."""
        with self._ready:
            while not self._waiting:
                self._ready.wait()
            model = model_label(self._waiting[0][0], "text")
            batch = [w for w in self._waiting if model_label(w[0], "text") == model][: self._max]
            taken = {id(w) for w in batch}
            self._waiting = [w for w in self._waiting if id(w) not in taken]
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            self._observe(len(batch))
            try:
                vectors = self.embed_texts(batch[0][0], [text for _, text, _ in batch])
            except Exception as e:  # each waiting request gets the model's error
                for _, _, done in batch:
                    done.set_exception(e)
                continue
            for (_, _, done), vector in zip(batch, vectors, strict=True):
                done.set_result(vector)


def image_policy(cfg: Config) -> FetchPolicy:
    """The pipeline's fetch policy narrowed for queries from outside: http(s) only (no local files, no
    buckets), public addresses only unless ``serve.image_hosts`` names the host."""
    base = FetchPolicy.from_config(cfg)
    schemes = tuple(s for s in base.schemes if s in ("http", "https"))
    return dataclasses.replace(base, schemes=schemes, allow_hosts=cfg.serve.image_hosts)


class Service:
    """What the service keeps between requests."""

    def __init__(self, cfg: Config, client: OpenSearch) -> None:
        self.cfg = cfg
        self.client = client
        self.metrics = Metrics()
        self.models = BatchedModels(cfg, self.metrics.batches.observe)
        self.policy = image_policy(cfg)
        self.stopped = threading.Event()
        self._meta: dict[str, Generation] = {}
        self.live: Generation | None = None
        self.why = "the alias has not been read yet"
        self.warm: list[str] = []

    def refresh(self) -> Generation | None:
        """Read the family's aliases; load the models of the live and the building generation."""
        from opensearchpy.exceptions import OpenSearchException

        from vectorlake.index import generations

        try:
            found = generations.alias_map(self.client, self.cfg.index)
            for role in ("live", "next"):
                index = found.get(role)
                if index is not None and index not in self._meta:
                    self._meta[index] = Generation(index, generations.generation_meta(self.client, index))
                    self.warm = sorted(set(self.warm) | set(self.models.warm(self._meta[index].meta)))
                    log.info("serving models of %s: %s", index, ", ".join(self.warm))
        except (OpenSearchException, VectorlakeError) as e:
            self.why = f"cannot read the alias '{self.cfg.index.alias}': {_reason(e)}"
            return self.live  # keep serving what was live; queries fail on their own if it is gone
        live = found.get("live")
        self.live = self._meta[live] if live else None
        if live is None:
            self.why = (
                f"no index behind the alias '{self.cfg.index.alias}' yet: run `vectorlake stream` first"
            )
        return self.live

    def generation(self) -> Generation:
        live = self.live or self.refresh()
        if live is None:
            raise ServiceError(503, self.why)
        return live

    def follow(self) -> None:
        while not self.stopped.wait(self.cfg.serve.refresh_s):
            self.refresh()

    def query(self, body: SearchRequest) -> Query:
        if body.text is not None and len(body.text) > self.cfg.serve.max_text_chars:
            raise ServiceError(
                422, f"text: longer than serve.max_text_chars ({self.cfg.serve.max_text_chars})"
            )
        image, name = None, "the image"
        if body.image_url is not None:
            image, name = fetch_image(body.image_url, self.policy), "image_url"
        elif body.image_b64 is not None:
            image, name = self._decoded(body.image_b64), "image_b64"
        f = body.filters
        filters = Filters(f.category_id, f.locale, f.seller_id, dict(f.attributes))
        return Query(body.text, image, body.like, filters, body.k, body.exact, image_name=name)

    def _decoded(self, b64: str) -> bytes:
        try:
            data = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError) as e:
            raise ServiceError(422, f"image_b64: not base64 ({e})") from None
        if len(data) > self.policy.max_bytes:
            raise ServiceError(
                413, f"image_b64: {len(data)} bytes, over fetch.max_bytes ({self.policy.max_bytes})"
            )
        check_pixels("image_b64", data, self.policy.max_pixels)
        return data

    def search(self, body: SearchRequest) -> SearchResponse:
        from opensearchpy import NotFoundError

        t0 = time.perf_counter()
        query = self.query(body)
        generation = self.generation()
        try:
            hits = run_query(self.cfg, self.client, generation, self.models, query)
        except NotFoundError:  # the generation was deleted after the last refresh: read the alias again
            self.live = None
            generation = self.generation()
            hits = run_query(self.cfg, self.client, generation, self.models, query)
        took_ms = round((time.perf_counter() - t0) * 1000.0, 2)
        return SearchResponse(
            hits=[_hit_body(h) for h in hits],
            generation=generation.index,
            models=generation.models,
            took_ms=took_ms,
        )


def _hit_body(hit: Hit) -> HitBody:
    return HitBody(**{**dataclasses.asdict(hit), "attributes": dict(hit.attributes)})


def _reason(e: BaseException) -> str:
    """An error's first line, without its type name, as the service's answers carry it."""
    return one_line(e, named=False, limit=300)


def _validation_message(e: RequestValidationError) -> str:
    first = e.errors()[0] if e.errors() else {}
    if first.get("type") == "json_invalid":
        return f"the body is not valid JSON ({first.get('ctx', {}).get('error', 'decode error')})"
    where = ".".join(str(p) for p in first.get("loc", ()) if p != "body")
    message = str(first.get("msg", "invalid request")).removeprefix("Value error, ")
    return f"{where}: {message}" if where else message


def _status_of(e: Exception) -> tuple[int, str, str]:
    """HTTP status, error kind (a metric label) and one-line message of an exception a request raised."""
    from opensearchpy.exceptions import ConnectionError as OpenSearchDown
    from opensearchpy.exceptions import OpenSearchException

    if isinstance(e, RequestValidationError):
        return 422, "invalid", _validation_message(e)
    if isinstance(e, ServiceError):
        return e.status, "refused" if e.status < 500 else "unavailable", str(e)
    if isinstance(e, ImageFetchError):
        return 422, "image", f"image_url: {e}"
    if isinstance(e, NotIndexed):
        return 404, "not_found", str(e)
    if isinstance(e, VectorlakeError | ValueError):
        return 422, "invalid", _reason(e)
    if isinstance(e, OpenSearchDown):
        return 503, "unavailable", f"OpenSearch does not answer: {_reason(e)}"
    if isinstance(e, OpenSearchException):
        return 502, "opensearch", f"OpenSearch refused the query: {_reason(e)}"
    return 500, "internal", f"internal error: {type(e).__name__}"


def _add_routes(app: FastAPI, service: Service) -> None:
    @app.post("/search", response_model=SearchResponse)
    def search(body: SearchRequest) -> SearchResponse:
        """The k nearest live listings to the query, filters inside the k-NN query."""
        return service.search(body)

    @app.get("/healthz")
    def healthz() -> JSONResponse:
        """200 when a live generation is known and its models are loaded; 503 with the reason otherwise."""
        alias, live = service.cfg.index.alias, service.live
        if live is None:
            return JSONResponse(
                {"status": "unavailable", "alias": alias, "error": service.why}, status_code=503
            )
        found = {"generation": live.index, "models": live.models, "warm": service.warm}
        return JSONResponse({"status": "ok", "alias": alias, **found})

    @app.get("/livez")
    def livez() -> dict[str, str]:
        """200 while the process serves HTTP, whatever the index's state."""
        return {"status": "ok"}

    @app.get("/metrics")
    def metrics() -> Response:
        """Request counts, latency histogram and errors, in Prometheus text format."""
        from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)


def _add_limits(app: FastAPI, service: Service) -> None:
    cap = service.cfg.serve.max_request_bytes

    def answer(endpoint: str, e: Exception) -> JSONResponse:
        status, kind, message = _status_of(e)
        service.metrics.errors.labels(endpoint, kind).inc()
        if status >= 500:
            log.warning("%s: %s", endpoint, message)
        return JSONResponse({"error": message}, status_code=status)

    @app.middleware("http")
    async def measure(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        t0 = time.perf_counter()
        endpoint = request.url.path if request.url.path in ENDPOINTS else "other"
        length = request.headers.get("content-length")
        if request.method == "POST" and length is None:
            response: Response = answer(
                endpoint, ServiceError(411, "send the body with a Content-Length header")
            )
        elif length is not None and (not length.isdigit() or int(length) > cap):
            response = answer(
                endpoint, ServiceError(413, f"the body is over serve.max_request_bytes ({cap})")
            )
        else:
            try:
                response = await call_next(request)
            except Exception as e:  # answered as one JSON line, never a traceback
                response = answer(endpoint, e)
        service.metrics.observe(endpoint, response.status_code, time.perf_counter() - t0)
        return response

    for kind in (RequestValidationError, VectorlakeError, ValueError, Exception):
        app.add_exception_handler(kind, lambda request, e: answer(request.url.path, e))  # type: ignore[arg-type]


def create_app(cfg: Config, client: OpenSearch | None = None) -> FastAPI:
    """The service's application; it reads the alias and warms the models as it starts."""
    from vectorlake.index.client import make_client

    service = Service(cfg, client or make_client(cfg))

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        live = service.refresh()
        print(
            f"query service: {live.index if live else 'no live generation yet'}; models {service.warm}",
            flush=True,
        )
        follower = threading.Thread(target=service.follow, name="alias-follower", daemon=True)
        follower.start()
        yield
        service.stopped.set()
        service.client.close()

    app = FastAPI(
        title="vectorlake query service",
        summary="k-NN search of the live index generation, query embedding included",
        lifespan=lifespan,
    )
    app.state.service = service
    _add_routes(app, service)
    _add_limits(app, service)
    return app


def run(cfg: Config, host: str, port: int) -> None:
    """Serve until SIGINT or SIGTERM (uvicorn, one process; the models are shared by its threads)."""
    import uvicorn

    config = uvicorn.Config(
        create_app(cfg),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        timeout_graceful_shutdown=5,
    )
    uvicorn.Server(config).run()
