"""Writers write only this lake's generations (issue 19): on the real OpenSearch and mlflow, no Spark.

Two lakes share one alias family: the first creates generation 1 and records it; the second finds the alias
pointing at a generation it did not create and refuses, until `vectorlake generations --adopt` takes it over
with a complete record. A lake whose live alias was removed refuses instead of making a new empty live index,
and `--adopt` points the alias back. A generation this lake created but has not recorded yet (a crash
between the create and the record, or another of its writers mid-create) is its own by ``_meta.lake``. And
nothing is written to a cluster that would create a missing generation on write.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from vectorlake.config import PROJECT_ROOT, Config, load_config
from vectorlake.embed import registry
from vectorlake.errors import IndexStateError
from vectorlake.index import generations
from vectorlake.index.client import make_client
from vectorlake.ops import lifecycle
from vectorlake.pipeline import targets


def _cfg(lake: Path, alias: str) -> Config:
    return load_config(
        environ=dict(os.environ) | {"VECTORLAKE__LAKE__ROOT": str(lake), "VECTORLAKE__INDEX__ALIAS": alias}
    )


@pytest.fixture
def alias(unique_name: str) -> Iterator[str]:
    yield unique_name
    client = make_client(load_config())
    try:
        client.indices.delete(index=f"{unique_name}_g*", params={"expand_wildcards": "all"})
    finally:
        client.close()


def _aliases(cfg: Config) -> dict[str, str]:
    client = make_client(cfg)
    try:
        return generations.alias_map(client, cfg.index)
    finally:
        client.close()


def _adopt_cli(cfg: Config, index: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ) | {
        "VECTORLAKE__LAKE__ROOT": cfg.lake.root,
        "VECTORLAKE__INDEX__ALIAS": cfg.index.alias,
    }
    vl = str(PROJECT_ROOT / ".venv/bin/vectorlake")
    return subprocess.run(
        [vl, "generations", "--adopt", index], env=env, capture_output=True, text=True, timeout=120
    )


def _row(cfg: Config, index: str) -> dict[str, Any]:
    return targets.recorded_generations(cfg)[index]


def test_a_lake_writes_only_generations_it_created_or_adopted(tmp_path: Path, alias: str) -> None:
    first, second = _cfg(tmp_path / "a", alias), _cfg(tmp_path / "b", alias)
    registry.register_all(first)
    g1 = generations.generation_name(alias, 1)

    # a lake with no generations and no alias: the first generation is created and recorded
    assert [t.index for t in targets.resolve_targets(first)] == [g1]
    assert _row(first, g1)["state"] == "live"

    # another lake meets the alias: refused in one line that names the alias, the index and the way out
    with pytest.raises(IndexStateError) as refused:
        targets.resolve_targets(second)
    message = str(refused.value)
    assert "\n" not in message and f"'{alias}' points at '{g1}'" in message and "did not create" in message
    assert f"vectorlake generations --adopt {g1}" in message
    assert lifecycle.list_generations(second) == []  # listing it does not adopt it either

    done = _adopt_cli(second, g1)
    assert done.returncode == 0, done.stderr[-2000:]
    assert f"adopted {g1}: live (behind live)" in done.stdout
    row = _row(second, g1)
    assert (row["state"], row["text_dim"], row["image_dim"]) == ("live", 384, 1280)
    assert row["text_model"] == _row(first, g1)["text_model"] and row["image_model"]
    assert [t.index for t in targets.resolve_targets(second)] == [g1]

    # the live alias removed: no new empty live index, the alias is pointed back by --adopt
    client = make_client(first)
    try:
        client.indices.update_aliases(body={"actions": [{"remove": {"index": g1, "alias": alias}}]})
        with pytest.raises(IndexStateError, match=rf"alias '{alias}' is missing but this lake records {g1}"):
            targets.resolve_targets(first)
        assert generations.generations(client, alias) == [g1]
    finally:
        client.close()
    assert lifecycle.adopt(first, g1).role == "live"
    assert _aliases(first) == {"live": g1}
    assert [t.index for t in targets.resolve_targets(first)] == [g1]

    bad = _adopt_cli(second, f"{alias}_g7")
    assert bad.returncode != 0 and f"index '{alias}_g7' does not exist" in bad.stderr
    assert "Traceback" not in bad.stderr


def test_a_generation_this_lake_created_but_did_not_record_is_its_own(tmp_path: Path, alias: str) -> None:
    """The create and the record are two steps: between them (another writer of the lake mid-create, or a
    crash) the generation's ``_meta.lake`` says whose it is; the next lifecycle operation records it."""
    cfg = _cfg(tmp_path / "lake", alias)
    registry.register_all(cfg)
    text, image = registry.resolve(cfg, "text"), registry.resolve(cfg, "image")
    meta = targets.generation_meta_for(text, image, cfg)
    assert meta["lake"] == cfg.lake.root
    client = make_client(cfg)
    try:
        index = generations.ensure_live_generation(client, cfg, meta["text_dim"], meta["image_dim"], meta)
    finally:
        client.close()
    assert targets.recorded_generations(cfg) == {}
    assert [t.index for t in targets.resolve_targets(cfg)] == [index]
    (listed,) = lifecycle.list_generations(cfg)  # the sync records it, complete
    assert (listed.index, listed.state, listed.text_model) == (index, "live", text.label)
    assert _row(cfg, index)["image_dim"] == meta["image_dim"]


def test_a_cluster_that_creates_missing_indexes_on_write_is_refused(tmp_path: Path, alias: str) -> None:
    """A write that races the deletion of a generation (retention, abandon) must fail, not create an empty
    index with guessed mappings: with ``action.auto_create_index`` allowing the family, writers refuse."""
    cfg = _cfg(tmp_path / "lake", alias)
    registry.register_all(cfg)
    targets._NO_AUTO_CREATE.clear()
    client = make_client(cfg)
    try:
        client.cluster.put_settings(body={"persistent": {"action.auto_create_index": "+t-*,-*"}})
        with pytest.raises(IndexStateError, match=r"action\.auto_create_index: '\+t-\*,-\*'"):
            targets.resolve_targets(cfg)
        assert generations.generations(client, alias) == []
    finally:
        client.cluster.put_settings(body={"persistent": {"action.auto_create_index": None}})
        client.close()
    assert [t.index for t in targets.resolve_targets(cfg)] == [generations.generation_name(alias, 1)]
