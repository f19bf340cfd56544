"""The query service against the real stack: `vectorlake stack up --with serve`, then HTTP.

The index is built here, not by a pipeline run: a generation of a few dozen listings whose vectors the
registered encoders made from their titles and images, behind an alias of the test's own. The service
must answer as the library's in-process search does, refuse bad requests with one line, follow a
cutover and a rollback without a restart and without a failed query, and count what it did.
"""

from __future__ import annotations

import base64
import http.server
import io
import json
import os
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from tests.ports import free_port
from vectorlake import stack
from vectorlake.config import PROJECT_ROOT, Config, load_config
from vectorlake.embed import registry
from vectorlake.embed.encoders import load_image_encoder, load_text_encoder
from vectorlake.embed.modelinput import fuse, text_input
from vectorlake.index import generations
from vectorlake.index.client import make_client
from vectorlake.index.mappings import index_body
from vectorlake.query import Filters, search
from vectorlake.serve import remote

pytestmark = pytest.mark.usefixtures("local_stack")

PRODUCTS = ("steel chair", "oak table", "leather bag", "wool scarf", "running shoe", "desk lamp")
COLORS = {"red": (200, 30, 30), "green": (30, 160, 60), "blue": (30, 60, 200), "yellow": (230, 210, 40)}
LOCALES = ("en-US", "de-DE")


@dataclass(frozen=True)
class Served:
    cfg: Config
    env: dict[str, str]
    url: str
    up: subprocess.CompletedProcess[str]
    images: dict[str, Path]  # listing_id -> its JPEG
    image_url: str  # base URL of a local HTTP server holding the images (allowed by serve.image_hosts)


def _jpeg(rgb: tuple[int, int, int], mark: int, path: Path) -> None:
    """A JPEG of one colour with a white bar where ``mark`` says: each listing's image is its own."""
    from PIL import Image, ImageDraw

    image = Image.new("RGB", (64, 48), rgb)
    ImageDraw.Draw(image).rectangle((2 * mark, 4, 2 * mark + 8, 44), fill=(255, 255, 255))
    image.save(path, format="JPEG")


def _documents(cfg: Config, folder: Path) -> tuple[list[dict[str, Any]], dict[str, Path], dict[str, Any]]:
    text_ref, image_ref = registry.resolve(cfg, "text"), registry.resolve(cfg, "image")
    e = cfg.embed
    text_enc = load_text_encoder(
        text_ref.path, e.device, e.batch_size, e.chunk_overlap_tokens, e.torch_threads
    )
    image_enc = load_image_encoder(image_ref.path, e.device, e.batch_size, e.torch_threads)
    rows, images = [], {}
    for i, (product, color) in enumerate((p, c) for p in PRODUCTS for c in COLORS):
        lid = f"l-{i:03d}"
        images[lid] = folder / f"{lid}.jpg"
        _jpeg(COLORS[color], i, images[lid])
        rows.append((lid, f"{color.title()} {product.title()}", color, i))
    text_vecs = text_enc.encode([text_input(title, None, None, None, ()) for _, title, _, _ in rows])
    image_vecs, errors = image_enc.encode([images[lid].read_bytes() for lid, _, _, _ in rows])
    assert not any(errors)
    docs = []
    for (lid, title, color, i), t, im in zip(rows, text_vecs, image_vecs, strict=True):
        docs.append({
            "listing_id": lid, "title": title, "seller_id": f"s-{i % 3}", "locale": LOCALES[i % 2],
            "category_id": f"cat-{PRODUCTS[i // len(COLORS)].split()[1]}", "image_id": f"img-{lid}",
            "attributes": {"color": color}, "text_vector": [float(x) for x in t],
            "image_vector": [float(x) for x in im],
            "fused_vector": [float(x) for x in fuse(t, im, len(im), 1.0, 1.0)],
        })  # fmt: skip
    meta = {"text_model": text_ref.label, "image_model": image_ref.label}
    return docs, images, meta | {"text_dim": len(text_vecs[0]), "image_dim": len(image_vecs[0])}


