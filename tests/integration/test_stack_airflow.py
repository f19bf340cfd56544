"""Airflow joins the stack: `stack up --with airflow` starts a healthy `airflow standalone` whose API takes
the admin login `stack status --with airflow` shows and lists the five DAGs with no import errors; a
second `up` finds it running; stopping it leaves the core servers running.

The stop goes through `vectorlake.stack.down(..., only=True)`: `stack down --with airflow` on the command
line stops the core servers too, which other tests on this machine are using.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.dags.airflow_env import DAG_IDS
from vectorlake import stack
from vectorlake.config import Config
from vectorlake.stack import airflow, process


def _cli(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "vectorlake.cli", "stack", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _rows(stdout: str) -> dict[str, str]:
    """server name -> its status row (not the "<name> log:" or "airflow login:" lines after the table)."""
    rows = [line.split(maxsplit=2) for line in stdout.splitlines()]
    return {r[0]: " ".join(r) for r in rows if len(r) > 1 and r[1] in ("healthy", "DOWN", "ready")}


def _api(cfg: Config, path: str, token: str | None = None, body: dict[str, Any] | None = None) -> Any:
    request = urllib.request.Request(  # noqa: S310 - loopback URL from config
        airflow.base_url(cfg) + path,
        data=json.dumps(body).encode() if body is not None else None,
        headers={
            "Content-Type": "application/json",
            **({"Authorization": f"Bearer {token}"} if token else {}),
        },
    )
    with urllib.request.urlopen(request, timeout=10) as resp:  # noqa: S310 - loopback URL from config
        return json.loads(resp.read())


def _wait_for_dags(cfg: Config, token: str, timeout_s: float = 120) -> dict[str, Any]:
    """The DAG list once the dag-processor has parsed the folder (it runs every few seconds)."""
    deadline = time.monotonic() + timeout_s
    dags: dict[str, Any] = {}
    while time.monotonic() < deadline:
        dags = {d["dag_id"]: d for d in _api(cfg, "/api/v2/dags?limit=100", token)["dags"]}
        if set(dags) >= DAG_IDS:
            break
        time.sleep(2)
    return dags


@pytest.fixture(scope="module")
def airflow_up(cfg: Config) -> Iterator[subprocess.CompletedProcess[str]]:
    was_running = process.read_pid(airflow.spec(cfg)) is not None
    t0 = time.monotonic()
    out = _cli("up", "--with", "airflow")
    seconds = time.monotonic() - t0
    assert out.returncode == 0, out.stdout + out.stderr
    print(f"stack up --with airflow: {seconds:.1f} s ({'already running' if was_running else 'started'})")
    yield out
    stack.down(cfg, ["airflow"], only=True)


def test_up_with_airflow_reports_it_healthy(airflow_up: Any) -> None:
    lines = _rows(airflow_up.stdout)
    assert "healthy" in lines["airflow"] and "scheduler, triggerer, dag_processor healthy" in lines["airflow"]
    assert "healthy" in lines["opensearch"]  # the core servers are part of the same stack


def test_status_shows_the_admin_login_that_the_api_accepts(cfg: Config, airflow_up: Any) -> None:
    out = _cli("status", "--with", "airflow", timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    (login,) = [line for line in out.stdout.splitlines() if line.startswith("airflow login:")]
    words = login.split()
    user, password = words[words.index("user") + 1], words[words.index("password") + 1]
    assert airflow.base_url(cfg) in login and user == cfg.airflow.admin_user
    token = _api(cfg, "/auth/token", body={"username": user, "password": password})["access_token"]

    dags = _wait_for_dags(cfg, token)
    assert set(dags) >= DAG_IDS, sorted(dags)
    errors = _api(cfg, "/api/v2/importErrors", token)
    assert errors["total_entries"] == 0, errors["import_errors"]
    assert all(
        not dags[d]["is_paused"] for d in ("listing_backfill", "embedding_reindex", "embedding_rollback")
    )
    with pytest.raises(urllib.error.HTTPError) as e:
        _api(cfg, "/auth/token", body={"username": user, "password": password + "x"})
    assert e.value.code == 401


def test_the_api_rejects_a_trigger_whose_params_do_not_validate(cfg: Config, airflow_up: Any) -> None:
    """The trigger form's Params are checked by the server before a run exists (nothing runs here)."""
    login = airflow.admin_login(cfg)
    assert login.password is not None
    body = {"username": login.user, "password": login.password}
    token = _api(cfg, "/auth/token", body=body)["access_token"]
    _wait_for_dags(cfg, token)
    runs = "/api/v2/dags/listing_backfill/dagRuns"
    before = _api(cfg, runs, token)["total_entries"]
    bad = {"start": "2026-11-01T00:00:00Z", "end": "2026-11-02T00:00:00Z", "target": "gold"}
    with pytest.raises(urllib.error.HTTPError) as e:
        _api(cfg, runs, token, {"logical_date": None, "conf": bad})
    assert e.value.code == 400 and "gold" in e.value.read().decode()
    assert _api(cfg, runs, token)["total_entries"] == before


def test_a_second_up_finds_airflow_running(cfg: Config, airflow_up: Any) -> None:
    pid = process.read_pid(airflow.spec(cfg))
    out = _cli("up", "--with", "airflow")
    assert out.returncode == 0, out.stderr
    assert "started" not in out.stderr  # nothing was (re)started
    assert process.read_pid(airflow.spec(cfg)) == pid


def test_stopping_airflow_stops_its_processes_and_leaves_the_core_running(
    cfg: Config, airflow_up: Any
) -> None:
    spec = airflow.spec(cfg)
    pid = process.read_pid(spec)
    assert pid is not None
    assert stack.down(cfg, ["airflow"], only=True) == ["airflow"]
    assert process.read_pid(spec) is None
    deadline = time.monotonic() + 60  # the components finish their own shutdown after the parent
    while time.monotonic() < deadline and (_group_alive(pid) or _port_open(cfg)):
        time.sleep(0.5)
    assert not _group_alive(pid)
    assert not _port_open(cfg)
    out = _cli("status", "--with", "airflow", timeout=60)
    assert out.returncode == 1
    lines = _rows(out.stdout)
    assert "DOWN" in lines["airflow"] and "healthy" in lines["opensearch"]


def _group_alive(pgid: int) -> bool:
    """Any live (not zombie) process left in the process group Airflow was started in."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False


def _port_open(cfg: Config) -> bool:
    return process.port_in_use(cfg.stack.host, cfg.airflow.port)
