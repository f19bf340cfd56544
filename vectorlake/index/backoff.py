"""Retry policy for index writes: capped exponential backoff with full jitter. Pure; sleeping is injected."""

from __future__ import annotations

import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import TypeVar

from vectorlake.config import SinkConfig

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """How long to wait before retry number ``attempt`` (0-based), and how many retries there are."""

    initial_s: float
    max_s: float
    max_retries: int

    def __post_init__(self) -> None:
        if self.initial_s < 0 or self.max_s < 0:
            raise ValueError(f"backoff times must be >= 0, got initial {self.initial_s}, max {self.max_s}")
        if self.max_retries < 0:
            raise ValueError(f"max_retries must be >= 0, got {self.max_retries}")

    @classmethod
    def from_config(cls, sink: SinkConfig) -> Backoff:
        return cls(initial_s=sink.backoff_initial_s, max_s=sink.backoff_max_s, max_retries=sink.max_retries)

    def cap(self, attempt: int) -> float:
        """The upper bound of the delay before retry ``attempt``: ``min(max_s, initial_s * 2**attempt)``."""
        if attempt < 0:
            raise ValueError(f"attempt must be >= 0, got {attempt}")
        # 2**attempt overflows a float past ~1024; by then the cap is max_s anyway
        return self.max_s if attempt >= 64 else min(self.max_s, self.initial_s * 2.0**attempt)

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Full jitter (AWS architecture blog): uniform in [0, cap(attempt)], so retriers spread out."""
        return rng.uniform(0.0, self.cap(attempt))


def is_retryable_status(status: int) -> bool:
    """429 (the node pushes back) and 5xx (the node or a shard is unwell) are worth retrying; 4xx is not."""
    return status == 429 or 500 <= status <= 599


def retry(
    call: Callable[[int], T],
    policy: Backoff,
    rng: random.Random,
    sleep: Callable[[float], None],
    is_retryable: Callable[[Exception], bool],
) -> T:
    """``call(attempt)`` until it returns; a retryable exception waits ``policy.delay(attempt)`` and retries.

    ``call`` is made at most ``1 + policy.max_retries`` times (so ``sleep`` at most ``max_retries`` times).
    The last exception, or any exception ``is_retryable`` refuses, propagates unchanged. ``call`` gets the
    0-based attempt number, so a caller can keep state (e.g. only the items still failing) between attempts.
    """
    attempt = 0
    while True:
        try:
            return call(attempt)
        except Exception as e:
            if attempt >= policy.max_retries or not is_retryable(e):
                raise
            wait = policy.delay(attempt, rng)
            log.warning("attempt %d failed (%s); retrying in %.2f s", attempt + 1, e, wait)
            sleep(wait)
            attempt += 1
