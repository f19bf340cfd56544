"""The bulk writer: idempotent, ordered-by-version writes of listing documents through an index alias.

Every action carries the listing's state version as an ``external_gte`` version, so a replay or a
duplicate converges and an older state never overwrites a newer one (the older write comes back 409 and
is reported ``stale``). State versions rise with every change of a listing (`vectorlake.lake.registers`),
so an equal version is the same state written again. Items that fail with 429/5xx, and whole requests that
fail with 429/5xx, a connection error or a timeout, are retried (only those items) with capped exponential
backoff and full jitter; when the retries run out ``IndexUnavailable`` is raised so that the caller fails
its micro-batch.
Any other per-item error is ``rejected`` with its reason and returned, never retried.
"""

from __future__ import annotations

import json
import logging
import numbers
import random
import time
from collections import Counter, deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from vectorlake.config import SinkConfig
from vectorlake.errors import IndexUnavailable
from vectorlake.index.backoff import Backoff, is_retryable_status, retry

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

log = logging.getLogger(__name__)

Outcome = Literal["applied", "stale", "rejected"]
OUTCOMES: tuple[Outcome, ...] = ("applied", "stale", "rejected")
DEFAULT_CONCURRENCY = 2  # bulk requests in flight; the main thread serializes the next chunk meanwhile
MAX_ERROR_CHARS = 500
MAX_VERSION = 2**63 - 1
MAX_ID_BYTES = 512  # OpenSearch refuses a longer _id (and with it the whole bulk request)
# Only what classification needs comes back: less JSON to parse per request.
_FILTER_PATH = "errors,items.*.status,items.*.error.type,items.*.error.reason,items.*.error.caused_by"


@dataclass(frozen=True)
class Upsert:
    """Index the whole document ``doc`` as ``_id = listing_id`` at external version ``version``."""

    listing_id: str
    version: int
    doc: Mapping[str, Any]


@dataclass(frozen=True)
class Delete:
    """Delete ``listing_id`` at external version ``version`` (the delete is versioned too)."""

    listing_id: str
    version: int


Action = Upsert | Delete


@dataclass(frozen=True)
class WriteResult:
    """What happened to one action: applied, stale (a newer or equal version won) or rejected (``error``)."""

    listing_id: str
    action: Literal["index", "delete"]
    version: int
    outcome: Outcome
    status: int
    error: str | None


@dataclass(frozen=True)
class ItemVerdict:
    """The classification of one bulk response item; ``retry`` items go round again."""

    outcome: Outcome | Literal["retry"]
    status: int
    error: str | None


def classify_item(op: str, item: Mapping[str, Any]) -> ItemVerdict:
    """Classify one item of a ``_bulk`` response (the value under its ``index``/``delete`` key).

    Raises IndexUnavailable when the target does not exist (``require_alias``): that is not a fault of
    the document, and every other document of the batch would fail the same way.
    """
    status = int(item.get("status", 500))
    error = item.get("error")
    if 200 <= status < 300 or (op == "delete" and status == 404 and error is None):
        return ItemVerdict("applied", status, None)  # a delete of a missing document: nothing to remove
    reason = describe_error(error)
    if status == 409:
        return ItemVerdict("stale", status, reason)
    if is_retryable_status(status):
        return ItemVerdict("retry", status, reason)
    if isinstance(error, Mapping) and error.get("type") == "index_not_found_exception":
        raise IndexUnavailable(f"cannot write: {reason}; create the index generation and its alias first")
    return ItemVerdict("rejected", status, reason)


def describe_error(error: Any) -> str:
    """``type: reason`` of a bulk item error, with its first cause, cut to MAX_ERROR_CHARS."""
    if not isinstance(error, Mapping):
        text = str(error)
    else:
        text = f"{error.get('type', 'error')}: {error.get('reason', '')}"
        cause = error.get("caused_by")
        if isinstance(cause, Mapping):
            text += f" (caused by {cause.get('type', 'error')}: {cause.get('reason', '')})"
    return text if len(text) <= MAX_ERROR_CHARS else text[: MAX_ERROR_CHARS - 3] + "..."


def counts(results: Sequence[WriteResult]) -> dict[str, int]:
    """How many results per outcome (every outcome present, zeros included), and the total."""
    tally = Counter(r.outcome for r in results)
    return {**{o: tally[o] for o in OUTCOMES}, "total": len(results)}


