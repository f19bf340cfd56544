from __future__ import annotations

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
