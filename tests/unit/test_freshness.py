from __future__ import annotations

from vectorlake.ops.freshness import Freshness, human


def test_durations_read_in_the_unit_that_fits() -> None:
    assert [human(s) for s in (None, 0.04, 45.66, 119.9, 120.0, 7_200.0, 1_833_929.1)] == [
        "-",
        "0.0 s",
        "45.7 s",
        "119.9 s",
        "2.0 min",
        "2.0 h",
        "21.2 d",
    ]


def test_the_line_names_the_basis_and_the_percentiles() -> None:
    line = Freshness("received", 499, 96.0, 96.04, 130.0).line()
    assert line == "received -> indexed over 499 writes: P50 96.0 s, P95 96.0 s, max 2.2 min"
    assert Freshness("event", 0, None, None, None).line() == "event -> indexed: no applied writes"
