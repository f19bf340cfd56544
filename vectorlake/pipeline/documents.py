"""The index documents, written from the executors: one bulk per partition and target (``mapInPandas``).

Each row of the batch (a listing's current silver state with its vectors) becomes an upsert of its document
or, when it is not served, a delete; both carry the state version (``version_type=external_gte``). The
write results come back as rows of ``gold/index_log``.
"""

from __future__ import annotations

import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from vectorlake.config import Config, OpenSearchConfig, SinkConfig
from vectorlake.errors import VectorlakeError
from vectorlake.lake.tables import INDEX_LOG_COLUMNS
from vectorlake.pipeline.targets import Target

if TYPE_CHECKING:
    import pandas as pd

RESULT_SCHEMA = ", ".join(f"`{c}` {t}" for c, t in INDEX_LOG_COLUMNS.items() if c not in ("batch_id",))
_RESULT_COLUMNS = [c for c in INDEX_LOG_COLUMNS if c != "batch_id"]


@dataclass(frozen=True)
class WriteSpec:
    """What the executors need to write one target: plain values, so it pickles."""

    opensearch: OpenSearchConfig
    hosts: tuple[str, ...]
    sink: SinkConfig
    target: Target
    text_weight: float
    image_weight: float
    image_dim: int
    retries: Any = None  # a Spark accumulator counting the sink's retry rounds
    read_at: float | None = None  # when the silver state written was read (epoch seconds)
    max_state_age_s: float = float("inf")

    @classmethod
    def for_target(
        cls, cfg: Config, target: Target, retries: Any = None, read_at: float | None = None
    ) -> WriteSpec:
        return cls(
            opensearch=cfg.opensearch,
            hosts=cfg.opensearch_hosts,
            sink=cfg.sink,
            target=target,
            text_weight=cfg.embed.fusion.text_weight,
            image_weight=cfg.embed.fusion.image_weight,
            image_dim=target.image_dim,
            retries=retries,
            read_at=read_at,
            max_state_age_s=cfg.index.max_state_age_s,
        )

    def check_fresh(self, now: float) -> None:
        """Raise StaleState when the state read is older than ``max_state_age_s``: OpenSearch may have
        forgotten a delete applied since, and the older state would come back."""
        if self.read_at is not None and now - self.read_at > self.max_state_age_s:
            raise StaleState(
                f"not written to {self.target.index}: the listing states were read "
                f"{now - self.read_at:.0f} s ago, over index.gc_deletes_s / 2 ({self.max_state_age_s:g} s), "
                "so a delete applied since may be forgotten; the batch is to be run again on a fresh read"
            )


class StaleState(VectorlakeError):
    """A write of listing states read too long ago (see `WriteSpec.check_fresh`)."""


_CLIENTS: dict[tuple[Any, ...], Any] = {}


def _client(spec: WriteSpec) -> Any:
    """One OpenSearch client per worker process and cluster."""
    from vectorlake.index.client import client_for

    key = (spec.opensearch, spec.hosts)
    if key not in _CLIENTS:
        _CLIENTS[key] = client_for(spec.opensearch, spec.hosts)
    return _CLIENTS[key]


