"""Which index generations a batch writes, each with its own models: live, building and rollback target.

`resolve_targets` reads the family aliases (``index.alias`` = live, ``<alias>_next`` = building,
``<alias>_prev`` = the rollback target) and each generation's ``_meta`` (the model versions it was built
with); the live generation is created, with the champion models, when the lake has none yet. Used by the
index query, the reindex (`target_for` one building generation) and the backfill.

Nothing is written to a cluster that would create a missing index on write (``action.auto_create_index``
must refuse the family's generations), and only this lake's generations are written: one recorded in its
control/index_generations, or one whose ``_meta.lake`` names this lake (created by it, the row not written
yet). An alias pointing anywhere else is refused with a one-line `IndexStateError` (`vectorlake generations
--adopt INDEX` takes such a generation over explicitly), and a lake that records generations but finds its
live alias gone never gets a new empty live index in their place.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from vectorlake.config import Config
from vectorlake.embed.registry import ModelRef


@dataclass(frozen=True)
class Target:
    """A generation the stream writes to: reached through `alias`, embedded with its own models."""

    alias: str  # the family alias it was resolved through (recorded in the index log)
    index: str  # the generation written
    text: ModelRef
    image: ModelRef
    image_dim: int


_REFS: dict[tuple[str, str, str], ModelRef] = {}


def model_ref(cfg: Config, role: str, version: str) -> ModelRef:
    """A registered model version, resolved once per process (a version's files never change)."""
    from vectorlake.embed import registry

    key = (cfg.mlflow_tracking_uri, role, version)
    if key not in _REFS:
        _REFS[key] = registry.resolve(cfg, role, version)
    return _REFS[key]


def _dim(ref: ModelRef) -> int:
    from vectorlake.embed.encoders import model_dim

    return model_dim(ref.role, ref.path)


def target_for(cfg: Config, client: Any, alias: str, index: str) -> Target:
    """The target for generation `index` (reached through `alias`), with the models its ``_meta`` names."""
    from vectorlake.index import generations

    meta = generations.generation_meta(client, index)
    text = model_ref(cfg, "text", generations.model_version(meta, "text"))
    image = model_ref(cfg, "image", generations.model_version(meta, "image"))
    dim = meta.get("image_dim")  # recorded at creation; older generations: read from the model
    return Target(alias, index, text, image, dim if isinstance(dim, int) else _dim(image))


def resolve_targets(cfg: Config) -> list[Target]:
    """The generations to write: live, building and rollback target; the live one is created if none."""
    from opensearchpy.exceptions import ConnectionError as OpenSearchConnectionError
    from opensearchpy.exceptions import TransportError

    from vectorlake.errors import IndexUnavailable
    from vectorlake.index.client import make_client

    client = make_client(cfg)
    try:
        return _resolve(cfg, client)
    except (OpenSearchConnectionError, TransportError) as e:
        raise IndexUnavailable(
            f"OpenSearch at {', '.join(cfg.opensearch_hosts)} is not reachable: {e}"
        ) from e
    finally:
        client.close()


def generation_meta_for(text: ModelRef, image: ModelRef, cfg: Config) -> dict[str, Any]:
    """The ``_meta`` of a new generation embedded with `text` and `image`."""
    return {
        "text_model": text.label,
        "image_model": image.label,
        "text_dim": _dim(text),
        "image_dim": _dim(image),
        "lake": cfg.lake.root,  # the lake that created it: its writers may write it before it is recorded
        "fusion": {
            "text_weight": cfg.embed.fusion.text_weight,
            "image_weight": cfg.embed.fusion.image_weight,
        },
    }


_NO_AUTO_CREATE: set[tuple[str, ...]] = set()  # clusters found not to create missing indexes on write
_REMEMBERS: set[str] = set()  # generations found to remember deletes for index.gc_deletes_s


def recorded_generations(cfg: Config) -> dict[str, dict[str, Any]]:
    """index -> control/index_generations row of this lake's generations of the family."""
    from vectorlake import control

    rows = control.generations_table(cfg).rows()
    return {r["index"]: r for r in rows if r["alias"] in (None, cfg.index.alias)}


def check_ours(cfg: Config, found: Mapping[str, str], recorded: Mapping[str, Any], client: Any) -> None:
    """Raise IndexStateError unless every generation behind the family's aliases is this lake's own."""
    from vectorlake.errors import IndexStateError
    from vectorlake.index import generations

    aliases = generations.family(cfg.index)
    for role, index in found.items():
        if index in recorded or generations.generation_meta(client, index).get("lake") == cfg.lake.root:
            continue
        raise IndexStateError(
            f"alias '{aliases[role]}' points at '{index}', which this lake ({cfg.lake.root}) did not "
            f"create: take it over with `vectorlake generations --adopt {index}`, or set index.alias to "
            "another family"
        )
    if "live" not in found:
        lost = sorted(i for i, r in recorded.items() if r["state"] == "live")
        if lost:
            raise IndexStateError(
                f"alias '{cfg.index.alias}' is missing but this lake records {', '.join(lost)} as live; no "
                f"new empty live index is made in its place: point the alias back with `vectorlake "
                f"generations --adopt {lost[-1]}`, or rebuild from the lake with `vectorlake reindex` and "
                "`vectorlake cutover`"
            )


def _resolve(cfg: Config, client: Any) -> list[Target]:
    from vectorlake.embed import registry
    from vectorlake.index import generations

    hosts = tuple(cfg.opensearch_hosts)
    if hosts not in _NO_AUTO_CREATE:  # once per process and cluster
        generations.refuse_auto_create(client, cfg.index)
        _NO_AUTO_CREATE.add(hosts)
    found = generations.alias_map(client, cfg.index)
    check_ours(cfg, found, recorded_generations(cfg), client)
    if "live" not in found:
        text = registry.resolve(cfg, "text")
        image = registry.resolve(cfg, "image")
        meta = generation_meta_for(text, image, cfg)
        index = generations.ensure_live_generation(client, cfg, meta["text_dim"], meta["image_dim"], meta)
        _record_first(cfg, index, meta)
        found["live"] = index
    aliases = generations.family(cfg.index)
    targets: dict[str, Target] = {}
    for role in ("live", "next", "prev"):
        behind = found.get(role)
        if behind is not None and behind not in targets:
            targets[behind] = target_for(cfg, client, aliases[role], behind)
        if behind is not None and role != "next" and behind not in _REMEMBERS:  # once per process
            generations.remember_deletes(client, cfg.index, behind)
            _REMEMBERS.add(behind)
    return list(targets.values())


def _record_first(cfg: Config, index: str, meta: Mapping[str, Any]) -> None:
    """Record a generation the stream created itself (no reindex: the first one) as live."""
    from datetime import UTC, datetime

    from vectorlake import control
    from vectorlake.index.generations import generation_number

    table = control.generations_table(cfg)
    if any(r["index"] == index for r in table.rows()):
        return
    now = datetime.now(UTC)
    table.upsert(
        [
            {
                "index": index,
                "generation": generation_number(cfg.index.alias, index),
                "alias": cfg.index.alias,
                "state": "live",
                "text_model": meta["text_model"],
                "image_model": meta["image_model"],
                "text_dim": meta["text_dim"],
                "image_dim": meta["image_dim"],
                "created_at": now,
                "live_at": now,
                "updated_at": now,
            }
        ]
    )
