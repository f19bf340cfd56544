"""Integration tests talk to the real servers of `vectorlake stack up`; if one is down they fail, loudly."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _stack_is_up(local_stack: None) -> None:
    """Every integration test needs the stack (`local_stack` in tests/conftest.py)."""