def write_partition(spec: WriteSpec) -> Any:
    """The ``mapInPandas`` function that writes a partition's rows to ``spec.target``; yields the results."""

    def write(frames: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
        import pandas as pd

        from vectorlake.index import sink

        client = _client(spec)

        def sleep(seconds: float) -> None:  # the sink sleeps once before each retry round
            if spec.retries is not None:
                spec.retries.add(1)
            time.sleep(seconds)

        for frame in frames:
            if frame.empty:
                continue
            spec.check_fresh(time.time())
            indexed_at = pd.Timestamp.now(tz="UTC")
            actions, refused = checked(
                [action(row, spec, indexed_at) for row in frame.itertuples(index=False)]
            )
            results = refused + sink.write(
                client, spec.target.index, actions, spec.sink, sleep=sleep, require_alias=False
            )
            by_id = {r.listing_id: r for r in frame.itertuples(index=False)}
            out = [result_row(r, by_id[r.listing_id], spec.target, indexed_at) for r in results]
            yield pd.DataFrame(out, columns=_RESULT_COLUMNS)

    return write


def checked(actions: list[Any]) -> tuple[list[Any], list[Any]]:
    """(the actions to send, rejected results of those OpenSearch would refuse whatever its state).

    A listing whose action can never succeed (a version outside [0, 2**63), an id over 512 bytes) is
    logged as rejected, so it reaches ``gold/index_dead_letters``, and the rest of the batch is written:
    one bad row cannot stop the index query."""
    from vectorlake.index import sink

    ok: list[Any] = []
    refused: list[Any] = []
    for a in actions:
        try:
            sink.check_action(a)
        except ValueError as e:
            op: Literal["index", "delete"] = "index" if isinstance(a, sink.Upsert) else "delete"
            refused.append(sink.WriteResult(a.listing_id, op, a.version, "rejected", 0, f"not sent: {e}"))
        else:
            ok.append(a)
    return ok, refused


def action(row: Any, spec: WriteSpec, indexed_at: pd.Timestamp) -> Any:
    """The sink action for one row: a delete when it is not served (or has no text vector), else an upsert
    of its document with the target's model labels and the fused vector."""
    import numpy as np

    from vectorlake.embed.modelinput import fuse
    from vectorlake.index import sink

    version = int(row.version)
    if not row.served or row.text_vector is None:
        return sink.Delete(row.listing_id, version)
    text = np.asarray(row.text_vector, dtype=np.float32)
    image = None if row.image_vector is None else np.asarray(row.image_vector, dtype=np.float32)
    doc: dict[str, Any] = {
        "listing_id": row.listing_id,
        "version": version,
        "seller_id": row.seller_id,
        "title": row.title,
        "category_id": row.category_id,
        "category_path": row.category_path,
        "locale": row.locale,
        "attributes": _attributes(row.attributes),
        "image_id": row.primary_image_id if image is not None else None,
        "policy_status": row.policy_status,
        "event_ts": _millis(row.event_ts),
        "indexed_at": int(indexed_at.value // 1_000_000),
        "text_model": spec.target.text.label,
        "image_model": spec.target.image.label if image is not None else None,
        "text_vector": text.tolist(),
        "fused_vector": fuse(text, image, spec.image_dim, spec.text_weight, spec.image_weight).tolist(),
    }
    if image is not None:
        doc["image_vector"] = image.tolist()
    return sink.Upsert(row.listing_id, version, {k: v for k, v in doc.items() if v is not None})


def result_row(result: Any, src: Any, target: Target, indexed_at: pd.Timestamp) -> dict[str, Any]:
    """The ``gold/index_log`` row (without its batch id) of one write result; `src` is the row written."""
    upsert = result.action == "index"
    has_image = upsert and src.image_vector is not None
    return {
        "listing_id": result.listing_id,
        "target": target.alias,
        "index": target.index,
        "action": result.action,
        "version": result.version,
        "outcome": result.outcome,
        "status": result.status,
        "error": result.error,
        "text_model": target.text.label if upsert else None,
        "image_model": target.image.label if has_image else None,
        "text_hash": src.text_hash if upsert else None,
        "image_hash": src.image_hash if has_image else None,
        "event_ts": src.event_ts,
        "indexed_at": indexed_at,
    }


def _attributes(value: object) -> dict[str, str]:
    if value is None:
        return {}
    items: Any = value.items() if isinstance(value, Mapping) else value
    return {str(k): str(v) for k, v in items if v is not None}


def _millis(ts: object) -> int | None:
    import pandas as pd

    if ts is None or ts is pd.NaT:
        return None
    return int(pd.Timestamp(ts).value // 1_000_000)  # type: ignore[arg-type]
