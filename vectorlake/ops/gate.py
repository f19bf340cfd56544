"""The validation gate a building generation must pass before `cutover` makes it live.

    report = validate(cfg)          # `vectorlake validate`; the embedding_reindex DAG's validate task
    report.passed, report.failures  # the control table and an mlflow run record the same

Checks (thresholds under ``gate`` in the config):

- ``count_parity``: documents in the generation against served listings in silver now.
- ``missing_vectors``: share of documents without a text vector, plus served listings with a primary image
  whose document has no image vector.
- ``recall_at_10``: for a deterministic sample of served listing titles as queries (embedded with the
  generation's own text model), the share of the exact top 10 that the ANN top 10 finds.
- ``relevance``: hit@10 of the generator's labelled queries on the new generation may be at most
  ``max_relevance_drop`` below the live one's (each embedded with its own model). Skipped, and said so,
  when there is no live generation or no labelled-queries file.
- ``embeddings_quality``: the embeddings suite (`vectorlake.ops.quality`, ``expectations/embeddings.json``)
  on the generation's models' cached vectors: the model's dimension, no NaN, unit norm (``max_norm_error``),
  and no drift from the stored baseline (skipped, and said so, for a model version without one).

The run is logged to mlflow (experiment ``vectorlake-reindex``): parameters, one metric per check, the
report as an artifact and a ``passed`` tag; its id goes to ``control/index_generations``.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from vectorlake import s3
from vectorlake.config import Config
from vectorlake.errors import IndexStateError
from vectorlake.lake.tables import LakeTables

if TYPE_CHECKING:
    from opensearchpy import OpenSearch

log = logging.getLogger(__name__)

EXPERIMENT = "vectorlake-reindex"
QUALITY_SAMPLE = 5000


@dataclass(frozen=True)
class Check:
    name: str
    value: float | None  # None: skipped
    threshold: str  # the rule, e.g. "<= 0.001"
    passed: bool
    detail: str

    def line(self) -> str:
        shown = "skipped" if self.value is None else f"{self.value:.4f}"
        verdict = "ok" if self.passed else "FAILED"
        return f"{self.name}: {shown} ({self.threshold}) {verdict} - {self.detail}"


@dataclass(frozen=True)
class GateReport:
    index: str
    checks: tuple[Check, ...]
    run_id: str

    @property
    def passed(self) -> bool:
        return all(c.passed for c in self.checks)

    @property
    def failures(self) -> list[str]:
        return [c.line() for c in self.checks if not c.passed]

    def line(self) -> str:
        if self.passed:
            return f"gate passed for {self.index} (mlflow run {self.run_id})"
        return f"gate FAILED for {self.index} (mlflow run {self.run_id}): " + "; ".join(self.failures)

    def text(self) -> str:
        return "\n".join([self.line(), *(c.line() for c in self.checks)]) + "\n"


def at_most(name: str, value: float, limit: float, detail: str) -> Check:
    return Check(name, value, f"<= {limit:g}", value <= limit, detail)


def at_least(name: str, value: float, limit: float, detail: str) -> Check:
    return Check(name, value, f">= {limit:g}", value >= limit, detail)


def recall(ann: Sequence[str], exact: Sequence[str]) -> float:
    """Share of the exact top-k that the ANN top-k found (1.0 when exact is empty)."""
    return len(set(ann) & set(exact)) / len(exact) if exact else 1.0


def golden_sample(ids_titles: Sequence[tuple[str, str]], n: int) -> list[tuple[str, str]]:
    """`n` (listing_id, title) pairs chosen by a hash of the id: the same sample on every run."""
    keyed = sorted(ids_titles, key=lambda p: hashlib.sha256(p[0].encode()).hexdigest())
    return [p for p in keyed if p[1] and p[1].strip()][:n]


def _served(cfg: Config) -> Any:
    """The served silver listings (listing_id, title, primary_image_url) as an Arrow table, via delta-rs."""
    import pyarrow.compute as pc

    from vectorlake import control

    opened = control.open_dataset(cfg, LakeTables(cfg.lake.root).listings)
    if opened is None:
        raise IndexStateError("silver/listings does not exist yet: run `vectorlake stream` first")
    return opened[1].to_table(
        columns=["listing_id", "title", "primary_image_url"],
        filter=pc.field("served"),  # (`== True` matches no row of a Spark-written boolean column here)
    )


def _count(client: OpenSearch, index: str, query: Mapping[str, Any]) -> int:
    return int(client.count(index=index, body={"query": query})["count"])


def text_encoder(cfg: Config, label: str) -> Any:
    """The text encoder of a generation's ``text_model`` label (``<model>/<version>``), loaded once."""
    from vectorlake.embed.encoders import load_text_encoder
    from vectorlake.pipeline.targets import model_ref

    ref = model_ref(cfg, "text", label.rsplit("/", 1)[1])
    return load_text_encoder(
        ref.path,
        cfg.embed.device,
        cfg.embed.batch_size,
        cfg.embed.chunk_overlap_tokens,
        cfg.embed.torch_threads,
    )


