from __future__ import annotations

import os
import subprocess
import sys


def test_stack_status_reports_every_server_healthy() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "vectorlake.cli", "stack", "status"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    lines = {line.split()[0]: line for line in out.stdout.splitlines() if line.strip()}
    assert "healthy" in lines["opensearch"] and "opensearch-knn" in lines["opensearch"]
    assert "healthy" in lines["kafka"] and "KRaft" in lines["kafka"]
    assert "healthy" in lines["s3"]
    assert "ready" in lines["mlflow"] and "sqlite:///" in lines["mlflow"]


def test_stack_up_again_is_a_no_op_when_everything_runs() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "vectorlake.cli", "stack", "up"], capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert "started" not in out.stderr  # nothing was (re)started


def test_a_server_that_is_down_is_one_status_row_without_library_log_lines() -> None:
    """Kafka's client library logs every refused connection to stderr by itself; status says it once."""
    from tests.ports import free_port

    env = {**os.environ, "VECTORLAKE__KAFKA__PORT": str(free_port())}
    out = subprocess.run(
        [sys.executable, "-m", "vectorlake.cli", "stack", "status"],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
    )
    # a server that is down gets a second line, "<name> log: <path>"
    rows = [line for line in out.stdout.splitlines() if line.strip() and " log: " not in line]
    lines = {line.split()[0]: line for line in rows}
    assert "DOWN" in lines["kafka"], out.stdout
    assert "healthy" in lines["opensearch"]
    assert [line for line in (out.stdout + out.stderr).splitlines() if line.startswith("%")] == []
