"""The dbt project run for real, without the lake's writers: the whole project builds and tests on an
empty lake, the docs' lineage links every mart to its lake sources, and the prod (Snowflake) profile
parses with its settings from the environment.

    .venv/bin/python -m pytest tests/integration/test_warehouse_project.py -q

The empty lake is written with delta-rs in the schemas of vectorlake.lake.tables (no Spark); dbt runs as
`vectorlake warehouse build|docs` runs it.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.unit.test_warehouse_runner import empty_lake, warehouse_cfg
from vectorlake import warehouse
from vectorlake.config import Config

MARTS = {
    "fct_embedding_audit": {
        "silver.listing_versions",
        "gold.index_log",
        "gold.embeddings",
        "control.index_generations",
    },
    "dim_embedding_models": {"gold.embeddings", "gold.index_log", "control.index_generations"},
    "fct_index_freshness": {"gold.index_log", "silver.listing_versions"},
    "fct_erasures": {"control.erasure_requests", "control.erasure_log"},
}
PROD_ENV = {
    "SNOWFLAKE_ACCOUNT": "xy12345.us-east-1",
    "SNOWFLAKE_USER": "dbt_ci",
    "SNOWFLAKE_ROLE": "TRANSFORMER",
    "SNOWFLAKE_WAREHOUSE": "TRANSFORMING",
    "SNOWFLAKE_DATABASE": "ANALYTICS",
    "SNOWFLAKE_SCHEMA": "VECTORLAKE",
    "SNOWFLAKE_PRIVATE_KEY_PATH": "/nonexistent/rsa_key.p8",
    "SNOWFLAKE_LAKE_DATABASE": "LAKE_PROD",
}


@dataclasses.dataclass(frozen=True)
class Built:
    cfg: Config
    run: warehouse.WarehouseRun
    results: list[dict[str, Any]]  # run_results.json of the build (docs generate writes its own after)
    docs: Path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Built]:
    tmp = tmp_path_factory.mktemp("empty-lake")
    empty_lake(tmp / "lake")
    cfg = warehouse_cfg(tmp)
    run = warehouse.build(cfg)
    results = json.loads((run.target_dir / "run_results.json").read_text())["results"]
    yield Built(cfg, run, results, warehouse.docs(cfg))


def test_the_project_builds_and_tests_on_an_empty_lake(built: Built) -> None:
    assert built.run.target == "local" and built.run.models == 15 and built.run.snapshots == 1
    tests = [r for r in built.results if r["unique_id"].startswith("test.")]
    assert len(tests) == built.run.tests >= 90 and all(r["status"] == "pass" for r in tests)
    assert built.run.line().startswith(f"warehouse built (local -> {built.cfg.warehouse.duckdb_path}): ")
    assert warehouse.target_dir(built.cfg).parent.parent == Path(built.cfg.warehouse.duckdb_path).parent


def test_every_mart_descends_from_its_lake_sources(built: Built) -> None:
    manifest = json.loads((built.docs / "manifest.json").read_text())
    parents: dict[str, list[str]] = manifest["parent_map"]

    def sources_of(node: str) -> set[str]:
        found, todo, seen = set(), [node], set()
        while todo:
            current = todo.pop()
            for parent in parents.get(current, []):
                if parent.startswith("source."):
                    found.add(parent.split(".", 2)[2])  # source.<project>.<source>.<table>
                elif parent not in seen:
                    seen.add(parent)
                    todo.append(parent)
        return found

    for mart, wanted in MARTS.items():
        node = manifest["nodes"][f"model.vectorlake.{mart}"]
        assert node["config"]["materialized"] == "table" and node["schema"] == "marts"
        assert sources_of(node["unique_id"]) == wanted, mart
        # the lineage the docs site draws (depends_on) is the same graph
        assert set(node["depends_on"]["nodes"]) == set(parents[node["unique_id"]])
    assert sources_of("snapshot.vectorlake.snp_listing_states") == {"silver.listing_versions"}
    exposure = manifest["exposures"]["exposure.vectorlake.search_service"]
    assert set(exposure["depends_on"]["nodes"]) == {f"model.vectorlake.{m}" for m in MARTS}
    # only staging models read sources, one source each, and no staging model reads another model
    for uid, node in manifest["nodes"].items():
        if node["resource_type"] != "model":
            continue
        from_sources = [p for p in parents[uid] if p.startswith("source.")]
        if node["name"].startswith("stg_"):
            source = from_sources[0].split(".")[2] if from_sources else ""
            assert len(from_sources) == 1 == len(parents[uid]) and node["name"].startswith(f"stg_{source}__")
        else:
            assert not from_sources, uid


def test_every_mart_and_column_is_documented_and_keyed(built: Built) -> None:
    manifest = json.loads((built.docs / "manifest.json").read_text())
    catalog = json.loads((built.docs / "catalog.json").read_text())
    tests_by_node: dict[str, set[str]] = {}
    for node in manifest["nodes"].values():
        if node["resource_type"] == "test" and node.get("attached_node"):
            kind = node["test_metadata"]["name"] if node.get("test_metadata") else "singular"
            tests_by_node.setdefault(node["attached_node"], set()).add(kind)
    for mart in MARTS:
        uid = f"model.vectorlake.{mart}"
        node = manifest["nodes"][uid]
        assert node["description"].strip(), mart
        built_columns = {c.lower() for c in catalog["nodes"][uid]["columns"]}
        documented = {c for c, v in node["columns"].items() if v["description"].strip()}
        assert built_columns == documented, (mart, built_columns ^ documented)
        assert {"unique", "not_null"} <= tests_by_node[uid], mart
    kinds = set().union(*(tests_by_node[f"model.vectorlake.{m}"] for m in MARTS))
    assert {"unique", "not_null", "relationships", "accepted_values"} <= kinds


def test_the_prod_target_parses_with_snowflake_settings_from_the_environment(tmp_path: Path) -> None:
    dbt = str(Path(warehouse._dbt_executable()))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SNOWFLAKE_", "VECTORLAKE"))}
    common = [
        "--project-dir",
        str(warehouse.DBT_PROJECT_DIR),
        "--profiles-dir",
        str(warehouse.DBT_PROJECT_DIR),
    ]
    paths = ["--target-path", str(tmp_path / "target"), "--log-path", str(tmp_path / "logs")]
    cmd = [dbt, "--no-use-colors", "parse", *common, "--target", "prod", *paths]
    missing = subprocess.run(cmd, env=env, capture_output=True, text=True, cwd=tmp_path)
    assert missing.returncode != 0 and "SNOWFLAKE_ACCOUNT" in missing.stdout  # the profile needs them
    ok = subprocess.run(cmd, env=env | PROD_ENV, capture_output=True, text=True, cwd=tmp_path)
    assert ok.returncode == 0, ok.stdout[-2000:]
    manifest = json.loads((tmp_path / "target" / "manifest.json").read_text())
    assert manifest["metadata"]["adapter_type"] == "snowflake"
    for source in manifest["sources"].values():  # prod reads the lake where production loads it
        assert source["database"] == "LAKE_PROD" and source["schema"] in ("silver", "gold", "control")
    assert manifest["nodes"]["model.vectorlake.fct_embedding_audit"]["database"] == "ANALYTICS"
