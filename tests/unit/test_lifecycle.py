"""Pure parts of the generation lifecycle: the alias swap, the gate's measures, control-table upserts."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path

import pytest

from vectorlake import control
from vectorlake.config import Config, IndexConfig
from vectorlake.errors import IndexStateError, VectorlakeError
from vectorlake.index.generations import auto_create_allows, family, swap_actions
from vectorlake.ops import backfill, gate


@pytest.fixture
def index_cfg(cfg: Config) -> IndexConfig:
    return dataclasses.replace(cfg.index, alias="items")


def _apply(
    current: dict[str, str], actions: list[dict[str, dict[str, object]]], cfg: IndexConfig
) -> dict[str, str]:
    """What the aliases point at after `actions` (role -> index), as OpenSearch would apply them."""
    roles = {alias: role for role, alias in family(cfg).items()}
    out = dict(current)
    for action in actions:
        ((op, spec),) = action.items()
        role = roles[str(spec["alias"])]
        if op == "remove":
            assert out.get(role) == spec["index"], f"removing {spec} that is not there"
            del out[role]
        else:
            assert role not in out, f"adding {spec} over {out.get(role)}"
            out[role] = str(spec["index"])
    return out


def test_cutover_moves_live_to_the_new_generation_and_keeps_the_old_one_for_rollback(
    index_cfg: IndexConfig,
) -> None:
    current = {"live": "items_g1", "next": "items_g2"}
    actions = swap_actions(index_cfg, "items_g2", current)
    assert _apply(current, actions, index_cfg) == {"live": "items_g2", "prev": "items_g1"}
    live_add = [a["add"] for a in actions if "add" in a and a["add"]["alias"] == "items"]
    assert live_add == [{"index": "items_g2", "alias": "items", "is_write_index": True}]


def test_an_older_rollback_target_loses_its_alias(index_cfg: IndexConfig) -> None:
    current = {"live": "items_g2", "next": "items_g3", "prev": "items_g1"}
    after = _apply(current, swap_actions(index_cfg, "items_g3", current), index_cfg)
    assert after == {"live": "items_g3", "prev": "items_g2"}


def test_rollback_is_the_same_swap_backwards(index_cfg: IndexConfig) -> None:
    current = {"live": "items_g2", "prev": "items_g1"}
    after = _apply(current, swap_actions(index_cfg, "items_g1", current), index_cfg)
    assert after == {"live": "items_g1", "prev": "items_g2"}


def test_the_first_generation_goes_live_without_a_previous_one(index_cfg: IndexConfig) -> None:
    current = {"next": "items_g1"}
    assert _apply(current, swap_actions(index_cfg, "items_g1", current), index_cfg) == {"live": "items_g1"}


def test_making_the_live_generation_live_again_is_refused(index_cfg: IndexConfig) -> None:
    with pytest.raises(IndexStateError, match="already live"):
        swap_actions(index_cfg, "items_g1", {"live": "items_g1"})


def test_recall_and_the_golden_sample() -> None:
    assert gate.recall(["a", "b", "c"], ["a", "c", "d", "e"]) == 0.5
    assert gate.recall([], []) == 1.0
    pairs = [(f"L{i}", f"title {i}") for i in range(20)] + [("L-empty", "  ")]
    sample = gate.golden_sample(pairs, 5)
    assert len(sample) == 5 and ("L-empty", "  ") not in sample
    assert gate.golden_sample(list(reversed(pairs)), 5) == sample  # by hash, not by input order


def test_a_check_fails_beyond_its_threshold_and_the_report_says_which() -> None:
    checks = (
        gate.at_most("count_parity", 0.01, 0.001, "990 documents, 1000 served"),
        gate.at_least("recall_at_10", 0.95, 0.9, "ANN vs exact"),
    )
    report = gate.GateReport("items_g2", checks, "run1")
    assert not report.passed
    assert report.failures == ["count_parity: 0.0100 (<= 0.001) FAILED - 990 documents, 1000 served"]
    assert report.line().startswith("gate FAILED for items_g2 (mlflow run run1): count_parity")


def test_a_backfill_range_needs_zones_and_order() -> None:
    t0, t1 = datetime(2026, 11, 1, tzinfo=UTC), datetime(2026, 11, 2, tzinfo=UTC)
    backfill.check_range(t0, t1)
    with pytest.raises(VectorlakeError, match="must be before"):
        backfill.check_range(t1, t0)
    with pytest.raises(VectorlakeError, match="time zone"):
        backfill.check_range(t0.replace(tzinfo=None), t1)


def test_control_upserts_update_only_the_columns_given(cfg: Config, tmp_path: Path) -> None:
    local = dataclasses.replace(cfg, lake=dataclasses.replace(cfg.lake, root=str(tmp_path / "lake")))
    table = control.generations_table(local)
    t = datetime(2026, 11, 1, tzinfo=UTC)
    table.upsert([{"index": "items_g1", "generation": 1, "state": "building", "created_at": t}])
    table.upsert(
        [{"index": "items_g1", "state": "live", "live_at": t}, {"index": "items_g2", "generation": 2}]
    )
    table.upsert([{"index": "items_g1", "state": "live", "live_at": t}])  # the same fact twice: one row
    rows = {r["index"]: r for r in table.rows()}
    assert set(rows) == {"items_g1", "items_g2"}
    assert (rows["items_g1"]["generation"], rows["items_g1"]["state"]) == (1, "live")
    assert rows["items_g1"]["created_at"] == t and rows["items_g2"]["state"] is None
    with pytest.raises(ValueError, match="key columns"):
        table.upsert([{"state": "live"}])
    with pytest.raises(ValueError, match="unknown columns"):
        table.upsert([{"index": "items_g1", "colour": "red"}])


def test_s3a_lake_paths_open_as_s3_with_the_configured_endpoint(cfg: Config) -> None:
    uri, options = control.location(cfg, "s3a://bucket/lake/control/index_generations")
    assert uri == "s3://bucket/lake/control/index_generations"
    assert options["AWS_REGION"] == cfg.s3.region
    assert options.get("AWS_ENDPOINT_URL") == cfg.s3_endpoint_url
    assert control.location(cfg, "/data/lake/x") == ("/data/lake/x", {})


@pytest.mark.parametrize(
    ("setting", "allowed"),
    [
        ("true", True),
        ("", True),
        ("false", False),
        ("FALSE", False),
        ("-listings_g*,+*", False),
        ("+*", True),
        ("+logs-*,-*", False),
        ("logs-*", False),  # no pattern matches: not created
        ("+listings_*,-listings_g*", True),  # the first match decides
        ("-listings_g1,+*", True),  # another generation's pattern only
    ],
)
def test_auto_create_index_patterns_decide_whether_a_write_can_create_a_generation(
    setting: str, allowed: bool
) -> None:
    assert auto_create_allows(setting, "listings_g999999") is allowed
