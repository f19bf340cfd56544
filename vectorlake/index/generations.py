"""Index generations: physical indexes ``<alias>_g<N>`` that are only ever reached through an alias."""

from __future__ import annotations

import fnmatch
import logging
import re
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from vectorlake.config import Config, IndexConfig
from vectorlake.errors import IndexStateError
from vectorlake.index.mappings import index_body

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

log = logging.getLogger(__name__)


def generation_name(alias: str, number: int) -> str:
    """The physical index of generation ``number`` behind ``alias``."""
    if number < 1:
        raise ValueError(f"generation numbers start at 1, got {number}")
    return f"{alias}_g{number}"


def generation_number(alias: str, index: str) -> int | None:
    """N for ``<alias>_g<N>``, None for any other name."""
    match = re.fullmatch(re.escape(alias) + r"_g([1-9][0-9]*)", index)
    return int(match.group(1)) if match else None


def live_index(client: OpenSearch, alias: str) -> str | None:
    """The index ``alias`` points at (its write index if it points at several), or None if no alias.

    Raises IndexStateError if ``alias`` is a plain index, or points at several indexes with no write index.
    """
    from opensearchpy import NotFoundError

    try:
        found: Mapping[str, Any] = client.indices.get_alias(name=alias)
    except NotFoundError:
        if client.indices.exists(index=alias):
            raise IndexStateError(
                f"'{alias}' is a plain index, not an alias: move its documents to a generation "
                f"('{alias}_g1') and delete it, then vectorlake creates the alias"
            ) from None
        return None
    indexes = sorted(found)
    if len(indexes) == 1:
        return indexes[0]
    writers = [i for i in indexes if found[i]["aliases"][alias].get("is_write_index")]
    if len(writers) != 1:
        raise IndexStateError(
            f"alias '{alias}' points at {indexes} and none is its write index: "
            "point it at one generation with one _aliases request"
        )
    return writers[0]


def generations(client: OpenSearch, alias: str) -> list[str]:
    """Every existing ``<alias>_g<N>`` index, by N, whether an alias points at it or not."""
    found = client.indices.get(index=f"{alias}_g*", params={"expand_wildcards": "all"})
    named = [(n, i) for i in found if (n := generation_number(alias, i)) is not None]
    return [i for _, i in sorted(named)]


def ensure_live_generation(
    client: OpenSearch, cfg: Config, text_dim: int, image_dim: int, meta: Mapping[str, Any]
) -> str:
    """The live index behind ``cfg.index.alias``; if there is none, create the next generation with it.

    The index and its alias are created by one request (the create body names the alias, as write
    index), so no reader ever sees an index without its alias, and of two processes racing here one
    creates the generation and the other finds it.
    """
    from opensearchpy import RequestError

    alias = cfg.index.alias
    live = live_index(client, alias)
    if live is not None:
        return live
    existing = generations(client, alias)
    number = 1 + max((generation_number(alias, i) or 0 for i in existing), default=0)
    name = generation_name(alias, number)
    body = index_body(cfg.index, text_dim, image_dim, meta)
    body["aliases"] = {alias: {"is_write_index": True}}
    try:
        client.indices.create(index=name, body=body)
    except RequestError as e:
        if e.error != "resource_already_exists_exception":
            raise
        live = live_index(client, alias)  # another process created it first
        if live is None:
            raise IndexStateError(
                f"index '{name}' exists but alias '{alias}' does not point at it: "
                f"point the alias at the generation to serve, or delete '{name}'"
            ) from e
        return live
    log.info("created index generation %s behind alias %s", name, alias)
    return name


def generation_meta(client: OpenSearch, index: str) -> dict[str, Any]:
    """The ``_meta`` of an index's mapping (model versions, ...); {} if it has none."""
    found = client.indices.get_mapping(index=index)
    (mapping,) = found.values()
    return dict(mapping["mappings"].get("_meta", {}))


def model_version(meta: Mapping[str, Any], role: str) -> str:
    """The version of the `role` ("text" or "image") model a generation's ``_meta`` names."""
    label = meta.get(f"{role}_model")
    if not isinstance(label, str) or "/" not in label:
        raise IndexStateError(
            f"the index generation's _meta has no {role}_model (expected '<model>/<version>')"
        )
    return label.rsplit("/", 1)[1]


def family(cfg: IndexConfig) -> dict[str, str]:
    """The aliases of a generation family by role: live (``alias``), next (building), prev (rollback)."""
    return {"live": cfg.alias, "next": cfg.next_alias, "prev": cfg.prev_alias}


def alias_map(client: OpenSearch, cfg: IndexConfig) -> dict[str, str]:
    """role -> physical index for each family alias that exists (the write index where there are several)."""
    out = {}
    for role, alias in family(cfg).items():
        index = live_index(client, alias)
        if index is not None:
            out[role] = index
    return out


def next_number(client: OpenSearch, alias: str) -> int:
    """N of the next generation: one more than any ``<alias>_g<N>`` that exists (deleted ones are not reused
    while their control row remembers them: callers pass those too)."""
    return 1 + max((generation_number(alias, i) or 0 for i in generations(client, alias)), default=0)


