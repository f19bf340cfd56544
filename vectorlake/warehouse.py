"""The warehouse history models: dbt over the lake tables (DuckDB locally, Snowflake in production).

    vectorlake warehouse build                 dbt build: models, the SCD2 snapshot and every test
    vectorlake warehouse docs [--serve]        dbt docs generate (lineage), optionally served

The dbt project is ``dbt/`` (see dbt/README.md). dbt runs as a subprocess of this interpreter's ``dbt``
in that folder, with the target the config names (``warehouse.target``: duckdb -> ``local``, snowflake
-> ``prod``) and the config's values in the environment variables the project reads:
``VECTORLAKE__LAKE__ROOT`` (where the sources are), ``VECTORLAKE__WAREHOUSE__DUCKDB_PATH`` and
``VECTORLAKE__INDEX__ALIAS``; so a lake root override reaches dbt whichever way it was given. dbt's
``target/`` (manifest, catalog, docs) and ``logs/`` go beside the DuckDB file, under ``dbt/``.

``dbt build`` runs the snapshot too, in its place in the DAG (after the model it reads), with the tests
of each node right after the node, so one command is snapshot + build + test.
"""

from __future__ import annotations

import functools
import json
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from vectorlake.config import PROJECT_ROOT, Config
from vectorlake.errors import VectorlakeError
from vectorlake.lake.tables import LakeTables

log = logging.getLogger(__name__)

DBT_PROJECT_DIR = PROJECT_ROOT / "dbt"
# warehouse.target -> the dbt target in dbt/profiles.yml
DBT_TARGETS = {"duckdb": "local", "snowflake": "prod"}


class WarehouseError(VectorlakeError):
    """A dbt command failed (a model, snapshot or test), or the warehouse cannot be built or served."""


@dataclass(frozen=True)
class WarehouseRun:
    """What one ``dbt build`` did."""

    target: str  # the dbt target
    database: str  # the DuckDB file, or the Snowflake database
    models: int
    snapshots: int
    tests: int  # tests that passed (warnings included)
    warnings: int
    seconds: float
    target_dir: Path

    def line(self) -> str:
        warned = f", {self.warnings} warned" if self.warnings else ""
        return (
            f"warehouse built ({self.target} -> {self.database}): {self.models} models, "
            f"{self.snapshots} snapshots, {self.tests} tests passed{warned}, in {self.seconds:.1f} s"
        )


def work_dir(cfg: Config) -> Path:
    """Where dbt writes its target/ and logs/ for this config: beside the DuckDB file."""
    return Path(cfg.warehouse.duckdb_path).resolve().parent / "dbt"


def target_dir(cfg: Config) -> Path:
    """dbt's target folder: manifest.json, run_results.json and, after `docs`, catalog.json, index.html."""
    return work_dir(cfg) / "target"


def lake_sources(tables: LakeTables) -> dict[str, str]:
    """The lake tables the dbt sources read: ``<layer>.<table>`` (the dbt source name) -> path."""
    return {
        "silver.listing_versions": tables.listing_versions,
        "gold.embeddings": tables.embeddings,
        "gold.index_log": tables.index_log,
        "control.index_generations": tables.index_generations,
        "control.erasure_requests": tables.erasure_requests,
        "control.erasure_log": tables.erasure_log,
    }


def build(cfg: Config) -> WarehouseRun:
    """``dbt build``: every model, the snapshot and every test; raises WarehouseError naming what failed."""
    target = _target(cfg)
    if target == "local":
        _check_lake(cfg)
        Path(cfg.warehouse.duckdb_path).parent.mkdir(parents=True, exist_ok=True)
    began = time.monotonic()
    _dbt(cfg, "build")
    results = _run_results(cfg)
    counts = _count(results)
    run = WarehouseRun(
        target=target,
        database=_database(cfg),
        models=counts.get("model", 0),
        snapshots=counts.get("snapshot", 0),
        tests=counts.get("test", 0),
        warnings=counts.get("warn", 0),
        seconds=time.monotonic() - began,
        target_dir=target_dir(cfg),
    )
    return run


def docs(cfg: Config) -> Path:
    """``dbt docs generate``: the lineage site (index.html, manifest.json, catalog.json); returns where."""
    if _target(cfg) == "local":
        _check_lake(cfg)
        Path(cfg.warehouse.duckdb_path).parent.mkdir(parents=True, exist_ok=True)
    _dbt(cfg, "docs", "generate")
    folder = target_dir(cfg)
    missing = [n for n in ("index.html", "manifest.json", "catalog.json") if not (folder / n).is_file()]
    if missing:
        raise WarehouseError(f"dbt docs generate left no {', '.join(missing)} in {folder}")
    return folder


def serve_docs(cfg: Config, port: int) -> None:
    """Serve the docs `docs` generated on ``stack.host``:`port` until Ctrl-C."""
    folder = target_dir(cfg)
    if not (folder / "index.html").is_file():
        raise WarehouseError(f"no dbt docs in {folder}: run `vectorlake warehouse docs` first")
    handler = functools.partial(_QuietHandler, directory=str(folder))
    try:
        server = ThreadingHTTPServer((cfg.stack.host, port), handler)
    except OSError as e:
        raise WarehouseError(f"cannot serve the docs on {cfg.stack.host}:{port}: {e.strerror or e}") from e
    log.debug("serving %s at http://%s:%d", folder, cfg.stack.host, port)
    with server:
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            log.info("stopped serving the docs")