def check_action(action: Action) -> None:
    """Raise ValueError for an action OpenSearch would refuse whatever its state: no id, a bad version."""
    if not isinstance(action, Upsert | Delete):
        raise ValueError(f"not an index action: {action!r}")
    if not isinstance(action.listing_id, str) or not action.listing_id:
        raise ValueError(f"an index action needs a non-empty listing_id, got {action.listing_id!r}")
    size = len(action.listing_id.encode())
    if size > MAX_ID_BYTES:
        raise ValueError(f"a listing_id of {size} bytes is over the {MAX_ID_BYTES}-byte _id limit")
    if isinstance(action.version, bool) or not isinstance(action.version, numbers.Integral):
        raise ValueError(f"{action.listing_id!r}: the version must be an int, got {action.version!r}")
    if not 0 <= action.version <= MAX_VERSION:
        raise ValueError(f"{action.listing_id!r}: an external version is in [0, 2**63), got {action.version}")


def serialize(action: Action) -> bytes:
    """The action line and (for an upsert) the source line of one bulk item, newline-terminated."""
    check_action(action)
    return _serialize_checked(action)


def _serialize_checked(action: Action) -> bytes:
    op = "index" if isinstance(action, Upsert) else "delete"
    meta = (
        f'{{"{op}":{{"_id":{json.dumps(action.listing_id, ensure_ascii=False)},'
        f'"version":{int(action.version)},"version_type":"external_gte"}}}}\n'
    )
    if isinstance(action, Delete):
        return meta.encode()
    source = json.dumps(action.doc, ensure_ascii=False, separators=(",", ":"), default=_json_default)
    return (meta + source + "\n").encode()


def _json_default(value: Any) -> Any:
    """numpy arrays and scalars, dates: what the embedding stage hands over, without importing numpy."""
    if hasattr(value, "tolist"):
        return value.tolist()
    if hasattr(value, "isoformat"):
        return value.isoformat()
    raise TypeError(f"cannot serialize {type(value).__name__} into an index document")


@dataclass(frozen=True)
class _Chunk:
    positions: list[int]
    body: bytes


class _StillFailing(Exception):
    """Some items are still failing with a retryable error after this round."""

    def __init__(self, count: int, last_error: str) -> None:
        super().__init__(f"{count} item(s) failed, last error: {last_error}")
        self.count = count
        self.last_error = last_error


def write(
    client: OpenSearch,
    target_alias: str,
    actions: Sequence[Action],
    cfg_sink: SinkConfig,
    rng: random.Random | None = None,
    sleep: Callable[[float], None] = time.sleep,
    *,
    concurrency: int = DEFAULT_CONCURRENCY,
    require_alias: bool = True,
) -> list[WriteResult]:
    """Write ``actions`` through ``target_alias``; one result per action, in the order given.

    ``require_alias=False`` lets ``target_alias`` be a generation the caller resolved through its alias
    (the stream pins each generation for a micro-batch, see `vectorlake.pipeline.targets`).

    Requests hold at most ``cfg_sink.bulk_docs`` items and ``cfg_sink.bulk_bytes`` bytes (a bigger
    single item goes alone); ``concurrency`` of them are in flight at once. Nothing forces a refresh.
    Raises IndexUnavailable when retryable failures outlast ``cfg_sink.max_retries`` retries, or when a
    whole request fails in a way no retry can fix (e.g. 401/403, the alias does not exist).
    """
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    if not actions:
        return []
    for action in actions:  # all before the first request, so a bad action writes nothing
        check_action(action)
    policy = Backoff.from_config(cfg_sink)
    rng = rng if rng is not None else random.Random()  # noqa: S311 - jitter, not cryptography
    bulk = _BulkRounds(client, target_alias, actions, cfg_sink, concurrency, require_alias)
    try:
        retry(bulk.run_round, policy, rng, sleep, lambda e: isinstance(e, _StillFailing))
    except _StillFailing as e:
        raise IndexUnavailable(
            f"index alias '{target_alias}' is unavailable: {e.count} write(s) still failing after "
            f"{policy.max_retries} retries; last error: {e.last_error}"
        ) from e
    results = [_result(action, verdict) for action, verdict in zip(actions, bulk.verdicts, strict=True)]
    tally = counts(results)
    if tally["rejected"]:
        log.warning("alias %s: %d of %d write(s) rejected", target_alias, tally["rejected"], len(results))
    return results


