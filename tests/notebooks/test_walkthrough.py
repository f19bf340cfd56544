"""notebooks/search_walkthrough.ipynb, executed top to bottom against the local stack.

    .venv/bin/python -m pytest tests/notebooks -q

The notebook runs in a kernel of the project's virtualenv (a kernel spec written under a temporary
JUPYTER_PATH; nothing is registered globally), with its lake, alias and landing folder pointed at a
temporary lake and a fresh alias, and with a small catalog in place of its parameters. Its last cell prints a
JSON summary; the test checks it against OpenSearch and the lake read independently: the filters hold on
every hit and the filtered search returns k hits of the filtered set, the image query (read from the
listing's own image URL in silver) finds its own listing, more-like-this leaves the seed out and its score is
the numpy cosine of the stored vectors, the freshness plot is a real image over every applied write of the
run. The alias's indices are deleted afterwards.
"""

from __future__ import annotations

import base64
import json
import os
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vectorlake.config import PROJECT_ROOT, Config, load_config

# the notebook runs the whole pipeline in its own Spark: 3-4 minutes on a quiet 2-core machine, over 11
# under load; each cell has its own limit (CELL_TIMEOUT_S)
pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1500)]

NOTEBOOK = PROJECT_ROOT / "notebooks" / "search_walkthrough.ipynb"
VENV = PROJECT_ROOT / ".venv"
PARAMETERS: dict[str, Any] = {
    "SEED": 7,
    "LISTINGS": 40,
    "SELLERS": 6,
    "EVENTS": 240,
    "IMAGE_SIZE": (64, 48),
    "K": 5,
}
CELL_TIMEOUT_S = 600
PNG = b"\x89PNG\r\n\x1a\n"


@dataclass(frozen=True)
class Executed:
    cfg: Config
    nb: Any  # nbformat.NotebookNode
    summary: dict[str, Any]
    seconds: float


def _kernel_spec(root: Path) -> Path:
    """A `python3` kernel spec that runs the venv's interpreter; JUPYTER_PATH=root makes it win."""
    folder = root / "kernels" / "python3"
    folder.mkdir(parents=True)
    spec = {
        "argv": [str(VENV / "bin" / "python"), "-m", "ipykernel_launcher", "-f", "{connection_file}"],
        "display_name": "Python 3 (vectorlake .venv)",
        "language": "python",
    }
    (folder / "kernel.json").write_text(json.dumps(spec))
    return root


def _read_notebook() -> Any:
    import nbformat

    return nbformat.read(NOTEBOOK, as_version=4)  # type: ignore[no-untyped-call]  # nbformat is untyped


def _tagged(nb: Any, tag: str) -> Any:
    cells = [c for c in nb.cells if tag in c.metadata.get("tags", [])]
    assert len(cells) == 1, f"expected one cell tagged {tag!r}, found {len(cells)}"
    return cells[0]


def _stdout(cell: Any) -> str:
    return "".join(o["text"] for o in cell.outputs if o["output_type"] == "stream" and o["name"] == "stdout")


def _drop_indices(cfg: Config) -> None:
    """Delete every generation of the test's alias (whatever its read/next/prev aliases point at)."""
    from vectorlake.index.client import make_client

    client = make_client(cfg)
    try:
        for index in client.indices.get(index=f"{cfg.index.alias}_g*", params={"expand_wildcards": "all"}):
            client.indices.delete(index=index)
    finally:
        client.close()


