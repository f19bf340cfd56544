"""The canary's verdict: a drop of more than gate.max_canary_drop in recall@10 or hit@10 fails."""

from __future__ import annotations

import pytest

from vectorlake.config import load_config
from vectorlake.errors import ConfigError
from vectorlake.ops.canary import CanaryReport, Measure

BASE = Measure(recall_at_10=0.96, hit_at_10=0.80, queries=50, judged=40)


def _report(recall: float, hit: float, baseline: Measure | None = BASE) -> CanaryReport:
    return CanaryReport("listings_g3", Measure(recall, hit, 50, 40), baseline, 0.02, "run-1")


def test_a_first_run_records_the_baseline_and_passes() -> None:
    report = _report(0.5, 0.1, baseline=None)
    assert report.passed and report.drops == {}
    assert report.lines() == [
        "canary listings_g3: baseline recorded: recall@10 0.500, hit@10 0.100 (50 queries, 40 judged) "
        "(mlflow run run-1)"
    ]


@pytest.mark.parametrize(
    ("recall", "hit", "passed", "named"),
    [
        (0.96, 0.80, True, []),
        (0.94, 0.78, True, []),  # exactly two points down: allowed
        (0.99, 0.90, True, []),  # better than the baseline
        (0.93, 0.80, False, ["recall_at_10 dropped 0.030"]),
        (0.96, 0.70, False, ["hit_at_10 dropped 0.100"]),
        (0.90, 0.70, False, ["recall_at_10 dropped 0.060", "hit_at_10 dropped 0.100"]),
    ],
)
def test_a_check_fails_on_a_drop_over_the_limit_and_names_it(
    recall: float, hit: float, passed: bool, named: list[str]
) -> None:
    report = _report(recall, hit)
    assert report.passed is passed
    first, second = report.lines()
    assert first.startswith(f"canary listings_g3: {'ok' if passed else 'FAILED'}: recall@10 {recall:.3f}")
    assert second.startswith("  baseline: recall@10 0.960, hit@10 0.800; allowed drop 0.02")
    assert all(n in second for n in named) and ("dropped" in second) is (not passed)


def test_the_allowed_drop_is_a_share() -> None:
    assert load_config(environ={}).gate.max_canary_drop == 0.02
    with pytest.raises(ConfigError, match=r"^gate.max_canary_drop: expected a share in \[0, 1\], got 2.0"):
        load_config(environ={"VECTORLAKE__GATE__MAX_CANARY_DROP": "2"})