def create_building(
    client: OpenSearch, cfg: IndexConfig, number: int, text_dim: int, image_dim: int, meta: Mapping[str, Any]
) -> str:
    """Create generation ``number`` behind the ``next`` alias, tuned for a bulk load.

    Refresh is off and there are no replicas during the load (`finish_build` restores both), and the index
    remembers deletes for ``index.build_gc_deletes``: the bulk load writes listing states read a while
    earlier, and a delete the stream applied meanwhile must still win over them by version.
    """
    name = generation_name(cfg.alias, number)
    body = index_body(cfg, text_dim, image_dim, meta)
    body["settings"]["index"].update(
        {"refresh_interval": "-1", "number_of_replicas": 0, "gc_deletes": cfg.build_gc_deletes}
    )
    body["aliases"] = {cfg.next_alias: {"is_write_index": True}}
    client.indices.create(index=name, body=body)
    log.info("created index generation %s behind alias %s", name, cfg.next_alias)
    return name


def finish_build(client: OpenSearch, cfg: IndexConfig, index: str) -> None:
    """Restore the serving settings after a bulk load (the delete memory too: the bulk load's old states are
    written) and make everything searchable."""
    serving = {"refresh_interval": cfg.refresh_interval, "number_of_replicas": cfg.replicas}
    client.indices.put_settings(
        index=index, body={"index": {**serving, "gc_deletes": f"{cfg.gc_deletes_s}s"}}
    )
    client.indices.refresh(index=index)


def swap_actions(cfg: IndexConfig, new: str, current: Mapping[str, str]) -> list[dict[str, Any]]:
    """The one ``_aliases`` request that makes ``new`` live (pure).

    ``current`` is `alias_map`'s answer. ``new`` gets the read alias (as write index) and loses ``next`` or
    ``prev``, whichever it had; the generation live until now becomes ``prev`` (the rollback target); an
    older ``prev`` loses the alias (it stays retired until the retention deletes it).
    """
    live, nxt, prev = (current.get(r) for r in ("live", "next", "prev"))
    if live == new:
        raise IndexStateError(f"{new} is already live behind '{cfg.alias}'")
    actions: list[dict[str, Any]] = []
    if nxt == new:
        actions.append({"remove": {"index": new, "alias": cfg.next_alias}})
    if prev is not None and prev != live:
        actions.append({"remove": {"index": prev, "alias": cfg.prev_alias}})
    if live is not None:
        actions.append({"remove": {"index": live, "alias": cfg.alias}})
        actions.append({"add": {"index": live, "alias": cfg.prev_alias, "is_write_index": True}})
    actions.append({"add": {"index": new, "alias": cfg.alias, "is_write_index": True}})
    return actions


def auto_create_index(client: OpenSearch) -> str:
    """The cluster's effective ``action.auto_create_index`` (OpenSearch's default, true, when unset)."""
    found = client.cluster.get_settings(params={"include_defaults": "true", "flat_settings": "true"})
    for level in ("transient", "persistent", "defaults"):
        value = (found.get(level) or {}).get("action.auto_create_index")
        if value is not None:
            return str(value)
    return "true"


def auto_create_allows(setting: str, index: str) -> bool:
    """Whether ``action.auto_create_index`` = ``setting`` lets a write create ``index`` (pure): true/false,
    or comma-separated wildcard patterns, each with an optional ``+`` or ``-``; the first match decides and no
    match means no."""
    value = setting.strip()
    if value.lower() in ("true", ""):
        return True
    if value.lower() == "false":
        return False
    for raw in (p.strip() for p in value.split(",")):
        if not raw:
            continue
        allow, pattern = (raw[0] != "-", raw[1:]) if raw[0] in "+-" else (True, raw)
        if fnmatch.fnmatchcase(index, pattern):
            return allow
    return False


def refuse_auto_create(client: OpenSearch, cfg: IndexConfig) -> None:
    """Raise IndexStateError when OpenSearch would create a missing generation on write: a write that races
    the deletion of a generation (retention, abandon) would make an empty index with guessed mappings."""
    setting = auto_create_index(client)
    probe = generation_name(cfg.alias, 999_999)
    if auto_create_allows(setting, probe):
        raise IndexStateError(
            f"OpenSearch creates missing indexes on write (action.auto_create_index: {setting!r}), so a "
            f"write racing a deleted generation would make an empty '{cfg.alias}_g<N>' with guessed "
            f"mappings: set it to false, or to patterns that refuse '{cfg.alias}_g*' (e.g. "
            f"'-{cfg.alias}_g*,+*')"
        )


def remember_deletes(client: OpenSearch, cfg: IndexConfig, index: str) -> None:
    """Give a generation made before ``index.gc_deletes_s`` existed (60 s, OpenSearch's default) that delete
    memory, unless it already remembers deletes longer (a generation still building)."""
    found = client.indices.get_settings(
        index=index, params={"include_defaults": "true", "flat_settings": "true"}
    )
    settings = found[index].get("defaults", {}) | found[index].get("settings", {})  # set values win
    current = _seconds(str(settings.get("index.gc_deletes", "60s")))
    if current is None or current < cfg.gc_deletes_s:
        client.indices.put_settings(index=index, body={"index": {"gc_deletes": f"{cfg.gc_deletes_s}s"}})
        log.info(
            "%s remembers deletes for %d s now (was %s)",
            index,
            cfg.gc_deletes_s,
            settings.get("index.gc_deletes"),
        )


_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400}


def _seconds(value: str) -> float | None:
    """An OpenSearch time value (``60s``, ``12h``, ``500ms``) in seconds; None if it is not one."""
    match = re.fullmatch(r"(\d+(?:\.\d+)?)(ms|s|m|h|d)", value.strip())
    return float(match.group(1)) * _UNITS[match.group(2)] if match else None