@pytest.fixture(scope="module")
def executed(local_stack: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Executed]:
    import nbformat
    from nbclient import NotebookClient

    tmp = tmp_path_factory.mktemp("walkthrough")
    env = {
        "VECTORLAKE__LAKE__ROOT": str(tmp / "lake"),
        "VECTORLAKE__INDEX__ALIAS": f"t-walkthrough-{os.getpid()}-{uuid.uuid4().hex[:6]}",
        "VECTORLAKE__SOURCES__LANDING_DIR": str(tmp / "landing"),
        "JUPYTER_PATH": str(_kernel_spec(tmp / "jupyter")),
        "PATH": f"{VENV / 'bin'}{os.pathsep}{os.environ.get('PATH', '')}",
    }
    cfg = load_config(environ=dict(os.environ) | env)
    nb = _read_notebook()
    params = _tagged(nb, "parameters")
    injected = nbformat.v4.new_code_cell(  # type: ignore[no-untyped-call]
        "\n".join(f"{name} = {value!r}" for name, value in PARAMETERS.items()),
        metadata={"tags": ["injected-parameters"]},
    )
    nb.cells.insert(nb.cells.index(params) + 1, injected)
    try:
        with pytest.MonkeyPatch.context() as mp:
            for name, value in env.items():
                mp.setenv(name, value)
            client = NotebookClient(
                nb,
                kernel_name="python3",
                timeout=CELL_TIMEOUT_S,
                startup_timeout=120,
                resources={"metadata": {"path": str(NOTEBOOK.parent)}},
            )
            t0 = time.monotonic()
            try:
                client.execute()
            finally:  # the executed notebook, with its outputs (and the error, if a cell failed)
                nbformat.write(nb, tmp / "search_walkthrough.executed.ipynb")  # type: ignore[no-untyped-call]
            seconds = time.monotonic() - t0
        summary = json.loads(_stdout(_tagged(nb, "summary")))
        print(f"notebook executed in {seconds:.0f} s (outputs in {tmp})", file=sys.stderr)
        yield Executed(cfg, nb, summary, seconds)
    finally:
        _drop_indices(cfg)


def _docs(cfg: Config, query: dict[str, Any]) -> list[dict[str, Any]]:
    from vectorlake.index.client import make_client

    client = make_client(cfg)
    try:
        found = client.search(index=cfg.index.alias, body={"size": 1000, "query": query, "_source": False})
    finally:
        client.close()
    return list(found["hits"]["hits"])


def test_the_committed_notebook_has_no_outputs() -> None:
    nb = _read_notebook()
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert code and all(not c.outputs and c.execution_count is None for c in code)
    assert nb.metadata["kernelspec"]["name"] == "python3"


