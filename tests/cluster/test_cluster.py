"""The main job through `vectorlake submit` on the local Spark standalone cluster, the lake on moto S3.

`stack up --with spark` starts a master and two workers; the workers, and so the executors, run as
``stack.run_as`` and cannot read the driver's folders, as on separate machines. The lake and its
checkpoints live on ``s3a://`` (hadoop-aws and the AWS SDK v2 from the node class path), the mlflow
artifacts on ``s3://``, the events come through Kafka. One `stream --once` must then leave silver equal
to what the pure-Python register oracle computes from bronze (the same oracle the local runs are held
to), the index holding exactly the served listings at their versions, and every executor's model files
fetched by URI from the artifact store into the worker's own cache, checked by sha256.
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import oracle
from vectorlake import s3
from vectorlake.config import Config, load_config
from vectorlake.embed import registry
from vectorlake.embed.artifacts import COMPLETE, ArtifactError, ModelArtifact, folder_sha256, materialize
from vectorlake.lake.arrow import delta_rs_uri
from vectorlake.lake.reference import load_reference
from vectorlake.lake.tables import LakeTables
from vectorlake.stack import process, standalone
from vectorlake.stack.process import venv_bin

pytestmark = pytest.mark.timeout(1200)


@pytest.fixture(scope="module")
def cluster(cfg: Config, local_stack: None) -> Iterator[None]:
    """The standalone cluster beside the core servers; stopped after the module if this module started it."""
    from vectorlake import stack

    was_up = all(process.read_pid(spec) is not None for spec in standalone.specs(cfg))
    stack.up(cfg, [standalone.NAME], only=True)
    yield
    if not was_up:
        stack.down(cfg, [standalone.NAME], only=True)


@pytest.fixture(scope="module")
def cluster_env(cfg: Config) -> dict[str, str]:
    """A config for the run: the lake and the model artifacts in a fresh bucket, its own topics, alias and
    mlflow store. The landing folder (images the generator writes) is world-readable, a shared folder."""
    run = uuid.uuid4().hex[:8]
    bucket = f"vl-cluster-{run}"
    s3.client(cfg).create_bucket(Bucket=bucket)
    shared = cfg.state_dir / "cluster-tests" / run
    shared.mkdir(parents=True)
    for p in (shared.parent, shared):
        p.chmod(0o755)
    return dict(os.environ) | {
        "VECTORLAKE__LAKE__ROOT": f"s3a://{bucket}/lake",
        "VECTORLAKE__MLFLOW__TRACKING_URI": f"sqlite:///{shared / 'mlflow.db'}",
        "VECTORLAKE__MLFLOW__ARTIFACT_ROOT": f"s3://{bucket}/mlflow",
        "VECTORLAKE__SOURCES__LANDING_DIR": str(shared / "landing"),
        "VECTORLAKE__SOURCES__TOPICS__LISTING_CHANGES": f"cluster-{run}-listings",
        "VECTORLAKE__SOURCES__TOPICS__MEDIA": f"cluster-{run}-media",
        "VECTORLAKE__SOURCES__TOPICS__SELLER_POLICY": f"cluster-{run}-policy",
        "VECTORLAKE__INDEX__ALIAS": f"cluster-{run}",
        "VECTORLAKE__REINDEX__CHUNKS": "2",  # 60 listings: more buckets only add Spark jobs
    }


def _vectorlake(env: dict[str, str], *args: str, timeout: float = 900) -> str:
    done = subprocess.run(
        [str(venv_bin() / "vectorlake"), *args], env=env, capture_output=True, text=True, timeout=timeout
    )
    assert done.returncode == 0, f"vectorlake {' '.join(args)} failed:\n{done.stderr[-4000:]}"
    return done.stdout + done.stderr


def _rows(ccfg: Config, path: str) -> list[dict[str, Any]]:
    from deltalake import DeltaTable

    table = DeltaTable(delta_rs_uri(path), storage_options=s3.storage_options(ccfg))
    return list(table.to_pyarrow_table().to_pylist())


def _silver_rows(ccfg: Config, tables: LakeTables) -> list[dict[str, Any]]:
    rows = _rows(ccfg, tables.listings)
    for r in rows:  # maps read by pyarrow come as (key, value) pairs
        r["attributes"] = dict(r["attributes"] or [])
    return rows


def _indexed_versions(ccfg: Config) -> dict[str, int]:
    from opensearchpy import helpers

    from vectorlake.index.client import make_client

    client = make_client(ccfg)
    try:
        client.indices.refresh(index=ccfg.index.alias)
        hits = helpers.scan(client, index=ccfg.index.alias, query={"query": {"match_all": {}}}, version=True)
        return {h["_id"]: h["_version"] for h in hits}
    finally:
        client.close()


@dataclasses.dataclass(frozen=True)
class Streamed:
    ccfg: Config  # the run's config (lake and artifacts on S3)
    started_ms: int
    caches: list[Path]  # each worker's model cache


@pytest.fixture(scope="module")
def streamed(cfg: Config, cluster: None, cluster_env: dict[str, str]) -> Streamed:
    """Models registered (artifacts on S3), a catalog sent to Kafka, then one `stream --once` submitted to
    the standalone master, with every worker's model cache emptied first."""
    started_ms = int(time.time() * 1000)
    caches = [
        cfg.state_dir / "spark" / f"worker-{i}" / "home" / ".cache" / "vectorlake" / "models"
        for i in range(cfg.standalone.workers)
    ]
    for cache in caches:  # cold: every copy an executor uses must be fetched by this run
        shutil.rmtree(cache, ignore_errors=True)
    _vectorlake(cluster_env, "models", "register")
    _vectorlake(cluster_env, "generate", "--kafka", "--listings", "60", "--events", "400", "--seed", "11")
    _vectorlake(
        cluster_env, "submit", "--master", cfg.standalone_master_url, "stream", "--source", "kafka", "--once"
    )
    return Streamed(load_config(environ=cluster_env), started_ms, caches)


