"""The process manager, exercised with real child processes (a tiny HTTP server), no mocks."""

from __future__ import annotations

import socket
import sys
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.ports import free_port
from vectorlake.errors import StackError
from vectorlake.stack import process
from vectorlake.stack.process import ServerSpec


def _http_spec(tmp_path: Path, port: int, command: list[str] | None = None) -> ServerSpec:
    def health() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=1) as r:
            return f"http {r.status}"

    return ServerSpec(
        name="toy",
        address=f"http://127.0.0.1:{port}",
        host="127.0.0.1",
        ports={"toy.port": port},
        command=command or [sys.executable, "-m", "http.server", "--bind", "127.0.0.1", str(port)],
        env={},
        workdir=tmp_path,
        log_path=tmp_path / "toy" / "toy.log",
        pid_path=tmp_path / "toy" / "toy.pid",
        health=health,
    )


@pytest.fixture
def toy(tmp_path: Path) -> Iterator[ServerSpec]:
    spec = _http_spec(tmp_path, free_port())
    yield spec
    process.stop(spec)


def test_start_status_stop_round_trip(toy: ServerSpec) -> None:
    assert process.state(toy).healthy is False
    proc = process.launch(toy)
    assert proc is not None
    assert process.wait_healthy(toy, proc, timeout_s=30) == "http 200"
    st = process.state(toy)
    assert st.healthy and st.pid == proc.pid == int(toy.pid_path.read_text())
    assert process.launch(toy) is None  # already running: starting again is a no-op
    assert process.stop(toy) is True
    assert not toy.pid_path.exists()
    assert process.state(toy).healthy is False
    assert process.stop(toy) is False


def test_busy_port_is_a_one_line_error_naming_port_and_fix(toy: ServerSpec) -> None:
    port = toy.ports["toy.port"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", port))
        s.listen()
        with pytest.raises(StackError) as e:
            process.launch(toy)
    msg = str(e.value)
    assert "\n" not in msg
    assert f"port {port} on 127.0.0.1 is already in use" in msg
    assert "VECTORLAKE__TOY__PORT=<port>" in msg
    assert str(toy.log_path) in msg


def test_a_server_that_dies_at_start_reports_its_error_and_log(tmp_path: Path) -> None:
    crash = [
        sys.executable,
        "-c",
        "import sys; print('starting'); print('ERROR: bad setting x.y'); sys.exit(3)",
    ]
    spec = _http_spec(tmp_path, free_port(), command=crash)
    proc = process.launch(spec)
    with pytest.raises(StackError) as e:
        process.wait_healthy(spec, proc, timeout_s=30)
    msg = str(e.value)
    assert "exit code 3" in msg and "ERROR: bad setting x.y" in msg and str(spec.log_path) in msg
    assert not spec.pid_path.exists()


def test_missing_install_points_at_make_setup(tmp_path: Path) -> None:
    spec = _http_spec(tmp_path, free_port())
    spec = ServerSpec(**{**spec.__dict__, "installed": lambda: False})
    with pytest.raises(StackError, match=r"not installed under .*; run `make setup` first"):
        process.launch(spec)


def test_a_stale_pid_file_is_not_mistaken_for_a_running_server(toy: ServerSpec) -> None:
    toy.pid_path.parent.mkdir(parents=True, exist_ok=True)
    toy.pid_path.write_text("1\n")  # pid 1 is alive, but it is not our server
    assert process.read_pid(toy) is None


def test_last_log_error_prefers_the_last_error_line(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    log.write_text("info 1\nERROR first\ninfo 2\njava.lang.IllegalStateException: second\ninfo 3\n")
    assert process.last_log_error(log) == "java.lang.IllegalStateException: second"
    log.write_text("all fine\nstill fine\n")
    assert process.last_log_error(log) == "still fine"
    assert process.last_log_error(tmp_path / "missing.log") == "no log written"