class _QuietHandler(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        log.debug("docs: " + format, *args)


def _target(cfg: Config) -> str:
    return DBT_TARGETS[cfg.warehouse.target]


def _database(cfg: Config) -> str:
    if cfg.warehouse.target == "duckdb":
        return cfg.warehouse.duckdb_path
    return os.environ.get("SNOWFLAKE_DATABASE", "snowflake")


def _check_lake(cfg: Config) -> None:
    """Fail before dbt does, with the fix, when a source table is not in a local lake."""
    root = cfg.lake.root
    if "://" in root and not root.startswith("file://"):
        return  # object storage: the plugin reports a missing table itself
    tables = LakeTables(root.removeprefix("file://"))
    missing = [
        name.replace(".", "/")
        for name, path in lake_sources(tables).items()
        if not (Path(path) / "_delta_log").is_dir()
    ]
    if missing:
        raise WarehouseError(
            f"lake tables missing under {root}: {', '.join(missing)}; the streaming job creates every lake "
            "table when it starts (`vectorlake stream --source files --once`), or set lake.root "
            "(VECTORLAKE__LAKE__ROOT) to the lake to read"
        )


def _dbt_executable() -> str:
    beside = Path(sys.executable).with_name("dbt")
    if beside.is_file():
        return str(beside)
    found = shutil.which("dbt")
    if found is None:
        raise WarehouseError("dbt is not installed in this environment (make setup installs it)")
    return found


def _environment(cfg: Config) -> dict[str, str]:
    return dict(os.environ) | {
        "VECTORLAKE__LAKE__ROOT": cfg.lake.root,
        "VECTORLAKE__WAREHOUSE__DUCKDB_PATH": str(Path(cfg.warehouse.duckdb_path).resolve()),
        "VECTORLAKE__INDEX__ALIAS": cfg.index.alias,
        "VECTORLAKE_DBT_PLUGINS": str(DBT_PROJECT_DIR / "plugins"),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
    }


def _dbt(cfg: Config, *command: str) -> None:
    """Run one dbt command in the project; WarehouseError with the failing nodes if it fails."""
    work = work_dir(cfg)
    work.mkdir(parents=True, exist_ok=True)
    results = target_dir(cfg) / "run_results.json"
    results.unlink(missing_ok=True)  # a failure must not be judged by the previous run's results
    argv = [
        _dbt_executable(),
        "--no-use-colors",
        "--log-format",
        "text",
        *command,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target",
        _target(cfg),
        "--target-path",
        str(target_dir(cfg)),
        "--log-path",
        str(work / "logs"),
    ]
    what = "dbt " + " ".join(command)
    log.info("%s (target %s, lake %s)", what, _target(cfg), cfg.lake.root)
    lines: list[str] = []
    with subprocess.Popen(
        argv,
        cwd=DBT_PROJECT_DIR,
        env=_environment(cfg),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    ) as proc:
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.rstrip()
            lines.append(line)
            log.debug("%s", line)
    if proc.returncode != 0:
        raise WarehouseError(f"{what} failed: {_failure(lines, results)} (log: {work / 'logs' / 'dbt.log'})")


_CLOCK = re.compile(r"^\d\d:\d\d:\d\d\s+")


def _failure(lines: list[str], results: Path) -> str:
    """One line saying what failed: the failing nodes from run_results.json, else dbt's first error."""
    if results.is_file():
        failed = [
            r
            for r in json.loads(results.read_text()).get("results", [])
            if r.get("status") in ("error", "fail", "runtime error")
        ]
        if failed:
            named = []
            for r in failed[:3]:
                kind, _, name = str(r["unique_id"]).split(".")[:3]  # <kind>.<project>.<name>[.<hash>]
                message = " ".join(str(r.get("message") or r["status"]).split())
                named.append(f"{kind} {name} ({message[:200]})")
            more = f" and {len(failed) - 3} more" if len(failed) > 3 else ""
            return f"{len(failed)} failed: {'; '.join(named)}{more}"
    text = [_CLOCK.sub("", line).strip() for line in lines]
    if any("Could not set lock on file" in t for t in text):
        return "the DuckDB file is open in another process (a running build, or a client): close it, retry"
    errors = [t for t in text if "error" in t.lower() and not t.startswith("Done.")]
    detail = next((t for t in text[text.index(errors[0]) + 1 :] if t), "") if errors else ""
    summary = f"{errors[0]} {detail}".strip() if errors else next((t for t in reversed(text) if t), "")
    return summary[:400] or "no output"


def _run_results(cfg: Config) -> list[dict[str, Any]]:
    path = target_dir(cfg) / "run_results.json"
    try:
        results: list[dict[str, Any]] = json.loads(path.read_text())["results"]
    except (OSError, ValueError, KeyError) as e:
        raise WarehouseError(f"dbt left no readable run results at {path}: {e}") from e
    return results


def _count(results: list[dict[str, Any]]) -> dict[str, int]:
    """Passed nodes by resource type (model, snapshot, test, seed), and ``warn``: tests that warned."""
    counts: dict[str, int] = {}
    for r in results:
        kind = str(r["unique_id"]).split(".", 1)[0]
        if r.get("status") in ("success", "pass", "warn"):
            counts[kind] = counts.get(kind, 0) + 1
        if r.get("status") == "warn":
            counts["warn"] = counts.get("warn", 0) + 1
    return counts
