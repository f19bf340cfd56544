"""Integration tests talk to the real servers of `vectorlake stack up`; if one is down they fail, loudly."""

from __future__ import annotations

import pytest

from vectorlake.config import Config


@pytest.fixture(scope="session", autouse=True)
def local_stack(cfg: Config) -> None:
    from vectorlake import stack

    st = stack.status(cfg)
    down = [f"{s.name} ({s.detail})" for s in st.servers if not s.healthy]
    if not st.mlflow[1]:
        down.append(f"mlflow ({st.mlflow[2]})")
    if down:
        pytest.fail(f"local stack not healthy: {'; '.join(down)} - run `vectorlake stack up`", pytrace=False)