def _completed(cfg: Config, name: str, since_ms: int) -> list[dict[str, Any]]:
    """The applications named ``name`` that the standalone master saw finish since ``since_ms``."""
    apps = standalone.master_state(cfg).get("completedapps")
    assert isinstance(apps, list)
    return [a for a in apps if a["name"] == name and a["starttime"] >= since_ms]


def test_stream_once_on_the_standalone_cluster_equals_the_oracle(
    cfg: Config, cluster_env: dict[str, str], streamed: Streamed
) -> None:
    ccfg, caches = streamed.ccfg, streamed.caches
    # the launcher's master won over conf/local.yaml's local[2]: the job ran as a cluster application
    assert len(_completed(cfg, "vectorlake-stream-kafka", streamed.started_ms)) == 1

    # silver on S3 equals the oracle's fold of bronze on S3
    tables = LakeTables(ccfg.lake.root)
    events = oracle.events_from_rows(
        *(_rows(ccfg, tables.bronze(kind)) for kind in ("listing_changes", "media", "seller_policy"))
    )
    expected = oracle.expected_served(
        events, load_reference(ccfg.reference.categories, ccfg.reference.locales)
    )
    assert len(expected) > 20
    assert oracle.served_from_rows(_silver_rows(ccfg, tables)) == expected

    # the index holds exactly the served listings, each at its state's version
    assert _indexed_versions(ccfg) == {lid: s["version"] for lid, s in expected.items()}

    # every worker's executor fetched each model version from the artifact store into its own cache
    for role in ("text", "image"):
        ref = registry.resolve(ccfg, role)
        assert ref.uri.startswith(f"{cluster_env['VECTORLAKE__MLFLOW__ARTIFACT_ROOT']}/")
        assert ref.sha256
        for cache in caches:
            copy = cache / ref.name / f"{ref.version}-{ref.sha256[:16]}"
            assert (copy / COMPLETE).read_text().split() == [ref.sha256, ref.uri]
            assert folder_sha256(copy) == ref.sha256
        logs = "".join(p.read_text() for p in (cfg.state_dir / "spark").glob("worker-*/work/*/*/stderr"))
        assert f"vectorlake: model {ref.label} fetched from {ref.uri}" in logs


def test_reindex_on_the_cluster_then_cutover_serves_the_same_documents(
    cfg: Config, cluster_env: dict[str, str], streamed: Streamed
) -> None:
    from vectorlake.index.client import make_client

    ccfg = streamed.ccfg
    client = make_client(ccfg)
    try:
        (live,) = client.indices.get_alias(name=ccfg.index.alias)
        before = _indexed_versions(ccfg)
        started_ms = int(time.time() * 1000)
        _vectorlake(cluster_env, "submit", "--master", cfg.standalone_master_url, "reindex")
        _vectorlake(cluster_env, "cutover")
        (now,) = client.indices.get_alias(name=ccfg.index.alias)
    finally:
        client.close()
    assert now != live  # a new generation, built on the cluster from silver on S3, now serves
    assert len(_completed(cfg, f"vectorlake-reindex-{now}", started_ms)) == 1
    assert _indexed_versions(ccfg) == before  # the same listings at the same versions


def test_an_artifact_that_does_not_hash_to_the_registry_is_never_used(
    cfg: Config, local_stack: None, tmp_path: Path
) -> None:
    bucket = f"vl-artifact-{uuid.uuid4().hex[:8]}"
    client = s3.client(cfg)
    client.create_bucket(Bucket=bucket)
    source = tmp_path / "model"
    (source / "sub").mkdir(parents=True)
    (source / "config.json").write_text(json.dumps({"dim": 4}))
    (source / "sub" / "weights.bin").write_bytes(b"\1\2\3\4" * 64)
    for path in (source / "config.json", source / "sub" / "weights.bin"):
        client.upload_file(str(path), bucket, f"models/m/1/{path.relative_to(source).as_posix()}")
    sha = folder_sha256(source)
    uri = f"s3://{bucket}/models/m/1"

    def artifact(version: str, digest: str) -> ModelArtifact:
        return ModelArtifact("m", version, uri, digest, cfg.s3_endpoint_url, cfg.s3.region, True)

    cache = tmp_path / "cache"
    with pytest.raises(ArtifactError, match=r"hash to .*, the registry says"):
        materialize(artifact("1", "0" * 64), cache)
    assert not (cache / "m").exists() or not any((cache / "m").iterdir())  # nothing half-written is left
    path = Path(materialize(artifact("1", sha), cache))
    assert path == cache / "m" / f"1-{sha[:16]}"
    assert (path / "sub" / "weights.bin").read_bytes() == b"\1\2\3\4" * 64
    assert folder_sha256(path) == sha
