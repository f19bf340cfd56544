"""The demo's example searches, sent to the query service (`vectorlake stack up --with serve`).

    .venv/bin/python scripts/demo_searches.py LANDING_DIR

The requests `vectorlake search` sends when the service is up (same client, same output), for the first
three labelled queries of the generated catalog: text, text with filters inside the k-NN query, more like
the top hit, and an image query taken from a hit's own image URL (from silver, whatever the catalog's
layout), sent as base64. Each prints the time the service took (query embedding included).
"""

from __future__ import annotations

import base64
import json
import sys
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from vectorlake.cli import hit_lines
from vectorlake.config import Config, load_config
from vectorlake.errors import VectorlakeError
from vectorlake.query import Hit
from vectorlake.serve import remote


def timed(cfg: Config, label: str, body: dict[str, Any]) -> list[Hit]:
    answer = remote.search(cfg, body)
    print(f"--- {label} (the service took {answer['took_ms']:.0f} ms, {answer['generation']})")
    hits = [Hit(**h) for h in answer["hits"]]
    print(hit_lines(hits))
    return hits


def main(landing: Path) -> int:
    cfg = load_config()
    ok, why = remote.serves(cfg)
    if not ok:
        raise VectorlakeError(f"{why} (start it with `vectorlake stack up --with serve`)")
    lines = (landing / "queries.jsonl").read_text().splitlines()
    queries = [json.loads(line)["query"] for line in lines[:3]]
    seen: list[Hit] = []
    for q in queries:
        seen += timed(cfg, f'text: "{q}"', {"text": q, "k": 3})
    if not seen:
        print("no hits for the labelled queries: nothing more to show")
        return 0
    top = seen[0]
    only = {"locale": "en-US", "category_id": top.category_id}
    label = f'text: "{queries[0]}", only locale en-US and category {top.category_id}'
    timed(cfg, f"{label} (filters inside the k-NN query)", {"text": queries[0], "filters": only, "k": 3})
    timed(cfg, f"more like {top.listing_id} (its fused text+image vector)", {"like": top.listing_id, "k": 3})
    with_image = next((h for h in seen if h.image_id), None)
    url = _image_url(cfg, with_image.listing_id) if with_image else None
    if with_image is None or url is None or urlparse(url).scheme != "file":
        print("--- image: no hit above has a local image to query with")
        return 0
    image = Path(unquote(urlparse(url).path))
    data = base64.b64encode(image.read_bytes()).decode()
    timed(cfg, f"image of {with_image.listing_id}: {image}", {"image_b64": data, "k": 3})
    return 0


def _image_url(cfg: Config, listing_id: str) -> str | None:
    """The listing's primary image URL in silver (its own, whatever layout the catalog has)."""
    import pyarrow.dataset as ds

    from vectorlake.control import open_dataset
    from vectorlake.lake.tables import LakeTables

    opened = open_dataset(cfg, LakeTables(cfg.lake.root).listings)
    if opened is None:
        return None
    rows = opened[1].to_table(columns=["primary_image_url"], filter=ds.field("listing_id") == listing_id)
    urls = [u for u in rows.column("primary_image_url").to_pylist() if u]
    return urls[0] if urls else None


if __name__ == "__main__":
    try:
        sys.exit(main(Path(sys.argv[1])))
    except VectorlakeError as e:
        print(f"demo: error: {e}", file=sys.stderr)
        sys.exit(1)