def top_ids(
    client: OpenSearch, index: str, vector: Sequence[float], exact: bool, ef_search: int | None = None
) -> list[str]:
    """The ids of the 10 nearest documents to ``vector`` on ``text_vector``, approximate or exact."""
    from vectorlake.index.search import Filters, search_vector

    hits = search_vector(
        client, index, "text_vector", vector, 10, Filters(), exact=exact, ef_search=ef_search
    )
    return [h.listing_id for h in hits]


def query_inputs(texts: Sequence[str]) -> list[str]:
    """Query texts as the text model's input (the same normalization as a listing's title)."""
    from vectorlake.embed.modelinput import text_input

    return [text_input(t, None, None, None, ()) for t in texts]


def labelled_queries(path: Path) -> list[tuple[str, list[str]]]:
    """(query, relevant listing ids) from a generator's ``queries.jsonl``."""
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            out.append((str(row["query"]), [str(x) for x in row["relevant"]]))
    return out


def hit_rate(client: OpenSearch, index: str, vectors: Any, relevant: Sequence[Sequence[str]]) -> float:
    hits = 0
    for vector, wanted in zip(vectors, relevant, strict=True):
        hits += bool(set(top_ids(client, index, [float(x) for x in vector], exact=False)) & set(wanted))
    return hits / len(relevant) if relevant else 0.0


def run_checks(cfg: Config, client: OpenSearch, index: str, live: str | None) -> list[Check]:
    from vectorlake.index import generations

    g = cfg.gate
    client.indices.refresh(index=index)
    meta = generations.generation_meta(client, index)
    served = _served(cfg)
    n_served = served.num_rows
    docs = _count(client, index, {"match_all": {}})
    checks = [
        at_most(
            "count_parity",
            abs(docs - n_served) / max(n_served, 1),
            g.max_count_gap,
            f"{docs} documents, {n_served} served listings in silver",
        )
    ]

    no_text = _count(client, index, {"bool": {"must_not": [{"exists": {"field": "text_vector"}}]}})
    with_image = served.filter(served.column("primary_image_url").is_valid()).num_rows
    image_vectors = _count(client, index, {"exists": {"field": "image_vector"}})
    missing = no_text + max(with_image - image_vectors, 0)
    checks.append(
        at_most(
            "missing_vectors",
            missing / max(docs, 1),
            g.max_missing_vectors,
            f"{no_text} without a text vector; {image_vectors} image vectors for {with_image} served "
            f"listings with a primary image",
        )
    )

    encoder = text_encoder(cfg, str(meta["text_model"]))
    sample = golden_sample(
        list(zip(served.column("listing_id").to_pylist(), served.column("title").to_pylist(), strict=True)),
        g.golden_queries,
    )
    if sample:
        vectors = encoder.encode(query_inputs([t for _, t in sample]))
        queries = [[float(x) for x in v] for v in vectors]
        recalls = [recall(top_ids(client, index, q, False), top_ids(client, index, q, True)) for q in queries]
        checks.append(
            at_least(
                "recall_at_10",
                sum(recalls) / len(recalls),
                g.min_recall_at_10,
                f"ANN against exact search over {len(sample)} sampled listing titles",
            )
        )
    else:
        checks.append(Check("recall_at_10", None, f">= {g.min_recall_at_10:g}", False, "no served listings"))

    checks.append(_relevance(cfg, client, index, live, encoder))
    checks.append(_quality(cfg, meta))
    return checks


