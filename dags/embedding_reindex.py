"""
### embedding_reindex

Builds a new index generation for new model versions without downtime, then validates it and (if asked)
makes it live:

1. **create_generation**: a new physical index behind the `<alias>_next` alias, its `_meta` naming the
   model versions; the stream writes live changes to it from now on (dual write).
2. **reindex**: `spark-submit jobs/reindex.py --generation <index> --no-validate` bulk-loads it from the
   current silver state, reusing cached embeddings; resumable, so a retry continues where it stopped.
3. **validate**: the gate (count parity, missing vectors, recall@10 of ANN vs exact search, relevance on
   the labelled queries vs the live generation, embedding checks), recorded as an mlflow run. A failing
   gate fails this task at once, without retries, with the report in the error.
4. **cutover_or_stop**: with `auto_cutover`, **cutover** swaps the alias in one atomic `_aliases` request
   (the old generation is retired and kept for rollback); without it, **stop** logs the command that cuts
   over by hand (`vectorlake cutover <index>`).

**Params**: `text_model_version`, `image_model_version` (registry versions; empty/null = the `champion`
alias) and `auto_cutover` (default false).
"""

from __future__ import annotations

import logging

from airflow.sdk import Param, dag, get_current_context, task
from airflow.sdk.exceptions import AirflowFailException
from dag_common import DEFAULT_ARGS, MACROS, START_DATE, spark_job

log = logging.getLogger(__name__)


@dag(
    schedule=None,
    start_date=START_DATE,
    catchup=False,
    max_active_runs=1,
    is_paused_upon_creation=False,  # manual only: unpaused, so a trigger from the UI form runs at once
    doc_md=__doc__,
    tags=["vectorlake", "index", "models", "spark"],
    default_args=DEFAULT_ARGS,
    user_defined_macros=MACROS,
    params={
        "text_model_version": Param(
            None,
            type=["null", "string"],
            title="Text model version",
            description="Version of the text encoder in the model registry; empty: the champion alias.",
        ),
        "image_model_version": Param(
            None,
            type=["null", "string"],
            title="Image model version",
            description="Version of the image encoder in the model registry; empty: the champion alias.",
        ),
        "auto_cutover": Param(
            False,
            type="boolean",
            title="Cut over automatically",
            description="Make the new generation live as soon as it passes the validation gate.",
        ),
    },
)
def embedding_reindex() -> None:
    @task
    def create_generation() -> str:
        from vectorlake.config import load_config
        from vectorlake.ops import lifecycle

        params = get_current_context()["params"]
        generation = lifecycle.create_generation(
            load_config(), params["text_model_version"] or None, params["image_model_version"] or None
        )
        log.info("building generation %s", generation.index)
        return str(generation.index)

    @task
    def validate(index: str) -> str:
        from vectorlake.config import load_config
        from vectorlake.ops import gate

        report = gate.validate(load_config(), index)
        if not report.passed:
            # a gate verdict is not a transient error: fail now, no retries, with what failed
            failures = "; ".join(report.failures)
            raise AirflowFailException(
                f"{index} failed the validation gate: {failures}. "
                f"Report: {report.line()} (mlflow run {report.run_id})"
            )
        log.info("%s", report.line())
        return index

    @task.branch
    def cutover_or_stop() -> str:
        return "cutover" if get_current_context()["params"]["auto_cutover"] else "stop"

    @task
    def cutover(index: str) -> str:
        from vectorlake.config import load_config
        from vectorlake.ops import lifecycle

        line = str(lifecycle.cutover(load_config(), index).line())
        log.info("%s", line)
        return line

    @task
    def stop(index: str) -> None:
        log.info(
            "%s passed the gate; auto_cutover is off: go live with `vectorlake cutover %s`", index, index
        )

    index = create_generation()
    reindex = spark_job("reindex", "reindex.py", ["--generation", index, "--no-validate"])
    validated = validate(index)
    reindex >> validated >> cutover_or_stop() >> [cutover(validated), stop(validated)]


embedding_reindex()
