"""Command-line parsing shared by the `vectorlake` command and the benchmarks: one-line errors, counts."""

from __future__ import annotations

import argparse
from datetime import datetime
from typing import NoReturn


class OneLineParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (what is wrong, and where to look), not the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def positive_int(text: str) -> int:
    """An argparse type: an integer of at least 1 (``10_000`` is fine)."""
    try:
        value = int(text.replace("_", ""))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def positive_float(text: str) -> float:
    """An argparse type: a number greater than 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {text}")
    return value


def iso_time(text: str) -> datetime:
    """An argparse type: an ISO-8601 date-time with a UTC offset (``Z``, ``+00:00``, ``-05:00``, ...).

    A time without an offset is refused, not guessed to be UTC or local: a backfill window or a
    ``--since`` bound read in the wrong zone would silently cover the wrong hours. The value keeps the
    offset it was given.
    """
    try:
        value = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected an ISO-8601 time with a UTC offset, e.g. 2026-11-01T00:00:00Z, got {text!r}"
        ) from None
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} has no UTC offset: add one, e.g. 2026-11-01T00:00:00Z or 2026-11-01T00:00:00+00:00"
        )
    return value
