from __future__ import annotations

import pytest

from vectorlake.cli import main


def test_a_bad_config_value_is_one_line_without_a_stack_trace(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("VECTORLAKE__KAFKA__PORT", "ninety")
    assert main(["stack", "status"]) == 1
    err = capsys.readouterr().err
    assert err == "vectorlake: error: VECTORLAKE__KAFKA__PORT: expected an integer, got 'ninety'\n"


def test_an_unknown_environment_is_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--env", "staging", "stack", "status"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "staging.yaml does not exist" in err


def test_a_bad_argument_gets_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as e:
        main(["stack", "sideways"])
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "invalid choice: 'sideways'" in err
    assert err.startswith("vectorlake stack: error:") and "--help" in err


def test_the_stack_refuses_to_start_in_a_non_local_environment(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--env", "prod", "stack", "up"]) == 1
    assert "has no local stack" in capsys.readouterr().err
