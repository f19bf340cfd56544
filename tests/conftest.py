"""Shared fixtures. Markers follow the directory: tests/unit -> unit, tests/integration -> integration, ..."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from vectorlake.config import Config, load_config

if TYPE_CHECKING:
    from tests.shared_lake import SharedLake

_MARKERS = {"unit", "integration", "dags", "e2e", "browser", "notebooks", "cluster"}


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        parts = Path(str(item.fspath)).parts
        for marker in _MARKERS.intersection(parts):
            item.add_marker(getattr(pytest.mark, marker))


@pytest.fixture(scope="session")
def cfg() -> Config:
    return load_config()


@pytest.fixture(scope="session")
def local_stack(cfg: Config) -> None:
    """The real servers of `vectorlake stack up`; if one is down the tests that need them fail, loudly."""
    from vectorlake import stack

    st = stack.status(cfg)
    down = [f"{s.name} ({s.detail})" for s in st.servers if not s.healthy]
    if not st.mlflow[1]:
        down.append(f"mlflow ({st.mlflow[2]})")
    if down:
        pytest.fail(f"local stack not healthy: {'; '.join(down)} - run `vectorlake stack up`", pytrace=False)


@pytest.fixture(scope="session")
def spark(cfg: Config) -> Iterator[object]:
    """One SparkSession for the whole run, built the way every job builds it."""
    from vectorlake.spark import build_session

    session = build_session(cfg, app_name="vectorlake-tests")
    yield session
    session.stop()


@pytest.fixture
def unique_name(request: pytest.FixtureRequest) -> str:
    """A name no other test uses, for topics, indexes, buckets and models (clean state per test)."""
    base = "".join(c if c.isalnum() else "-" for c in request.node.name.lower())[:40].strip("-")
    return f"t-{base}-{uuid.uuid4().hex[:8]}"


@pytest.fixture(scope="session")
def shared_lake(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SharedLake]:
    """The catalog streamed once per session (tests/shared_lake.py): `read` it, or `take` it to change it."""
    from tests.shared_lake import SharedLake

    lakes = SharedLake(tmp_path_factory)
    yield lakes
    from tests.e2e.test_index_e2e import drop_alias

    for made in lakes.made:
        drop_alias(made)
