"""The search canary: the labelled queries against the live generation, compared with its baseline.

    report = run(cfg)                      # `vectorlake canary`; the search_canary DAG, daily
    report.passed, report.lines()

HNSW recall decays silently under continuous deletes and updates, and relevance with it, while every
write succeeds. The canary embeds the generator's labelled queries (``gate.labelled_queries``) with the
live generation's text model and measures on its index:

- ``recall_at_10``: the share of the exact top 10 (a script score over every document) that the
  approximate top 10 (HNSW, ``index.ef_search``) finds, averaged over the queries;
- ``hit_at_10``: the share of queries with at least one relevant listing in the approximate top 10,
  over the queries that have a relevant listing in the generation.

Each run is an mlflow run (experiment ``vectorlake-canary``, tags ``index`` and ``kind``). A generation's
first measurement is its baseline (``kind=baseline``; ``--write-baseline`` records a new one, e.g. right
after a cutover); later runs (``kind=check``) fail when either figure is more than
``gate.max_canary_drop`` (0.02, two points) below the baseline.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import TYPE_CHECKING

from vectorlake.config import Config
from vectorlake.errors import VectorlakeError
from vectorlake.ops.gate import experiment_id

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

log = logging.getLogger(__name__)

EXPERIMENT = "vectorlake-canary"


@dataclass(frozen=True)
class Measure:
    recall_at_10: float
    hit_at_10: float
    queries: int  # labelled queries run (recall is over all of them)
    judged: int  # those with a relevant listing in the generation (hit@10 is over these)


@dataclass(frozen=True)
class CanaryReport:
    index: str
    measure: Measure
    baseline: Measure | None  # None: this run recorded the baseline
    max_drop: float
    run_id: str

    @property
    def drops(self) -> dict[str, float]:
        if self.baseline is None:
            return {}
        return {
            "recall_at_10": self.baseline.recall_at_10 - self.measure.recall_at_10,
            "hit_at_10": self.baseline.hit_at_10 - self.measure.hit_at_10,
        }

    @property
    def passed(self) -> bool:
        return all(drop <= self.max_drop + 1e-9 for drop in self.drops.values())

    def lines(self) -> list[str]:
        m = self.measure
        now = (
            f"recall@10 {m.recall_at_10:.3f}, hit@10 {m.hit_at_10:.3f} "
            f"({m.queries} queries, {m.judged} judged)"
        )
        if self.baseline is None:
            return [f"canary {self.index}: baseline recorded: {now} (mlflow run {self.run_id})"]
        b = self.baseline
        verdict = "ok" if self.passed else "FAILED"
        failed = [
            f"{name} dropped {drop:.3f}" for name, drop in self.drops.items() if drop > self.max_drop + 1e-9
        ]
        return [
            f"canary {self.index}: {verdict}: {now}",
            f"  baseline: recall@10 {b.recall_at_10:.3f}, hit@10 {b.hit_at_10:.3f}; "
            f"allowed drop {self.max_drop:g}" + (f"; {', '.join(failed)}" if failed else ""),
        ]


def measure(cfg: Config, client: OpenSearch, index: str) -> Measure:
    """recall@10 and hit@10 of the labelled queries on ``index`` (embedded with its own text model)."""
    from vectorlake.index import generations
    from vectorlake.ops.gate import labelled_queries, query_inputs, recall, text_encoder, top_ids

    path = cfg.labelled_queries
    if not path.exists():
        raise VectorlakeError(f"no labelled queries at {path} (gate.labelled_queries): nothing to measure")
    queries = labelled_queries(path)
    if not queries:
        raise VectorlakeError(f"{path} holds no labelled queries")
    present = _present(client, index, sorted({lid for _, rel in queries for lid in rel}))
    encoder = text_encoder(cfg, str(generations.generation_meta(client, index)["text_model"]))
    vectors = [[float(x) for x in v] for v in encoder.encode(query_inputs([q for q, _ in queries]))]
    recalls, hits = [], []
    for (_, relevant), vector in zip(queries, vectors, strict=True):
        ann = top_ids(client, index, vector, False, cfg.index.ef_search)
        recalls.append(recall(ann, top_ids(client, index, vector, True)))
        if present & set(relevant):
            hits.append(bool(set(ann) & set(relevant)))
    return Measure(
        recall_at_10=sum(recalls) / len(recalls),
        hit_at_10=sum(hits) / len(hits) if hits else 0.0,
        queries=len(queries),
        judged=len(hits),
    )


def _present(client: OpenSearch, index: str, ids: list[str]) -> set[str]:
    """Which of ``ids`` have a document in ``index``."""
    found: set[str] = set()
    for start in range(0, len(ids), 1000):
        response = client.mget(
            index=index, body={"ids": ids[start : start + 1000]}, params={"_source": "false"}
        )
        found |= {d["_id"] for d in response["docs"] if d.get("found")}
    return found


def baseline(cfg: Config, index: str) -> Measure | None:
    """The newest baseline recorded for ``index``, or None."""
    from mlflow import MlflowClient

    runs = MlflowClient(cfg.mlflow_tracking_uri).search_runs(
        [experiment_id(cfg, EXPERIMENT)],
        filter_string=f"tags.index = '{index}' and tags.kind = 'baseline'",
        order_by=["attributes.start_time DESC"],
        max_results=1,
    )
    if not runs:
        return None
    m = runs[0].data.metrics
    return Measure(m["recall_at_10"], m["hit_at_10"], int(m["queries"]), int(m["judged"]))


def _record(cfg: Config, index: str, kind: str, found: Measure, passed: bool) -> str:
    import mlflow

    with mlflow.start_run(
        experiment_id=experiment_id(cfg, EXPERIMENT), run_name=f"canary-{kind}-{index}"
    ) as run:
        mlflow.set_tags({"index": index, "kind": kind, "passed": str(passed).lower()})
        mlflow.log_metrics({k: float(v) for k, v in vars(found).items()})
        return str(run.info.run_id)


def run(cfg: Config, write_baseline: bool = False) -> CanaryReport:
    """Measure the live generation; record a baseline (its first run, or asked) or check against it."""
    from vectorlake.index import generations
    from vectorlake.index.client import make_client

    client = make_client(cfg)
    try:
        index = generations.live_index(client, cfg.index.alias)
        if index is None:
            raise VectorlakeError(f"no index behind the alias '{cfg.index.alias}' yet: nothing to measure")
        found = measure(cfg, client, index)
    finally:
        client.close()
    base = None if write_baseline else baseline(cfg, index)
    passed = CanaryReport(index, found, base, cfg.gate.max_canary_drop, "").passed
    run_id = _record(cfg, index, "baseline" if base is None else "check", found, passed)
    report = CanaryReport(index, found, base, cfg.gate.max_canary_drop, run_id)
    for line in report.lines():
        (log.info if report.passed else log.warning)("%s", line)
    return report
