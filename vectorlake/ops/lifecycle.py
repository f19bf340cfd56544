"""Index generations over their life: create (building) -> validate -> cutover (live) -> retired -> deleted.

    gen = create_generation(cfg, text_version="3")   # `vectorlake reindex --text-model 3` (then the load)
    report = validate(cfg, gen.index)                # the gate, recorded as an mlflow run
    cutover(cfg, gen.index)                          # one _aliases request
    rollback(cfg)                                    # the same swap, back to the generation before
    retention(cfg)                                   # delete retired generations past index.retention_hours

The aliases are the truth of what serves: ``index.alias`` (live), ``<alias>_next`` (the generation being
built; at most one) and ``<alias>_prev`` (the generation a rollback returns to). The stream writes every
change to all three, each with its own models, so a building generation misses nothing and a rollback
serves current data. ``control/index_generations`` records each generation's state and timestamps; every
operation first brings it in line with the aliases, so a crash between an alias swap and its record is
repaired by the next operation (or by running the same one again).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from vectorlake import control
from vectorlake.config import Config
from vectorlake.errors import IndexStateError
from vectorlake.pipeline.targets import recorded_generations

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Generation:
    index: str
    generation: int | None
    state: str  # building | live | retired | deleted
    text_model: str | None
    image_model: str | None
    role: str | None  # live | next | prev: the family alias pointing at it now, if any
    validation: str | None
    created_at: datetime | None
    live_at: datetime | None
    retired_at: datetime | None

    def line(self) -> str:
        behind = f" (behind {self.role})" if self.role else ""
        gate = f", gate {self.validation}" if self.validation else ""
        return f"{self.index}: {self.state}{behind}, models {self.text_model} + {self.image_model}{gate}"


@dataclass(frozen=True)
class Swap:
    """One alias swap: `live` is now served, `retired` was before (None if nothing was live)."""

    live: str
    retired: str | None
    action: str  # cutover | rollback

    def line(self) -> str:
        was = f"; {self.retired} retired, kept for rollback" if self.retired else ""
        return f"{self.action}: {self.live} is live{was}"


def _now() -> datetime:
    return datetime.now(UTC)


def _client(cfg: Config) -> OpenSearch:
    from vectorlake.index.client import make_client

    return make_client(cfg)


def sync(cfg: Config, client: OpenSearch) -> dict[str, str]:
    """Bring the control table in line with the aliases; returns role -> index (`alias_map`)."""
    from vectorlake.index import generations

    found = generations.alias_map(client, cfg.index)
    rows = recorded_generations(cfg)
    now = _now()
    fixes: list[dict[str, Any]] = []
    live = found.get("live")
    for index, row in rows.items():
        if index == live and row["state"] != "live":
            fixes.append({"index": index, "state": "live", "live_at": now, "updated_at": now})
        elif index != live and row["state"] == "live":
            fixes.append({"index": index, "state": "retired", "retired_at": now, "updated_at": now})
    if live is not None and live not in rows:
        meta = generations.generation_meta(client, live)
        if meta.get("lake") == cfg.lake.root:  # created by this lake, its row never written (a crash)
            fixes.append(_complete_row(cfg, live, meta, "live", now))
        else:
            log.warning(
                "alias '%s' points at %s, which this lake did not create: not recorded (writers refuse it; "
                "`vectorlake generations --adopt %s` takes it over)",
                cfg.index.alias, live, live,
            )  # fmt: skip
    if fixes:
        log.warning("control/index_generations disagreed with the aliases; recorded %s", fixes)
        control.generations_table(cfg).upsert(fixes)
    return found


def _complete_row(
    cfg: Config, index: str, meta: Mapping[str, Any], state: str, now: datetime
) -> dict[str, Any]:
    """A control row for generation ``index`` with the models and dimensions its ``_meta`` records."""
    from vectorlake.index import generations

    dims = {k: meta.get(k) for k in ("text_dim", "image_dim")}
    if not all(isinstance(v, int) for v in dims.values()):
        raise IndexStateError(
            f"{index}'s _meta records no text_dim and image_dim: not a vectorlake generation"
        )
    for role in ("text", "image"):
        generations.model_version(meta, role)  # raises when _meta names no such model
    return {
        "index": index,
        "generation": generations.generation_number(cfg.index.alias, index),
        "alias": cfg.index.alias,
        "state": state,
        "text_model": meta["text_model"],
        "image_model": meta["image_model"],
        **dims,
        "created_at": now,
        "updated_at": now,
        **({"live_at": now} if state == "live" else {}),
    }


def adopt(cfg: Config, index: str) -> Generation:
    """Take over generation ``index`` of this family that this lake did not create (another lake's, or one
    recorded nowhere): record it with the models and dimensions of its ``_meta``, and make it live when the
    live alias points nowhere. Writers refuse such a generation until it is adopted."""
    from vectorlake.index import generations

    alias = cfg.index.alias
    if generations.generation_number(alias, index) is None:
        raise IndexStateError(f"'{index}' is not a generation of '{alias}' (expected {alias}_g<N>)")
    client = _client(cfg)
    try:
        if not client.indices.exists(index=index):
            raise IndexStateError(f"index '{index}' does not exist")
        meta = generations.generation_meta(client, index)
        found = generations.alias_map(client, cfg.index)
        if "live" not in found:
            actions = [{"add": {"index": index, "alias": alias, "is_write_index": True}}]
            client.indices.update_aliases(body={"actions": actions})
            found["live"] = index
            log.info("alias '%s' now points at %s", alias, index)
    finally:
        client.close()
    role = next((r for r, i in found.items() if i == index), None)
    state = {"live": "live", "next": "building"}.get(role or "", "retired")
    known = recorded_generations(cfg).get(index)
    row = _complete_row(cfg, index, meta, state, _now())
    if known is not None:
        row["created_at"] = known.get("created_at") or row["created_at"]
    control.generations_table(cfg).upsert([row])
    return _generation({**_EMPTY, **row}, role)


def list_generations(cfg: Config) -> list[Generation]:
    """Every recorded generation of the family, oldest first, with the alias pointing at it now."""
    client = _client(cfg)
    try:
        found = sync(cfg, client)
    finally:
        client.close()
    roles = {index: role for role, index in found.items()}
    rows = sorted(recorded_generations(cfg).values(), key=lambda r: (r["generation"] or 0, r["index"]))
    return [_generation(r, roles.get(r["index"])) for r in rows]


def _generation(row: Mapping[str, Any], role: str | None) -> Generation:
    return Generation(
        index=row["index"],
        generation=row["generation"],
        state=row["state"],
        text_model=row["text_model"],
        image_model=row["image_model"],
        role=role,
        validation=row["validation"],
        created_at=row["created_at"],
        live_at=row["live_at"],
        retired_at=row["retired_at"],
    )


def create_generation(
    cfg: Config, text_version: str | None = None, image_version: str | None = None
) -> Generation:
    """The building generation for these model versions (default: the ``champion`` aliases).

    Idempotent: if a generation with the same models is already building, that one is returned (a reindex
    that crashed resumes into it). A building generation with other models must first be cut over or
    abandoned.
    """
    from vectorlake.embed import registry
    from vectorlake.index import generations
    from vectorlake.pipeline.targets import generation_meta_for

    text = registry.resolve(cfg, "text", text_version)
    image = registry.resolve(cfg, "image", image_version)
    client = _client(cfg)
    try:
        found = sync(cfg, client)
        table = control.generations_table(cfg)
        building = found.get("next")
        if building is not None:
            meta = generations.generation_meta(client, building)
            if (meta.get("text_model"), meta.get("image_model")) != (text.label, image.label):
                raise IndexStateError(
                    f"{building} is being built with {meta.get('text_model')} + {meta.get('image_model')}: "
                    f"cut it over (`vectorlake cutover`) or abandon it (`vectorlake abandon`) first"
                )
            log.info("%s is already building with %s + %s: resuming it", building, text.label, image.label)
            row = next((r for r in table.rows() if r["index"] == building), None)
            return _generation(row or {"index": building, **_EMPTY}, "next")
        recorded = [r["generation"] or 0 for r in table.rows() if r["alias"] == cfg.index.alias]
        number = max(generations.next_number(client, cfg.index.alias), 1 + max(recorded, default=0))
        meta = generation_meta_for(text, image, cfg)
        index = generations.create_building(
            client, cfg.index, number, meta["text_dim"], meta["image_dim"], meta
        )
    finally:
        client.close()
    now = _now()
    row = {
        "index": index,
        "generation": number,
        "alias": cfg.index.alias,
        "state": "building",
        "text_model": text.label,
        "image_model": image.label,
        "text_dim": meta["text_dim"],
        "image_dim": meta["image_dim"],
        "created_at": now,
        "updated_at": now,
    }
    table.upsert([row])
    return _generation({**_EMPTY, **row}, "next")


_EMPTY: dict[str, Any] = {
    "generation": None,
    "state": "building",
    "text_model": None,
    "image_model": None,
    "validation": None,
    "created_at": None,
    "live_at": None,
    "retired_at": None,
}


def building(cfg: Config, client: OpenSearch, index: str | None) -> str:
    """`index` if it is the generation behind the ``next`` alias, or that generation when `index` is None."""
    found = sync(cfg, client)
    current = found.get("next")
    if current is None:
        raise IndexStateError(
            f"no generation is building (no alias '{cfg.index.next_alias}'): "
            "start one with `vectorlake reindex`"
        )
    if index is not None and index != current:
        raise IndexStateError(f"{index} is not the generation being built ({current} is)")
    return current


def mark_loaded(cfg: Config, index: str) -> None:
    now = _now()
    control.generations_table(cfg).upsert([{"index": index, "loaded_at": now, "updated_at": now}])


def record_validation(cfg: Config, index: str, passed: bool, run_id: str, report: str) -> None:
    now = _now()
    control.generations_table(cfg).upsert(
        [
            {
                "index": index,
                "validation": "passed" if passed else "failed",
                "validation_run_id": run_id,
                "validation_report": report,
                "validated_at": now,
                "updated_at": now,
            }
        ]
    )


def cutover(cfg: Config, index: str | None = None) -> Swap:
    """Make the building generation (or `index`, which must be it) live with one ``_aliases`` request.

    Refused unless its validation passed. Running it again after it succeeded reports the same swap.
    """
    from vectorlake.index import generations

    client = _client(cfg)
    try:
        found = sync(cfg, client)
        if index is not None and found.get("live") == index and found.get("next") is None:
            return Swap(index, found.get("prev"), "cutover")  # done already (e.g. a retried task)
        new = building(cfg, client, index)
        row = next((r for r in control.generations_table(cfg).rows() if r["index"] == new), None)
        if row is None or row["validation"] != "passed":
            unchecked = row is None or row["validation"] is None
            state = "has not been validated" if unchecked else "failed its gate"
            detail = f": {row['validation_report']}" if row and row["validation_report"] else ""
            raise IndexStateError(
                f"{new} {state}{detail}; run `vectorlake validate` and cut over once it passes"
            )
        client.indices.update_aliases(body={"actions": generations.swap_actions(cfg.index, new, found)})
    finally:
        client.close()
    old = found.get("live")
    _record_swap(cfg, new, old)
    log.info("cutover: %s live, %s retired", new, old)
    return Swap(new, old, "cutover")


def rollback_target(cfg: Config) -> str:
    """The generation `rollback` would serve (the one behind the ``prev`` alias)."""
    client = _client(cfg)
    try:
        prev = sync(cfg, client).get("prev")
    finally:
        client.close()
    if prev is None:
        raise IndexStateError(f"nothing to roll back to: no alias '{cfg.index.prev_alias}'")
    return prev


def rollback(cfg: Config, to: str | None = None) -> Swap:
    """Serve the generation behind the ``prev`` alias again (the live one becomes ``prev``).

    With ``to`` (from `rollback_target`), running it again after it succeeded changes nothing instead of
    swapping back a second time: a retried task is safe.
    """
    from vectorlake.index import generations

    client = _client(cfg)
    try:
        found = sync(cfg, client)
        if to is not None and found.get("live") == to:
            return Swap(to, found.get("prev"), "rollback")  # done already
        prev = found.get("prev")
        if to is not None and prev != to:
            raise IndexStateError(f"cannot roll back to {to}: the rollback target is {prev}")
        if prev is None:
            raise IndexStateError(
                f"nothing to roll back to: no alias '{cfg.index.prev_alias}' (its generation was deleted by "
                f"the retention, or no cutover happened yet)"
            )
        client.indices.update_aliases(body={"actions": generations.swap_actions(cfg.index, prev, found)})
    finally:
        client.close()
    old = found.get("live")
    _record_swap(cfg, prev, old)
    log.info("rollback: %s live again, %s retired", prev, old)
    return Swap(prev, old, "rollback")


def _record_swap(cfg: Config, new: str, old: str | None) -> None:
    now = _now()
    rows: list[dict[str, Any]] = [{"index": new, "state": "live", "live_at": now, "updated_at": now}]
    if old is not None:
        rows.append({"index": old, "state": "retired", "retired_at": now, "updated_at": now})
    control.generations_table(cfg).upsert(rows)


def abandon(cfg: Config, index: str | None = None) -> str:
    """Delete the building generation (e.g. after its gate failed); the stream stops writing it."""
    client = _client(cfg)
    try:
        doomed = building(cfg, client, index)
        client.indices.delete(index=doomed)
    finally:
        client.close()
    now = _now()
    control.generations_table(cfg).upsert(
        [{"index": doomed, "state": "deleted", "deleted_at": now, "updated_at": now}]
    )
    return doomed


def retention(cfg: Config, now: datetime | None = None) -> list[str]:
    """Delete retired generations retired more than ``index.retention_hours`` ago; returns their names.

    The live generation is never deleted, whatever its record says.
    """
    from opensearchpy import NotFoundError

    now = now or _now()
    limit = timedelta(hours=cfg.index.retention_hours)
    client = _client(cfg)
    deleted = []
    try:
        found = sync(cfg, client)
        for row in control.generations_table(cfg).rows():
            if row["alias"] not in (None, cfg.index.alias) or row["state"] != "retired":
                continue
            if row["index"] in (found.get("live"), found.get("next")) or row["retired_at"] is None:
                continue
            if now - row["retired_at"] < limit:
                continue
            try:
                client.indices.delete(index=row["index"])
            except NotFoundError:
                log.info("%s was already gone", row["index"])
            deleted.append(row["index"])
    finally:
        client.close()
    if deleted:
        stamp = _now()
        control.generations_table(cfg).upsert(
            [{"index": i, "state": "deleted", "deleted_at": stamp, "updated_at": stamp} for i in deleted]
        )
        log.info("retention deleted %s", ", ".join(deleted))
    return deleted
