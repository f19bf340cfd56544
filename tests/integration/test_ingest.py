"""The ingest stream end to end on Spark + Delta: landing folder and Kafka -> bronze, quarantine, silver.

One generated catalog is streamed once as the reference run; every other run (shuffled, split into more
micro-batches with extra duplicates, killed with SIGKILL and restarted, through the Kafka broker) must
give exactly the same silver rows.
"""

from __future__ import annotations

import dataclasses
import json
import os
import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests import oracle
from vectorlake.config import PROJECT_ROOT, Config, load_config
from vectorlake.contracts import KINDS
from vectorlake.generate import Catalog, GeneratorSpec, generate, send_kafka, write_landing
from vectorlake.lake.reference import load_reference
from vectorlake.lake.tables import LakeTables
from vectorlake.pipeline import ingest_query as stream

SPEC = GeneratorSpec(
    seed=11, listings=150, sellers=12, events=1500, suppression_rate=0.25, image_size=(64, 48)
)


def _cfg(lake: Path, **overrides: str) -> Config:
    env = dict(os.environ) | {"VECTORLAKE__LAKE__ROOT": str(lake)}
    env |= {f"VECTORLAKE__{k.upper()}": v for k, v in overrides.items()}
    return load_config(environ=env)


def _lines(catalog: Catalog) -> list[bytes]:
    return [line for lines in catalog.streams().values() for line in lines]


@dataclasses.dataclass(frozen=True)
class Run:
    catalog: Catalog
    tables: LakeTables
    totals: stream.StreamTotals
    silver: list[tuple[Any, ...]]


@pytest.fixture(scope="module")
def landing(tmp_path_factory: pytest.TempPathFactory) -> tuple[Catalog, Path]:
    out = tmp_path_factory.mktemp("landing")
    catalog = generate(SPEC, image_root=str(out / "images"))
    write_landing(catalog, out, files_per_kind=1)
    return catalog, out


@pytest.fixture(scope="module")
def reference_run(spark: Any, landing: tuple[Catalog, Path], tmp_path_factory: pytest.TempPathFactory) -> Run:
    catalog, out = landing
    tmp = tmp_path_factory.mktemp("lake-reference")
    (tmp / "runs").mkdir()
    # issue 16: a root spelled with '..' (Delta refused it: DELTA_AMBIGUOUS_PATHS_IN_CREATE_TABLE)
    cfg = _cfg(tmp / "runs" / ".." / "lake")
    assert cfg.lake.root == str(tmp / "lake")
    totals = stream.run(spark, cfg, "files", once=True, landing_dir=str(out))
    tables = LakeTables(cfg.lake.root)
    return Run(catalog, tables, totals, oracle.silver_rows(spark, tables))


def _count(spark: Any, path: str) -> int:
    return int(spark.read.format("delta").load(path).count())


def test_counts_reconcile_and_every_poison_line_is_quarantined_with_its_reason(
    spark: Any, reference_run: Run
) -> None:
    catalog, tables, totals = reference_run.catalog, reference_run.tables, reference_run.totals
    assert totals.rows_in == len(_lines(catalog))
    assert totals.rows_in == totals.accepted + totals.duplicates + totals.quarantined
    assert totals.duplicates == catalog.duplicates
    assert sum(_count(spark, tables.bronze(k)) for k in KINDS) == totals.accepted
    quarantine = spark.read.format("delta").load(tables.quarantine).collect()
    assert len(quarantine) == totals.quarantined
    assert Counter(r["reason"] for r in quarantine) == Counter(catalog.poison)
    lines = set(_lines(catalog))
    assert all(bytes(r["payload"]) in lines for r in quarantine)
    assert all(r["source"].endswith(".jsonl") and r["received_at"] is not None for r in quarantine)
    for kind in KINDS:
        ids = [r["event_id"] for r in spark.read.format("delta").load(tables.bronze(kind)).collect()]
        assert len(ids) == len(set(ids)), f"bronze/{kind} holds a duplicate event_id"


def test_silver_equals_the_register_oracle(spark: Any, reference_run: Run, cfg: Config) -> None:
    tables = reference_run.tables
    reference = load_reference(cfg.reference.categories, cfg.reference.locales)
    want = oracle.expected_served(oracle.bronze_events(spark, tables), reference)
    got = oracle.silver_served(spark, tables)
    assert got == want
    assert len(got) > SPEC.listings // 2  # most listings end up served: the comparison is not vacuous
    listings = spark.read.format("delta").load(tables.listings)
    suppressed = listings.where("live AND policy_status = 'SUPPRESSED'").count()
    deleted = listings.where("NOT live").count()
    assert suppressed > 0 and deleted > 0
    paths = {r["category_path"] for r in listings.where("served").collect()}
    assert "Furniture > Chairs" in paths or "Sports > Bikes" in paths
    assert {r["locale"] for r in listings.where("served").collect()} <= {
        "en-US", "en-GB", "de-DE", "fr-FR", "es-ES", "it-IT", "nl-NL", "ja-JP",
    }  # fmt: skip


