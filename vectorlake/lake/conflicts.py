"""Retrying a Delta write that lost an optimistic-concurrency race (only for writes that are idempotent)."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import TypeVar

log = logging.getLogger(__name__)

T = TypeVar("T")


def retry_conflicts(write: Callable[[], T], what: str, attempts: int = 6) -> T:
    """Run `write`; when another writer committed a conflicting change first, run it again (jittered).

    Only for writes whose second run gives the same table as one run (e.g. insert-only MERGEs on the
    whole key): Delta rejects the loser, it re-reads the table and merges on top of the winner.
    """
    from delta import exceptions as x

    # separate classes in delta-spark's Python API (not one hierarchy)
    conflicts = (
        x.ConcurrentAppendException,
        x.ConcurrentDeleteReadException,
        x.ConcurrentDeleteDeleteException,
        x.ConcurrentTransactionException,
        x.ConcurrentWriteException,
        x.DeltaConcurrentModificationException,
        x.MetadataChangedException,
    )
    for attempt in range(1, attempts + 1):
        try:
            return write()
        except conflicts as e:
            if attempt == attempts:
                raise
            delay = random.uniform(0, 0.5 * 2**attempt)  # noqa: S311 - jitter, not cryptography
            log.info("%s: concurrent commit (%s); retrying in %.1f s", what, type(e).__name__, delay)
            time.sleep(delay)
    raise AssertionError("unreachable")
