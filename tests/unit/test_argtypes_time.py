"""`argtypes.iso_time`, the one parser of every time argument of the `vectorlake` command."""

from __future__ import annotations

import argparse
from datetime import UTC, datetime, timedelta, timezone

import pytest

from vectorlake.argtypes import iso_time
from vectorlake.cli import build_parser


def _at(hour: int, minute: int = 0, offset: timedelta = timedelta(0), micro: int = 0) -> datetime:
    return datetime(2026, 11, 1, hour, minute, 0, micro, tzinfo=timezone(offset))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("2026-11-01T00:00:00Z", _at(0)),
        ("2026-11-01T00:00:00+00:00", _at(0)),
        ("2026-11-01T05:30:00+05:30", _at(5, 30, timedelta(hours=5, minutes=30))),
        ("2026-11-01T00:00:00-08:00", _at(0, 0, timedelta(hours=-8))),
        ("2026-11-01 07:15:00.250Z", _at(7, 15, micro=250_000)),
    ],
)
def test_a_time_with_an_offset_is_read_and_keeps_its_offset(text: str, expected: datetime) -> None:
    value = iso_time(text)
    assert value == expected
    assert value.utcoffset() == expected.utcoffset()


def test_the_same_instant_in_two_zones_compares_equal() -> None:
    assert (
        iso_time("2026-11-01T05:30:00+05:30")
        == iso_time("2026-11-01T00:00:00Z")
        == datetime(2026, 11, 1, tzinfo=UTC)
    )
    assert iso_time("2026-10-31T16:00:00-08:00").tzinfo == timezone(timedelta(hours=-8))


@pytest.mark.parametrize("text", ["2026-11-01T00:00:00", "2026-11-01", "2026-11-01 08:00"])
def test_a_time_without_an_offset_is_refused_with_how_to_fix_it(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as e:
        iso_time(text)
    assert str(e.value) == (
        f"{text!r} has no UTC offset: add one, e.g. 2026-11-01T00:00:00Z or 2026-11-01T00:00:00+00:00"
    )


@pytest.mark.parametrize(
    "text", ["", "yesterday", "2026-13-01T00:00:00Z", "2026-11-01T25:00:00+00:00", "1762000000"]
)
def test_garbage_is_refused_naming_the_expected_form(text: str) -> None:
    with pytest.raises(argparse.ArgumentTypeError) as e:
        iso_time(text)
    assert str(e.value) == (
        f"expected an ISO-8601 time with a UTC offset, e.g. 2026-11-01T00:00:00Z, got {text!r}"
    )


@pytest.mark.parametrize(
    ("argv", "dest"),
    [
        (["backfill", "--from", "{ts}", "--to", "2026-11-02T00:00:00Z"], "start"),
        (["backfill", "--from", "2026-11-01T00:00:00Z", "--to", "{ts}"], "end"),
        (["deadletters", "--since", "{ts}"], "since"),
        (["freshness", "--since", "{ts}"], "since"),
        (["generate", "--out", "landing", "--start", "{ts}"], "start"),
    ],
)
def test_every_time_argument_uses_it(argv: list[str], dest: str, capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    args = parser.parse_args([a.format(ts="2026-11-01T01:00:00+01:00") for a in argv])
    assert getattr(args, dest) == datetime(2026, 11, 1, tzinfo=UTC)
    assert getattr(args, dest).utcoffset() == timedelta(hours=1)

    with pytest.raises(SystemExit) as e:
        parser.parse_args([a.format(ts="2026-11-01T01:00:00") for a in argv])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1, err
    assert "'2026-11-01T01:00:00' has no UTC offset: add one" in err
    assert err.startswith(f"vectorlake {argv[0]}: error: argument ")