def test_every_served_state_is_recorded_in_listing_versions(spark: Any, reference_run: Run) -> None:
    tables = reference_run.tables
    versions = {
        (r["listing_id"], r["state_hash"], r["version"])
        for r in spark.read.format("delta").load(tables.listing_versions).collect()
    }
    for r in spark.read.format("delta").load(tables.listings).collect():
        assert (r["listing_id"], r["state_hash"], r["version"]) in versions
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{tables.listings}`").collect()[0]
    assert detail["properties"].get("delta.enableChangeDataFeed") == "true"


def test_a_second_run_over_the_same_input_changes_nothing(
    spark: Any, reference_run: Run, landing: tuple[Catalog, Path]
) -> None:
    tables = reference_run.tables
    before = spark.sql(f"DESCRIBE HISTORY delta.`{tables.listings}`").count()
    totals = stream.run(spark, _cfg(Path(tables.root)), "files", once=True, landing_dir=str(landing[1]))
    assert totals.rows_in == 0
    assert spark.sql(f"DESCRIBE HISTORY delta.`{tables.listings}`").count() == before
    assert oracle.silver_rows(spark, tables) == reference_run.silver


def test_shuffled_split_and_redelivered_input_gives_the_same_silver(
    spark: Any, reference_run: Run, tmp_path: Path
) -> None:
    catalog = reference_run.catalog
    rng = random.Random(5)
    streams = {k: rng.sample(v, len(v)) for k, v in catalog.streams().items()}
    for lines in streams.values():  # at-least-once delivery: 10% more copies, anywhere in the stream
        for line in rng.choices(lines, k=len(lines) // 10):
            lines.insert(rng.randrange(len(lines) + 1), line)
    shuffled = dataclasses.replace(catalog, **streams, emission_order=[])  # type: ignore[arg-type]
    out = tmp_path / "landing"
    write_landing(shuffled, out, files_per_kind=6)
    cfg = _cfg(tmp_path / "lake", sources__max_files_per_trigger="2")
    totals = stream.run(spark, cfg, "files", once=True, landing_dir=str(out))
    assert totals.batches >= 3
    assert totals.rows_in == sum(len(v) for v in streams.values())
    assert totals.rows_in == totals.accepted + totals.duplicates + totals.quarantined
    assert totals.accepted == reference_run.totals.accepted
    assert oracle.silver_rows(spark, LakeTables(str(tmp_path / "lake"))) == reference_run.silver


def _wait_for(predicate: Any, what: str, proc: subprocess.Popen[bytes], timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if proc.poll() is not None:
            raise AssertionError(f"the stream exited with {proc.returncode} while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.5)


def _batch_files(checkpoint: Path, name: str) -> set[int]:
    folder = checkpoint / name
    return {int(p.name) for p in folder.iterdir() if p.name.isdigit()} if folder.exists() else set()


@pytest.fixture
def submitted(tmp_path: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    procs: list[subprocess.Popen[bytes]] = []
    yield procs
    for p in procs:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def test_sigterm_stops_cleanly_and_kill_9_restarts_to_the_same_silver(
    spark: Any, reference_run: Run, tmp_path: Path, submitted: list[subprocess.Popen[bytes]]
) -> None:
    out = tmp_path / "landing"
    files = 5  # per kind; one of each per micro-batch, so a whole run is `files` batches
    write_landing(reference_run.catalog, out, files_per_kind=files)
    lake = tmp_path / "lake"
    overrides = {"sources__max_files_per_trigger": "1", "sources__trigger_interval": "1 second"}
    env = dict(os.environ) | {"VECTORLAKE__LAKE__ROOT": str(lake)}
    env |= {f"VECTORLAKE__{k.upper()}": v for k, v in overrides.items()}
    args = ["--source", "files", "--landing-dir", str(out), "--only", "ingest"]
    cli = [str(PROJECT_ROOT / ".venv/bin/vectorlake"), "stream", *args]
    submit = [str(PROJECT_ROOT / "scripts/submit.sh"), "jobs/stream_listings.py", *args]
    checkpoint = Path(stream.checkpoint_path(_cfg(lake), "files"))

    def launch(cmd: list[str], log: str) -> subprocess.Popen[bytes]:
        with (tmp_path / log).open("wb") as f:
            proc = subprocess.Popen(
                cmd, cwd=PROJECT_ROOT, env=env, stdout=f, stderr=subprocess.STDOUT, start_new_session=True
            )
        submitted.append(proc)
        return proc

    # SIGTERM to `vectorlake stream`: the running micro-batch finishes, the query stops, exit 0
    first = launch(cli, "first.log")
    _wait_for(lambda: len(_batch_files(checkpoint, "commits")) >= 1, "a first committed batch", first)
    running = max(_batch_files(checkpoint, "offsets"))  # the batch planned or running at the signal
    first.send_signal(signal.SIGTERM)
    assert first.wait(timeout=300) == 0, (tmp_path / "first.log").read_text()[-3000:]
    assert max(_batch_files(checkpoint, "commits")) >= running  # it was let finish
    log = (tmp_path / "first.log").read_text()
    assert "received SIGTERM" in log and "stopped after batch" in log

    # the same query under spark-submit, killed with SIGKILL mid-run, then restarted from its checkpoint
    second = launch(submit, "second.log")
    done = len(_batch_files(checkpoint, "commits"))
    _wait_for(lambda: len(_batch_files(checkpoint, "commits")) >= done + 1, "another committed batch", second)
    os.killpg(second.pid, signal.SIGKILL)
    second.wait()
    assert len(_batch_files(checkpoint, "commits")) < files  # it was stopped mid-run

    totals = stream.run(spark, _cfg(lake, **overrides), "files", once=True, landing_dir=str(out))
    assert totals.batches >= 1
    tables = LakeTables(str(lake))
    assert sum(_count(spark, tables.bronze(k)) for k in KINDS) == reference_run.totals.accepted
    assert _count(spark, tables.quarantine) == reference_run.totals.quarantined
    assert oracle.silver_rows(spark, tables) == reference_run.silver


def test_kafka_gives_the_same_silver_as_the_landing_folder(
    spark: Any, reference_run: Run, tmp_path: Path, unique_name: str
) -> None:
    from confluent_kafka.admin import AdminClient

    topics = {kind: f"{unique_name}-{kind}" for kind in KINDS}
    overrides = {f"sources__topics__{kind}": topic for kind, topic in topics.items()}
    cfg = _cfg(tmp_path / "lake", **overrides)
    admin = AdminClient({"bootstrap.servers": cfg.kafka_bootstrap_servers})
    try:
        from vectorlake.lake.sources import ensure_topics

        ensure_topics(cfg)
        sent = send_kafka(reference_run.catalog, cfg.kafka_bootstrap_servers, topics)
        assert sum(sent.values()) == len(_lines(reference_run.catalog))
        totals = stream.run(spark, cfg, "kafka", once=True)
        assert (totals.rows_in, totals.accepted, totals.duplicates, totals.quarantined) == (
            reference_run.totals.rows_in,
            reference_run.totals.accepted,
            reference_run.totals.duplicates,
            reference_run.totals.quarantined,
        )
        tables = LakeTables(str(tmp_path / "lake"))
        assert oracle.silver_rows(spark, tables) == reference_run.silver
        sources = {
            r["source"].split("/")[0] for r in spark.read.format("delta").load(tables.quarantine).collect()
        }
        assert sources <= {f"kafka:{t}" for t in topics.values()}
    finally:
        for future in admin.delete_topics(list(topics.values())).values():
            future.result(timeout=30)


def test_the_generate_and_stream_commands(tmp_path: Path) -> None:
    env = dict(os.environ) | {"VECTORLAKE__LAKE__ROOT": str(tmp_path / "lake")}
    vl = str(PROJECT_ROOT / ".venv/bin/vectorlake")
    out = tmp_path / "landing"
    gen = subprocess.run(
        [vl, "generate", "--out", str(out), "--listings", "20", "--events", "200", "--seed", "3"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    assert "wrote" in gen.stdout
    manifest = json.loads((out / "manifest.json").read_text())
    lines = sum(manifest["counts"][k] for k in KINDS)
    run = subprocess.run(
        [vl, "stream", "--source", "files", "--once", "--landing-dir", str(out), "--only", "ingest"],
        env=env, capture_output=True, text=True, check=True,
    )  # fmt: skip
    summary = run.stdout.strip().splitlines()[-1]
    assert summary.endswith(
        f"{lines} in, {lines - manifest['duplicates'] - sum(manifest['poison'].values())} accepted, "
        f"{manifest['duplicates']} duplicates, {sum(manifest['poison'].values())} quarantined, 0 erased"
    ), summary
    assert "batch 0:" in run.stderr