def test_it_ran_in_the_venv_against_the_temporary_lake_and_alias(executed: Executed) -> None:
    s = executed.summary
    # the kernel is the project's virtualenv, not whichever python a global kernel spec names
    assert Path(s["prefix"]).resolve() == VENV.resolve()
    assert s["config"] == {
        "lake_root": executed.cfg.lake.root,
        "alias": executed.cfg.index.alias,
        "landing_dir": executed.cfg.sources.landing_dir,
    }
    assert all(c.execution_count is not None for c in executed.nb.cells if c.cell_type == "code")
    outputs = [o for c in executed.nb.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert Path(executed.cfg.lake.root, "gold", "index_log", "_delta_log").is_dir()
    served = _docs(executed.cfg, {"match_all": {}})
    assert 10 <= len(served) <= PARAMETERS["LISTINGS"]


def test_text_search_finds_a_labelled_listing(executed: Executed) -> None:
    text = executed.summary["text"]
    hits = text["hits"]
    assert len(hits) == PARAMETERS["K"]
    scores = [h["score"] for h in hits]
    assert scores == sorted(scores, reverse=True) and -1 <= scores[-1] <= scores[0] <= 1
    assert set(text["relevant"]) & {h["listing_id"] for h in hits}, text


def test_filters_hold_on_every_hit_and_k_come_from_the_filtered_set(executed: Executed) -> None:
    f = executed.summary["text_filtered"]
    top = executed.summary["text"]["hits"][0]
    wanted = {"category_id": top["category_id"], "locale": top["locale"], **f["filters"]["attributes"]}
    assert f["filters"]["locale"] != top["locale"]  # given as a user types it, normalized by search
    hits = f["hits"]
    assert hits and hits[0]["listing_id"] == top["listing_id"]
    for h in hits:
        got = {"category_id": h["category_id"], "locale": h["locale"]}
        got |= {k: h["attributes"].get(k) for k in f["filters"]["attributes"]}
        assert got == wanted, h
    # filtering inside the k-NN clause: k hits unless fewer documents match, all of them then
    terms = [{"term": {k: v}} for k, v in wanted.items() if k in ("category_id", "locale")]
    terms += [{"term": {f"attributes.{k}": v}} for k, v in f["filters"]["attributes"].items()]
    matching = {d["_id"] for d in _docs(executed.cfg, {"bool": {"filter": terms}})}
    assert len(hits) == min(PARAMETERS["K"], len(matching))
    assert {h["listing_id"] for h in hits} <= matching


def test_the_image_query_is_read_from_the_listings_own_url_not_the_landing_layout() -> None:
    # a lake not written by `vectorlake generate` has its images wherever its media events say
    source = _tagged(_read_notebook(), "image-search").source
    assert "primary_image_url" in source
    assert "landing" not in source and ".jpg" not in source


def test_an_image_query_finds_its_own_listing_first(executed: Executed) -> None:
    from deltalake import DeltaTable

    from vectorlake.lake.tables import LakeTables

    image = executed.summary["image"]
    listings = DeltaTable(LakeTables(executed.cfg.lake.root).listings).to_pandas(
        columns=["listing_id", "primary_image_id", "primary_image_url"]
    )
    (row,) = listings[listings["listing_id"] == image["query_listing_id"]].itertuples(index=False)
    # the query image is the one silver names for the listing, read from its URL
    assert image["query_image_url"] == row.primary_image_url
    assert image["query_image_id"] == row.primary_image_id
    hits = image["hits"]
    assert hits[0]["listing_id"] == image["query_listing_id"]
    assert hits[0]["image_id"] == image["query_image_id"]
    assert hits[0]["score"] > 0.99
    assert all(h["category_id"] == image["filters"]["category_id"] for h in hits)
    assert all(h["score"] < hits[0]["score"] for h in hits[1:])


def test_more_like_this_leaves_the_seed_out_and_scores_are_cosines(executed: Executed) -> None:
    from vectorlake.index.client import make_client
    from vectorlake.index.search import document_vector

    like = executed.summary["like"]
    hits = like["hits"]
    assert len(hits) == PARAMETERS["K"]
    assert like["seed"] not in {h["listing_id"] for h in hits}
    assert like["seed"] == executed.summary["text"]["hits"][0]["listing_id"]
    assert hits[0]["score"] > 0.6
    client = make_client(executed.cfg)
    try:
        vectors = {
            lid: np.array(document_vector(client, executed.cfg.index.alias, lid, "fused_vector"))
            for lid in [like["seed"], *(h["listing_id"] for h in hits)]
        }
    finally:
        client.close()
    seed = vectors[like["seed"]]
    for h in hits:
        v = vectors[h["listing_id"]]
        cosine = float(seed @ v / (np.linalg.norm(seed) * np.linalg.norm(v)))
        assert h["score"] == pytest.approx(cosine, abs=1e-3), h["listing_id"]
    assert like["top_cosine_numpy"] == pytest.approx(hits[0]["score"], abs=1e-3)


def test_the_freshness_plot_covers_every_applied_write_of_the_run(executed: Executed) -> None:
    import pandas as pd
    from deltalake import DeltaTable

    from vectorlake.lake.tables import LakeTables

    fresh = executed.summary["freshness"]
    tables = LakeTables(executed.cfg.lake.root)
    log = DeltaTable(tables.index_log).to_pandas(columns=["listing_id", "event_ts", "outcome"])
    applied = log[log["outcome"] == "applied"]
    # the "received" clock starts at the bronze listing or media event whose time is the state's newest
    # (`event_ts`); a state whose newest event is a seller-policy event has none, and is not timed
    received = {
        (lid, int(ts))
        for kind in ("listing_changes", "media")
        for lid, ts in DeltaTable(tables.bronze(kind))
        .to_pandas(columns=["listing_id", "event_ts_ms"])
        .itertuples(index=False)
    }
    event_ms = (applied["event_ts"] - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(milliseconds=1)
    pairs = zip(applied["listing_id"], event_ms, strict=True)
    timed = sum((lid, int(ms)) in received for lid, ms in pairs)
    assert fresh["scope"] == "this run"
    assert fresh["writes"] == timed > len(applied) // 2
    assert 0 <= fresh["min_s"] <= fresh["p50_s"] <= fresh["p95_s"] <= fresh["max_s"]
    assert fresh["max_s"] < executed.seconds  # received during this run, indexed before it ended
    cell = _tagged(executed.nb, "freshness-plot")
    images = [o for o in cell.outputs if o.output_type == "display_data" and "image/png" in o.data]
    assert len(images) == 1
    png = base64.b64decode(images[0].data["image/png"])
    assert png.startswith(PNG) and len(png) > 10_000