def _create_generation(cfg: Config, number: int, docs: list[dict[str, Any]], meta: dict[str, Any]) -> str:
    from opensearchpy import helpers

    name = generations.generation_name(cfg.index.alias, number)
    client = make_client(cfg)
    try:
        body = index_body(cfg.index, meta["text_dim"], meta["image_dim"], meta)
        if number == 1:
            body["aliases"] = {cfg.index.alias: {"is_write_index": True}}
        client.indices.create(index=name, body=body)
        helpers.bulk(client, ({"_index": name, "_id": d["listing_id"], **d} for d in docs), refresh=True)
    finally:
        client.close()
    return name


def _point_alias(cfg: Config, index: str) -> None:
    """One _aliases request: the read alias leaves whatever it pointed at and points at ``index``."""
    client = make_client(cfg)
    try:
        current = generations.live_index(client, cfg.index.alias)
        client.indices.update_aliases(body={"actions": [
            {"remove": {"index": current, "alias": cfg.index.alias}},
            {"add": {"index": index, "alias": cfg.index.alias, "is_write_index": True}},
        ]})  # fmt: skip
    finally:
        client.close()


def _cli(env: dict[str, str], *args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    vl = str(PROJECT_ROOT / ".venv/bin/vectorlake")
    return subprocess.run([vl, *args], env=env, capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    tmp = tmp_path_factory.mktemp("serve")
    files = http.server.ThreadingHTTPServer(
        ("127.0.0.1", 0), partial(http.server.SimpleHTTPRequestHandler, directory=str(tmp))
    )
    threading.Thread(target=files.serve_forever, daemon=True).start()
    port = free_port()
    env = dict(os.environ) | {
        "VECTORLAKE__INDEX__ALIAS": f"t-serve-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        "VECTORLAKE__SERVE__PORT": str(port),
        "VECTORLAKE__SERVE__REFRESH_S": "0.5",
        "VECTORLAKE__SERVE__MAX_REQUEST_BYTES": "200000",
        "VECTORLAKE__SERVE__IMAGE_HOSTS": f"127.0.0.1:{files.server_address[1]}",
        "VECTORLAKE__GATE__LABELLED_QUERIES": str(tmp / "queries.jsonl"),
    }
    cfg = load_config(environ=env)
    registry.register_all(cfg)
    docs, images, meta = _documents(cfg, tmp)
    labelled = [{"query": d["title"].lower(), "relevant": [d["listing_id"]]} for d in docs]
    (tmp / "queries.jsonl").write_text("".join(json.dumps(q) + "\n" for q in labelled))
    _create_generation(cfg, 1, docs, meta)
    try:
        up = _cli(env, "stack", "up", "--with", "serve")
        assert up.returncode == 0, up.stdout + up.stderr
        yield Served(
            cfg, env, f"http://127.0.0.1:{port}", up, images, f"http://127.0.0.1:{files.server_address[1]}"
        )
    finally:
        stack.down(cfg, ["serve"], only=True)
        files.shutdown()
        client = make_client(cfg)
        try:
            for index in generations.generations(client, cfg.index.alias):
                client.indices.delete(index=index)
        finally:
            client.close()


def _post(served: Served, body: Any, raw: bytes | None = None) -> tuple[int, dict[str, Any]]:
    data = raw if raw is not None else json.dumps(body).encode()
    request = urllib.request.Request(  # noqa: S310 - the service's loopback URL
        f"{served.url}/search", data=data, headers={"content-type": "application/json"}, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as resp:  # noqa: S310
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as e:
        return e.code, json.loads(e.read())


def _get(served: Served, path: str) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(f"{served.url}{path}", timeout=30) as resp:  # noqa: S310
            return resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def _b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def test_stack_up_with_serve_starts_it_warm_and_status_reports_it(served: Served) -> None:
    (row,) = [line for line in served.up.stdout.splitlines() if line.startswith("serve ")]
    alias = served.cfg.index.alias
    assert "healthy" in row and f"serving {alias}_g1 (image:" in row and "text:" in row, row
    status = _cli(served.env, "stack", "status", "--with", "serve", timeout=60)
    assert status.returncode == 0 and f"serving {alias}_g1" in status.stdout, status.stdout + status.stderr
    code, health = _get(served, "/healthz")
    assert code == 200 and json.loads(health)["generation"] == f"{alias}_g1"
    busy = _cli(served.env, "serve", "--port", str(served.cfg.serve.port), timeout=60)
    assert busy.returncode == 1 and "Traceback" not in busy.stderr, busy.stderr
    assert (
        busy.stderr.strip()
        .splitlines()[-1]
        .startswith(f"vectorlake: error: port {served.cfg.serve.port} on 127.0.0.1 is already in use")
    )


@pytest.mark.parametrize(
    ("query", "filters"),
    [
        ({"text": "red chair"}, Filters()),
        ({"text": "chair"}, Filters(locale="de_de", attributes={"color": "green"})),
        ({"like": "l-005"}, Filters(category_id="cat-table")),
        ({"image": "l-010"}, Filters()),
    ],
    ids=["text", "text-filtered", "like-filtered", "image"],
)
def test_the_service_answers_as_the_library_does(
    served: Served, query: dict[str, str], filters: Filters
) -> None:
    body: dict[str, Any] = {"k": 5, "filters": {k: v for k, v in vars(filters).items() if v}}
    kwargs: dict[str, Any] = dict(query)
    if "image" in query:
        kwargs["image"] = served.images[query["image"]]
        body["image_b64"] = _b64(kwargs["image"])
    else:
        body |= query
    code, answer = _post(served, body)
    assert code == 200, answer
    want = search(served.cfg, filters=filters, k=5, **kwargs)
    assert len(want) == 5 or filters != Filters()
    assert [h["listing_id"] for h in answer["hits"]] == [h.listing_id for h in want]
    np.testing.assert_allclose([h["score"] for h in answer["hits"]], [h.score for h in want], atol=1e-5)
    assert (
        answer["hits"][0]["title"] == want[0].title and answer["hits"][0]["attributes"] == want[0].attributes
    )
    assert answer["generation"] == f"{served.cfg.index.alias}_g1" and answer["took_ms"] > 0
    assert answer["models"]["text"] == registry.resolve(served.cfg, "text").label


def test_concurrent_text_queries_are_embedded_together_and_each_gets_its_own_answer(served: Served) -> None:
    from concurrent.futures import ThreadPoolExecutor

    texts = [f"{color} {product}" for product in PRODUCTS for color in COLORS]
    before = _batch_calls(served)
    with ThreadPoolExecutor(max_workers=12) as pool:
        answers = list(pool.map(lambda t: _post(served, {"text": t, "k": 3}), texts))
    after = _batch_calls(served)
    for text, (code, answer) in zip(texts, answers, strict=True):
        assert code == 200, answer
        want = search(served.cfg, text=text, k=3)
        assert [h["listing_id"] for h in answer["hits"]] == [h.listing_id for h in want], text
    assert after[0] - before[0] < len(texts)  # fewer model calls than queries: some were batched
    assert after[1] - before[1] == len(texts)  # every query was in exactly one call


def _batch_calls(served: Served) -> tuple[float, float]:
    """(model calls, queries in them) of the service's text batches so far."""
    from prometheus_client.parser import text_string_to_metric_families

    _, text = _get(served, "/metrics")
    found = {
        s.name: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name.startswith("vectorlake_serve_text_batch_queries_")
    }
    return found["vectorlake_serve_text_batch_queries_count"], found[
        "vectorlake_serve_text_batch_queries_sum"
    ]


def test_an_image_url_on_an_allowed_host_is_fetched(served: Served) -> None:
    code, by_url = _post(served, {"image_url": f"{served.image_url}/l-010.jpg", "k": 3})
    assert code == 200, by_url
    _, by_bytes = _post(served, {"image_b64": _b64(served.images["l-010"]), "k": 3})
    assert [h["listing_id"] for h in by_url["hits"]] == [h["listing_id"] for h in by_bytes["hits"]]
    assert by_url["hits"][0]["listing_id"] == "l-010"


def _pixel_bomb() -> str:
    from PIL import Image

    out = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(out, format="PNG")  # 144M pixels, a few KB
    return base64.b64encode(out.getvalue()).decode()


BAD_REQUESTS = [
    ({"k": 3}, 422, "give exactly one of text, image_url, image_b64 or like"),
    ({"text": "a", "like": "l-001"}, 422, "give exactly one of"),
    ({"text": "a", "k": 0}, 422, "k: Input should be greater than or equal to 1"),
    ({"text": "a", "k": 1001}, 422, "k: Input should be less than or equal to 1000"),
    ({"text": "a", "mode": "bm25"}, 422, "mode: Input should be 'vector'"),
    ({"text": "a", "limit": 3}, 422, "limit: Extra inputs are not permitted"),
    ({"text": "   "}, 422, "the text query is empty"),
    ({"text": "a" * 2001}, 422, "text: longer than serve.max_text_chars (2000)"),
    ({"text": "a", "filters": {"attributes": {"*": "x"}}}, 422, "not an attribute name"),
    ({"like": "no-such-listing"}, 404, "listing 'no-such-listing' is not in the index"),
    ({"image_b64": "not base64!"}, 422, "image_b64: not base64"),
    ({"image_url": "file:///etc/passwd"}, 422, "scheme 'file' is not in fetch.schemes"),
    ({"image_url": "http://127.0.0.1:9200/"}, 422, "not a public address"),
    ({"image_url": "http://169.254.169.254/latest/meta-data/"}, 422, "not a public address"),
]


@pytest.mark.parametrize(("body", "status", "message"), BAD_REQUESTS)
def test_a_bad_request_gets_a_4xx_with_one_line(served: Served, body: Any, status: int, message: str) -> None:
    code, answer = _post(served, body)
    assert code == status and message in answer["error"], answer
    assert "\n" not in answer["error"] and set(answer) == {"error"}


def test_limits_on_the_body_and_on_images(served: Served) -> None:
    code, answer = _post(served, None, raw=b'{"text": "chair"')
    assert code == 422 and answer["error"].startswith("the body is not valid JSON"), answer
    code, answer = _post(served, {"text": "chair", "filters": {"seller_id": "s" * 300_000}})
    assert code == 413 and "serve.max_request_bytes (200000)" in answer["error"], answer
    code, answer = _post(served, {"image_b64": _pixel_bomb()})
    assert code == 422 and "too_large" in answer["error"], answer
    chunked = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H", "Transfer-Encoding: chunked",
         "-H", "content-type: application/json", "-d", '{"text": "chair"}', f"{served.url}/search"],
        capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert chunked.stdout == "411"


def test_the_openapi_page_and_the_metrics(served: Served) -> None:
    code, text = _get(served, "/openapi.json")
    spec = json.loads(text)
    assert code == 200 and "/search" in spec["paths"]
    fields = spec["components"]["schemas"]["SearchRequest"]["properties"]
    assert set(fields) == {"text", "image_url", "image_b64", "like", "k", "filters", "mode", "exact"}
    code, page = _get(served, "/docs")
    assert code == 200 and "swagger" in page.lower()
    before = _counts(served)
    for body in ({"text": "oak table"}, {"text": "oak table", "k": 0}, {"like": "nope"}):
        _post(served, body)
    after = _counts(served)
    for key, more in ((("/search", "200"), 1), (("/search", "422"), 1), (("/search", "404"), 1)):
        assert after.get(key, 0) - before.get(key, 0) == more, key
    _, text = _get(served, "/metrics")
    assert 'vectorlake_serve_request_seconds_bucket{endpoint="/search",le="0.1"}' in text
    assert 'vectorlake_serve_errors_total{endpoint="/search",kind="not_found"}' in text


def _counts(served: Served) -> dict[tuple[str, str], float]:
    from prometheus_client.parser import text_string_to_metric_families

    _, text = _get(served, "/metrics")
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            if s.name == "vectorlake_serve_requests_total":
                out[(s.labels["endpoint"], s.labels["code"])] = s.value
    return out


def test_vectorlake_search_goes_through_the_service(served: Served) -> None:
    run = _cli(
        served.env, "search", "--text", "green shoe", "--locale", "en_us", "--k", "4", "--json", timeout=60
    )
    assert run.returncode == 0, run.stderr
    assert f"via the query service at {served.url}: {served.cfg.index.alias}_g1" in run.stderr
    want = search(served.cfg, text="green shoe", filters=Filters(locale="en-US"), k=4)
    assert [h["listing_id"] for h in json.loads(run.stdout)] == [h.listing_id for h in want]
    # through the service the command loads no model library: a search costs a process start, no more
    probe = (
        "import sys; from vectorlake.cli import main; rc = main(['search', '--text', 'oak table']); "
        "print(sorted({'torch', 'pyspark', 'sentence_transformers', 'open_clip'} & "
        "{m.split('.')[0] for m in sys.modules}), file=sys.stderr); sys.exit(rc)"
    )
    python = str(PROJECT_ROOT / ".venv/bin/python")
    light = subprocess.run([python, "-c", probe], env=served.env, capture_output=True, text=True, timeout=60)
    assert light.returncode == 0 and light.stderr.splitlines()[-1] == "[]", light.stderr
    # a search for another alias is not sent to a service that serves this one
    other = load_config(environ=served.env | {"VECTORLAKE__INDEX__ALIAS": "someone-else"})
    alias = served.cfg.index.alias
    assert remote.serves(served.cfg) == (True, "")
    assert remote.serves(other) == (
        False,
        f"the query service serves the alias '{alias}', not 'someone-else'",
    )
    refused = _cli(served.env, "search", "--like", "nope", timeout=60)
    assert refused.returncode == 1 and "Traceback" not in refused.stderr
    assert (
        "the query service refused the search (HTTP 404): listing 'nope' is not in the index"
        in refused.stderr
    )


def test_a_cutover_and_a_rollback_are_followed_without_a_restart_or_a_failed_query(served: Served) -> None:
    cfg = served.cfg
    client = make_client(cfg)
    try:
        source = generations.live_index(client, cfg.index.alias)
        assert source is not None
        meta = generations.generation_meta(client, source)
        docs = [h["_source"] for h in client.search(index=source, body={"size": 100})["hits"]["hits"]]
    finally:
        client.close()
    gone = "l-000"  # the red steel chair: in the new generation it was deleted
    second = _create_generation(cfg, 2, [d for d in docs if d["listing_id"] != gone], meta)
    codes: list[int] = []
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            codes.append(_post(served, {"text": "red steel chair", "k": 3})[0])

    worker = threading.Thread(target=loop)
    worker.start()
    try:
        for target in (second, source):  # cutover, then rollback
            _point_alias(cfg, target)
            deadline = time.monotonic() + 20
            answer: dict[str, Any] = {}
            while time.monotonic() < deadline and answer.get("generation") != target:
                answer = _post(served, {"text": "red steel chair", "k": 3})[1]
            assert answer["generation"] == target
            ids = [h["listing_id"] for h in answer["hits"]]
            assert (gone in ids) == (target == source), ids
    finally:
        stop.set()
        worker.join()
    assert len(codes) > 5 and set(codes) == {200}, codes


def test_the_canary_records_a_baseline_then_fails_when_relevance_decays(served: Served) -> None:
    """Runs last: it spoils the live generation's text vectors of six listings."""
    from opensearchpy import helpers

    from vectorlake.ops import canary

    cfg = served.cfg
    first = canary.run(cfg)
    assert first.baseline is None and first.lines()[0].startswith(
        f"canary {cfg.index.alias}_g1: baseline recorded"
    )
    assert first.measure.queries == first.measure.judged == len(PRODUCTS) * len(COLORS)
    assert first.measure.recall_at_10 == 1.0 and first.measure.hit_at_10 == 1.0
    again = canary.run(cfg)
    assert (
        again.passed
        and again.baseline == first.measure
        and again.drops == {"recall_at_10": 0, "hit_at_10": 0}
    )

    # six listings get the opposite of their text vector: their labelled queries rank them last
    client = make_client(cfg)
    try:
        live = generations.live_index(client, cfg.index.alias)
        spoiled = [f"l-{i:03d}" for i in range(0, 24, 4)]
        vectors = {lid: client.get(index=live, id=lid)["_source"]["text_vector"] for lid in spoiled}
        helpers.bulk(
            client,
            ({"_op_type": "update", "_index": live, "_id": lid, "doc": {"text_vector": [-x for x in v]}}
             for lid, v in vectors.items()),
            refresh=True,
        )  # fmt: skip
    finally:
        client.close()
    run = _cli(served.env, "canary", timeout=120)
    assert run.returncode == 1, run.stdout + run.stderr
    assert run.stdout.splitlines() == [  # six of 24 queries miss their listing; the graph itself is fine
        f"canary {cfg.index.alias}_g1: FAILED: recall@10 1.000, hit@10 0.750 (24 queries, 24 judged)",
        "  baseline: recall@10 1.000, hit@10 1.000; allowed drop 0.02; hit_at_10 dropped 0.250",
    ], run.stdout
    after = canary.baseline(cfg, f"{cfg.index.alias}_g1")
    assert after == first.measure  # a failed check does not move the baseline
