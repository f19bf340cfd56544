"""Supervision shared by both streaming queries: trigger intervals, graceful stops, signals, failures."""

from __future__ import annotations

import logging
import re
import signal
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import TYPE_CHECKING

from vectorlake.errors import ConfigError

if TYPE_CHECKING:
    from pyspark.sql.streaming import StreamingQuery

    from vectorlake.config import Config

log = logging.getLogger(__name__)

_INTERVAL = re.compile(r"^\s*[0-9]+\s+(millisecond|second|minute|hour|day)s?\s*$")
_STOP_GRACE_S = 300.0


def check_interval(name: str, value: str) -> str:
    if not _INTERVAL.match(value):
        raise ConfigError(f"{name}: expected an interval like '2 hours' or '10 seconds', got {value!r}")
    return value.strip()


def failure(query: StreamingQuery, what: str) -> str:
    """One line saying why `query` (the `what` stream) stopped."""
    error = query.exception()
    detail = str(error).splitlines()[0] if error is not None else "stopped"
    # py4j wraps the Python error; keep the part that says what failed
    for marker in ("IndexUnavailable: ", "VectorlakeError: "):
        if marker in str(error):
            detail = str(error).split(marker, 1)[1].splitlines()[0]
    return f"the {what} stream failed: {detail}"


def stop_gracefully(query: StreamingQuery) -> None:
    """Let the running micro-batch commit, then stop; the next batch, if it has begun, is cut short.

    Spark has no "stop after this batch", so this is the closest: a batch cut short is replayed from the
    checkpoint on restart, and every write being idempotent makes that safe either way.
    """
    last = query.lastProgress
    done = last.batchId if last is not None else -1
    log.info("stopping: waiting for the running micro-batch to commit")
    deadline = time.monotonic() + _STOP_GRACE_S
    while query.isActive and time.monotonic() < deadline:
        last = query.lastProgress
        if last is not None and last.batchId > done:
            break  # the batch that was running has committed
        if not query.status["isTriggerActive"]:
            break  # idle between triggers
        time.sleep(0.1)
    query.stop()
    log.info("stopped after batch %s", query.lastProgress.batchId if query.lastProgress else "none")


def on_signals(stop: threading.Event) -> Callable[[], None]:
    """Route SIGTERM and SIGINT to `stop` (main thread only); returns what restores the old handlers."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, frame: FrameType | None) -> None:
        log.info("received %s", signal.Signals(signum).name)
        stop.set()

    old = {s: signal.signal(s, handler) for s in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for s, h in old.items():
            signal.signal(s, h)

    return restore


def restart_delay(initial_s: float, max_s: float, in_a_row: int) -> float:
    """Seconds before restarting a query that failed ``in_a_row`` times since its last completed batch:
    ``initial_s`` doubled for each failure after the first, capped at ``max_s``."""
    if in_a_row < 1:
        raise ValueError(f"in_a_row must be at least 1, got {in_a_row}")
    return float(min(max_s, initial_s * 2 ** min(in_a_row - 1, 32)))


def record_failure(
    cfg: Config, stream: str, query_id: str, in_a_row: int, restart_in_s: float, error: str
) -> None:
    """One row in ``ops/stream_failures`` (what `vectorlake status` and the metrics report). Recording is
    best effort: the lake may be unreachable too, and that must not stop the job that restarts the query."""
    from datetime import UTC, datetime

    from vectorlake.control import stream_failures_table

    now = datetime.now(UTC)
    row = {
        "stream": stream,
        "query_id": query_id,
        "failed_at": now,
        "in_a_row": in_a_row,
        "restart_in_s": restart_in_s,
        "error": (error.strip().splitlines() or [""])[0][:1000],  # one line: status prints it so
        "recorded_at": now,
    }
    try:
        stream_failures_table(cfg).insert_new([row])
    except Exception as e:  # the failure itself is in the log line the caller writes
        log.warning("could not record the %s stream's failure in ops/stream_failures: %s", stream, e)