class _BulkRounds:
    """The state of one `write` across its retry rounds: each round sends only the items still pending."""

    def __init__(
        self,
        client: OpenSearch,
        target_alias: str,
        actions: Sequence[Action],
        cfg_sink: SinkConfig,
        concurrency: int,
        require_alias: bool,
    ) -> None:
        self.client = client
        self.target_alias = target_alias
        self.actions = actions
        self.cfg_sink = cfg_sink
        self.concurrency = concurrency
        self.params = {"require_alias": str(require_alias).lower(), "filter_path": _FILTER_PATH}
        self.payloads: list[bytes | None] = [None] * len(actions)
        self.verdicts: list[ItemVerdict | None] = [None] * len(actions)
        self.pending = list(range(len(actions)))

    def run_round(self, attempt: int) -> None:
        """Send every pending item once; raise _StillFailing if some failed with a retryable error.

        ``attempt`` (given by `retry`) is not needed: what is still pending lives on ``self``.
        """
        failing: list[int] = []
        last_error = ""
        with ThreadPoolExecutor(max_workers=self.concurrency, thread_name_prefix="vectorlake-bulk") as pool:
            inflight: deque[tuple[_Chunk, Future[Any]]] = deque()
            try:
                for chunk in self._chunks(self.pending):
                    inflight.append((chunk, pool.submit(self._send, chunk)))
                    while len(inflight) > self.concurrency:
                        last_error = self._settle(*inflight.popleft(), failing) or last_error
                while inflight:
                    last_error = self._settle(*inflight.popleft(), failing) or last_error
            finally:
                for _, future in inflight:
                    future.cancel()
        self.pending = failing
        if failing:
            raise _StillFailing(len(failing), last_error)

    def _chunks(self, positions: list[int]) -> Iterator[_Chunk]:
        """Cut positions into requests; an item is serialized once, the first time it is sent."""
        batch: list[int] = []
        parts: list[bytes] = []
        size = 0
        for pos in positions:
            payload = self.payloads[pos]
            if payload is None:
                payload = self.payloads[pos] = _serialize_checked(self.actions[pos])
            if batch and (
                len(batch) >= self.cfg_sink.bulk_docs or size + len(payload) > self.cfg_sink.bulk_bytes
            ):
                yield _Chunk(batch, b"".join(parts))
                batch, parts, size = [], [], 0
            batch.append(pos)
            parts.append(payload)
            size += len(payload)
        if batch:
            yield _Chunk(batch, b"".join(parts))

    def _send(self, chunk: _Chunk) -> Any:
        return self.client.bulk(body=chunk.body, index=self.target_alias, params=self.params)

    def _settle(self, chunk: _Chunk, future: Future[Any], failing: list[int]) -> str | None:
        """Record the verdicts of one sent chunk; retryable positions go to ``failing``.

        Returns the last retryable error of the chunk, or None when nothing in it is to be retried.
        """
        try:
            response = future.result()
        except Exception as e:
            error = _whole_request_error(e, self.target_alias)  # raises if not retryable
            failing.extend(chunk.positions)
            return error
        items = response.get("items", [])
        if len(items) != len(chunk.positions):
            raise IndexUnavailable(
                f"index alias '{self.target_alias}': bulk response has {len(items)} items for "
                f"{len(chunk.positions)} actions"
            )
        last_error: str | None = None
        for pos, entry in zip(chunk.positions, items, strict=True):
            ((op, item),) = entry.items()
            verdict = classify_item(op, item)
            if verdict.outcome == "retry":
                failing.append(pos)
                last_error = f"{verdict.status} {verdict.error}"
            else:
                self.verdicts[pos] = verdict
        return last_error


def _result(action: Action, verdict: ItemVerdict | None) -> WriteResult:
    assert verdict is not None and verdict.outcome != "retry", "every action is settled before results"
    return WriteResult(
        listing_id=action.listing_id,
        action="index" if isinstance(action, Upsert) else "delete",
        version=action.version,
        outcome=verdict.outcome,
        status=verdict.status,
        error=verdict.error,
    )


def _whole_request_error(error: Exception, alias: str) -> str:
    """What went wrong, if the request is worth retrying (429, 5xx, connection, timeout); else raise."""
    from opensearchpy import ConnectionError, SSLError, TransportError

    if isinstance(error, SSLError):
        raise IndexUnavailable(f"index alias '{alias}': TLS failed, not retried: {error}") from error
    if isinstance(error, ConnectionError):  # includes ConnectionTimeout
        return f"{type(error).__name__}: {error}"
    if isinstance(error, TransportError):
        status = error.status_code
        if isinstance(status, int) and is_retryable_status(status):
            return f"{status} {error.error}"
        raise IndexUnavailable(
            f"index alias '{alias}': bulk request failed with {status} {error.error}, not retried: {error}"
        ) from error
    raise error