def _relevance(cfg: Config, client: OpenSearch, index: str, live: str | None, encoder: Any) -> Check:
    from vectorlake.index import generations

    rule = f"drop <= {cfg.gate.max_relevance_drop:g}"
    path = cfg.labelled_queries
    if live is None or live == index:
        return Check("relevance", None, rule, True, "skipped: no live generation to compare with")
    if not path.exists():
        return Check("relevance", None, rule, True, f"skipped: no labelled queries at {path}")
    present = {h["_id"] for h in _ids(client, live)}
    queries = [(q, rel) for q, rel in labelled_queries(path) if present & set(rel)]
    if not queries:
        return Check("relevance", None, rule, True, "skipped: no labelled query has a live relevant listing")
    texts, relevant = query_inputs([q for q, _ in queries]), [rel for _, rel in queries]
    new = hit_rate(client, index, encoder.encode(texts), relevant)
    live_encoder = text_encoder(cfg, str(generations.generation_meta(client, live)["text_model"]))
    old = hit_rate(client, live, live_encoder.encode(texts), relevant)
    return Check(
        "relevance",
        old - new,
        rule,
        old - new <= cfg.gate.max_relevance_drop,
        f"hit@10 over {len(queries)} labelled queries: {new:.3f} new, {old:.3f} live",
    )


def _ids(client: OpenSearch, index: str) -> Any:
    from opensearchpy import helpers

    return helpers.scan(client, index=index, query={"query": {"match_all": {}}}, _source=False)


def _quality(cfg: Config, meta: Mapping[str, Any]) -> Check:
    """The embeddings suite (expectations/embeddings.json) on the generation's models' cached vectors."""
    from vectorlake.ops import quality

    dims: dict[str, int | None] = {str(meta[f"{r}_model"]): int(meta[f"{r}_dim"]) for r in ("text", "image")}
    result, _ = quality.check_embeddings(
        cfg,
        dims,
        params={"min_norm": 1.0 - cfg.gate.max_norm_error, "max_norm": 1.0 + cfg.gate.max_norm_error},
        per_model_rows=QUALITY_SAMPLE,
    )
    problems = [o.line() for o in result.failures]
    fine = f"{result.rows} cached vectors: right dimension, no NaN, unit norm"
    skipped = "; ".join(o.line() for o in result.skipped)
    return Check(
        "embeddings_quality",
        float(len(problems)),
        "== 0 problems",
        not problems,
        "; ".join(problems) or (f"{fine} ({skipped})" if skipped else fine),
    )


def experiment_id(cfg: Config, name: str) -> str:
    """The id of the mlflow experiment ``name`` (created with its artifacts under ``mlflow.artifact_root``),
    with the tracking URI set for the runs that follow."""
    import mlflow

    mlflow.set_tracking_uri(cfg.mlflow_tracking_uri)
    found = mlflow.get_experiment_by_name(name)
    if found is not None:
        return str(found.experiment_id)
    location = f"{cfg.mlflow_artifact_root.rstrip('/')}/{name}"
    return str(mlflow.create_experiment(name, artifact_location=location))


def validate(cfg: Config, index: str | None = None) -> GateReport:
    """Run every check on the building generation, log the mlflow run and record the verdict."""
    import mlflow

    from vectorlake.index import generations
    from vectorlake.index.client import make_client
    from vectorlake.ops import lifecycle

    client = make_client(cfg)
    try:
        target = lifecycle.building(cfg, client, index)
        live = generations.live_index(client, cfg.index.alias)
        meta = generations.generation_meta(client, target)
        checks = run_checks(cfg, client, target, live)
    finally:
        client.close()
    with mlflow.start_run(experiment_id=experiment_id(cfg, EXPERIMENT), run_name=f"gate-{target}") as run:
        mlflow.log_params(
            {
                "index": target,
                "live": live or "",
                "text_model": meta.get("text_model"),
                "image_model": meta.get("image_model"),
                **{f"gate.{k}": v for k, v in cfg.gate.__dict__.items()},
            }
        )
        mlflow.log_metrics({c.name: c.value for c in checks if c.value is not None})
        report = GateReport(target, tuple(checks), run.info.run_id)
        mlflow.set_tag("passed", str(report.passed).lower())
        with s3.mlflow_artifacts(cfg, run.info.artifact_uri):  # the stack's S3 credentials, locally
            mlflow.log_text(report.text(), "gate_report.txt")
    lifecycle.record_validation(cfg, target, report.passed, report.run_id, "; ".join(report.failures))
    (log.info if report.passed else log.warning)("%s", report.line())
    return report
