"""Data-quality suites (great-expectations) over the lake: bronze events, silver listings, embeddings.

    report = run(cfg)                          # `vectorlake quality`; the data_quality DAG
    report = run(cfg, ["embeddings"], write_baseline=True)
    report.success, report.lines()             # control/quality_results holds one row per expectation

The suites are GE suite JSON files in ``expectations/`` (`SUITES`; `SUITES_BY_LAYER` groups them by lake
layer). Thresholds and value sets are suite parameters (``{"$PARAMETER": "locales"}``) filled by
`parameters` from the ``quality`` config, the event contract (`vectorlake.contracts`) and the reference
data, so a suite never holds a second copy of them.
Each suite runs on a pandas frame in an ephemeral GE context; the frame is a sample of its Delta table
(read with delta-rs, newest files first, up to ``quality.sample_rows`` rows):

- ``bronze_<kind>``: the table as it is, ``locale`` normalized the way silver normalizes it;
- ``silver_listings``: the listing columns (not the register state);
- ``embeddings``: one row per vector with columns computed in numpy: ``vector_dim``, ``model_dim`` (the
  registry's dimension of the row's model version), ``norm``, ``has_nan`` and ``mean_shift`` (L2 distance
  of the model version's sample mean vector from its stored baseline), computed by `vectorlake.ops.drift`,
  which also stores the baselines. Without a baseline the drift expectation is reported as skipped, with
  the reason.

Nothing here talks to mlflow except `registered_dims`, which callers that know the dimensions (the reindex
gate) do not need.
"""

from __future__ import annotations

import json
import logging
import os
import uuid
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from vectorlake.config import PROJECT_ROOT, Config
from vectorlake.errors import VectorlakeError
from vectorlake.lake.tables import LakeTables
from vectorlake.ops import drift

if TYPE_CHECKING:
    import pandas as pd
    import pyarrow as pa

log = logging.getLogger(__name__)

SUITES_DIR = PROJECT_ROOT / "expectations"
# The suites by the lake layer they check, in run order; the data_quality DAG runs one task per layer.
SUITES_BY_LAYER = {
    "bronze": ("bronze_listing_changes", "bronze_media", "bronze_seller_policy"),
    "silver": ("silver_listings",),
    "embeddings": ("embeddings",),
}
SUITES = tuple(name for names in SUITES_BY_LAYER.values() for name in names)
# Spark SQL type of a lake column -> the type name GE's pandas `expect_column_values_to_be_of_type` takes
# for the frame `to_frame` builds (strings, ints and booleans as pandas extension types, so nulls keep them)
GE_TYPES = {
    "string": "str",
    "int": "int32",
    "bigint": "int64",
    "double": "float64",
    "boolean": "bool",
    "timestamp": "Timestamp",
}


def ge_type(spark_type: str) -> str:
    """The GE type name of a lake column's Spark SQL type (maps, arrays and structs are pandas objects)."""
    return GE_TYPES.get(spark_type, "object")


LISTING_FRAME_COLUMNS = (
    "listing_id",
    "live",
    "served",
    "version",
    "title",
    "seller_id",
    "locale",
    "category_id",
    "policy_status",
)
Status = Literal["passed", "failed", "skipped"]


class QualityError(VectorlakeError):
    """A suite cannot run at all (unknown suite, unreadable suite file)."""


@dataclass(frozen=True)
class Outcome:
    """One expectation's verdict."""

    seq: int
    expectation: str  # e.g. expect_column_values_to_be_in_set(locale)
    status: Status
    detail: str

    def line(self) -> str:
        return f"{self.expectation}: {self.status} - {self.detail}"


@dataclass(frozen=True)
class SuiteResult:
    suite: str
    table: str  # e.g. silver/listings
    rows: int  # rows of the sample
    outcomes: tuple[Outcome, ...]

    @property
    def success(self) -> bool:
        return not self.failures

    @property
    def failures(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "failed"]

    @property
    def skipped(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.status == "skipped"]

    def line(self) -> str:
        n = len(self.outcomes)
        skipped = f", {len(self.skipped)} skipped" if self.skipped else ""
        if self.success:
            return f"{self.suite}: passed - {n} expectations{skipped} on {self.rows} rows of {self.table}"
        return (
            f"{self.suite}: FAILED - {len(self.failures)} of {n} expectations failed{skipped} "
            f"on {self.rows} rows of {self.table}"
        )


@dataclass(frozen=True)
class QualityReport:
    run_id: str
    suites: tuple[SuiteResult, ...]
    baselines: tuple[str, ...] = ()  # "<model version> (<modality>)" written by this run

    @property
    def success(self) -> bool:
        return all(s.success for s in self.suites)

    def lines(self) -> list[str]:
        out = []
        for s in self.suites:
            out.append(s.line())
            out += [f"  FAILED {o.expectation}: {o.detail}" for o in s.failures]
            out += [f"  skipped {o.expectation}: {o.detail}" for o in s.skipped]
        out += [f"baseline written for {b}" for b in self.baselines]
        passed = sum(s.success for s in self.suites)
        out.append(
            f"quality run {self.run_id}: {passed} of {len(self.suites)} suites passed "
            "(results in control/quality_results)"
        )
        return out


# --- suites -------------------------------------------------------------------------------------------


def load_suite(name: str, suites_dir: Path = SUITES_DIR) -> dict[str, Any]:
    """The suite ``expectations/<name>.json`` as GE's suite dict; QualityError when it cannot be read."""
    if name not in SUITES:
        raise QualityError(f"unknown suite {name!r}: expected one of {', '.join(SUITES)}")
    path = suites_dir / f"{name}.json"
    try:
        suite: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise QualityError(f"cannot read suite {path}: {e}") from e
    if suite.get("name") != name or not isinstance(suite.get("expectations"), list):
        raise QualityError(f"{path}: not a GE suite named {name!r} (name, expectations)")
    return suite


def parameters(cfg: Config) -> dict[str, Any]:
    """Every ``$PARAMETER`` the suites use: thresholds from ``quality``, value sets from the contract and
    the reference data."""
    from vectorlake import contracts
    from vectorlake.lake.reference import load_reference

    q = cfg.quality
    ref = load_reference(cfg.reference.categories, cfg.reference.locales)
    return {
        "key_mostly": q.key_mostly,
        "field_mostly": q.field_mostly,
        "locale_mostly": q.locale_mostly,
        "category_mostly": q.category_mostly,
        "min_norm": 1.0 - q.max_norm_error,
        "max_norm": 1.0 + q.max_norm_error,
        "max_mean_shift": q.max_mean_shift,
        "listing_changes_ops": list(contracts.OPS["listing_changes"]),
        "media_ops": list(contracts.OPS["media"]),
        "statuses": list(contracts.STATUSES),
        "locales": sorted(set(ref.locales.values())),
        "categories": sorted(ref.category_paths),
        "modalities": ["text", "image"],  # vectorlake.embed.registry.ROLES
    }


def _context() -> Any:
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")  # no usage events sent from a check
    import great_expectations as gx
    from great_expectations.data_context.types.base import ProgressBarsConfig

    for name in [n for n in logging.Logger.manager.loggerDict if n.startswith("great_expectations")]:
        logging.getLogger(name).setLevel(logging.WARNING)  # some GE modules set their own INFO level

    context = gx.get_context(mode="ephemeral")
    context.variables.progress_bars = ProgressBarsConfig(globally=False)
    return context


def _label(kwargs: Mapping[str, Any], kind: str) -> str:
    if "column" in kwargs:
        return f"{kind}({kwargs['column']})"
    if "column_A" in kwargs:
        return f"{kind}({kwargs['column_A']}, {kwargs['column_B']})"
    return kind


def _detail(result: Any, kwargs: Mapping[str, Any]) -> str:
    """One line on what a GE result saw."""
    info = result.exception_info or {}
    if info.get("raised_exception"):
        message = str(info.get("exception_message") or "raised").strip().splitlines()
        return f"error: {message[0] if message else 'raised'}"
    r = result.result or {}
    if "unexpected_count" in r and r.get("element_count") is not None:
        mostly = kwargs.get("mostly")
        allowed = f", mostly {mostly:g}" if isinstance(mostly, int | float) and mostly < 1 else ""
        counted = r["element_count"] - int(r.get("missing_count") or 0)  # nulls are not judged
        text = (
            f"{r['unexpected_count']} of {counted} values unexpected "
            f"({r.get('unexpected_percent') or 0.0:.2f}%{allowed})"
        )
        sample = [_plain(v) for v in list(r.get("partial_unexpected_list") or [])[:3]]
        return text + (f", e.g. {sample!r}" if sample and r["unexpected_count"] else "")
    if "observed_value" in r:
        details = r.get("details") or {}
        mismatch = details.get("mismatched") if isinstance(details, dict) else None
        return f"observed {r['observed_value']!r}" + (f", mismatched {mismatch!r}" if mismatch else "")
    return "ok" if result.success else "failed"


def _plain(value: Any) -> Any:
    """numpy scalars (in tuples) as plain Python values, whole floats as ints, for a readable message."""
    if isinstance(value, tuple | list):
        return tuple(_plain(v) for v in value)
    value = value.item() if hasattr(value, "item") else value
    return int(value) if isinstance(value, float) and value.is_integer() else value


def check_frame(
    suite: Mapping[str, Any],
    frame: pd.DataFrame,
    params: Mapping[str, Any],
    skip: Mapping[int, str] | None = None,
    context: Any = None,
) -> list[Outcome]:
    """Run ``suite`` on ``frame``: one Outcome per expectation, in suite order. ``skip``: seq -> reason for
    expectations not to run (reported as skipped)."""
    from great_expectations.core import ExpectationSuite

    skip = dict(skip or {})
    expectations = []
    for seq, e in enumerate(suite["expectations"]):
        if seq not in skip:
            expectations.append({**e, "meta": {**e.get("meta", {}), "seq": seq}})
    outcomes: dict[int, Outcome] = {
        seq: Outcome(
            seq,
            _label(suite["expectations"][seq]["kwargs"], suite["expectations"][seq]["type"]),
            "skipped",
            reason,
        )
        for seq, reason in skip.items()
    }
    if expectations:
        context = context if context is not None else _context()
        name = f"{suite['name']}-{uuid.uuid4().hex[:8]}"
        asset = context.data_sources.add_pandas(name).add_dataframe_asset(name)
        batch = asset.add_batch_definition_whole_dataframe(name).get_batch(
            batch_parameters={"dataframe": frame}
        )
        gx_suite = ExpectationSuite(name=name, expectations=expectations)
        result = batch.validate(gx_suite, expectation_parameters=dict(params))
        for r in result.results:
            config = r.expectation_config
            seq = int(config.meta["seq"])
            kwargs = {**suite["expectations"][seq]["kwargs"], **_resolved(config.kwargs)}
            outcomes[seq] = Outcome(
                seq,
                _label(kwargs, config.type),
                "passed" if r.success else "failed",
                _detail(r, kwargs),
            )
    return [outcomes[s] for s in sorted(outcomes)]


def _resolved(kwargs: Mapping[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in kwargs.items() if not isinstance(v, dict)}


# --- frames -------------------------------------------------------------------------------------------


def to_frame(table: pa.Table) -> pd.DataFrame:
    """Arrow -> pandas, keeping strings, ints and booleans typed when they hold nulls (see `GE_TYPES`)."""
    import pandas as pd
    import pyarrow as pa

    mapping = {
        pa.string(): pd.StringDtype(),
        pa.large_string(): pd.StringDtype(),
        pa.string_view(): pd.StringDtype(),
        pa.int32(): pd.Int32Dtype(),
        pa.int64(): pd.Int64Dtype(),
        pa.bool_(): pd.BooleanDtype(),
    }
    return table.to_pandas(types_mapper=mapping.get)


def bronze_frame(table: pa.Table, locales: Mapping[str, str]) -> pd.DataFrame:
    """A bronze sample as the bronze suites see it: ``locale`` (listing changes) normalized as silver does."""
    from vectorlake.lake.reference import normalize_locale

    frame = to_frame(table)
    if "locale" in frame.columns:
        frame["locale"] = frame["locale"].map(
            lambda v: normalize_locale(v, locales) if isinstance(v, str) else v, na_action="ignore"
        )
    return frame


# --- the lake -----------------------------------------------------------------------------------------


def sample(cfg: Config, path: str, n: int, columns: Sequence[str] | None = None, filter: Any = None) -> Any:
    """Up to ``n`` rows of a Delta table as Arrow, whole data files newest first (None: no table)."""
    import pyarrow as pa

    from vectorlake import control

    opened = control.open_dataset(cfg, path)
    if opened is None:
        return None
    table, dataset = opened
    names = list(columns) if columns is not None else dataset.schema.names
    actions = pa.table(table.get_add_actions(flatten=True))  # delta-rs returns an arro3 table
    newest = {
        str(a["path"]).rsplit("/", 1)[-1]: a["modification_time"]
        for a in actions.select(["path", "modification_time"]).to_pylist()
    }
    fragments = sorted(
        dataset.get_fragments(),
        key=lambda f: str(newest.get(f.path.rsplit("/", 1)[-1], "")),
        reverse=True,
    )
    parts, rows = [], 0
    for fragment in fragments:
        part = fragment.to_table(columns=names, filter=filter, schema=dataset.schema)
        parts.append(part)
        rows += part.num_rows
        if rows >= n:
            break
    if not parts:
        return dataset.schema.empty_table().select(names)
    return pa.concat_tables(parts).slice(0, n)


def registered_dims(cfg: Config, labels: Iterable[str]) -> dict[str, int | None]:
    """The dimension the mlflow registry records for each ``<name>/<version>`` (None: not registered)."""
    from mlflow import MlflowClient
    from mlflow.exceptions import MlflowException

    client = MlflowClient(tracking_uri=cfg.mlflow_tracking_uri, registry_uri=cfg.mlflow_tracking_uri)
    out: dict[str, int | None] = {}
    for label in sorted(set(labels)):
        name, _, version = label.rpartition("/")
        try:
            tag = (client.get_model_version(name, version).tags or {}).get("dim")
        except MlflowException:
            tag = None
        out[label] = int(tag) if tag is not None else None
        if tag is None:
            log.warning("model version %s has no dimension in the registry", label)
    return out


def record(cfg: Config, report: QualityReport) -> None:
    """One row per expectation in control/quality_results (a rerun with the same run id replaces them)."""
    from vectorlake import control

    now = datetime.now(UTC)
    rows = [
        {
            "run_id": report.run_id,
            "suite": s.suite,
            "seq": o.seq,
            "expectation": o.expectation,
            "status": o.status,
            "detail": o.detail,
            "table": s.table,
            "rows": s.rows,
            "checked_at": now,
        }
        for s in report.suites
        for o in s.outcomes
    ]
    if rows:
        control.quality_results_table(cfg).upsert(rows)


def _missing(name: str, table: str, path: str) -> SuiteResult:
    outcome = Outcome(0, "table_exists", "failed", f"no Delta table at {path} (has the stream run?)")
    return SuiteResult(name, table, 0, (outcome,))


def check_embeddings(
    cfg: Config,
    dims: Mapping[str, int | None] | None = None,
    *,
    params: Mapping[str, Any] | None = None,
    per_model_rows: int | None = None,
    context: Any = None,
) -> tuple[SuiteResult, list[drift.Baseline]]:
    """The embeddings suite on gold/embeddings, and the current distribution per model version.

    ``dims``: model version -> dimension; only those versions are checked (the gate passes its
    generation's models), each on up to ``per_model_rows`` rows. None: a sample of every model version,
    with the dimensions from the registry.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    suite = load_suite("embeddings")
    table_name = suite["meta"]["table"]
    path = LakeTables(cfg.lake.root).table(table_name)
    columns = ["listing_id", "modality", "model_version", "dim", "vector"]
    n = cfg.quality.sample_rows
    if dims is None:
        data = sample(cfg, path, n, columns)
        if data is None:
            return _missing("embeddings", table_name, path), []
        dims = registered_dims(cfg, data.column("model_version").to_pylist())
    else:
        parts = []
        for label in sorted(dims):
            part = sample(cfg, path, per_model_rows or n, columns, pc.field("model_version") == label)
            if part is None:
                return _missing("embeddings", table_name, path), []
            parts.append(part)
        data = pa.concat_tables(parts) if parts else None
        if data is None:
            raise QualityError("check_embeddings: no model versions to check")
    frame, current = drift.embedding_frame(data, dims, drift.read_baselines(cfg))
    merged = {**parameters(cfg), **(params or {})}
    outcomes = check_frame(suite, frame, merged, drift.drift_skips(suite, frame), context)
    return SuiteResult("embeddings", table_name, len(frame), tuple(outcomes)), current


def run(
    cfg: Config,
    suites: Sequence[str] | None = None,
    *,
    write_baseline: bool = False,
    run_id: str | None = None,
    dims: Mapping[str, int | None] | None = None,
) -> QualityReport:
    """Run the suites (default: all) on samples of their tables, record the results, optionally store the
    embedding baselines (after the drift check, which compares with the previous ones)."""
    from vectorlake.lake.reference import load_reference

    names = list(dict.fromkeys(suites or SUITES))
    loaded = {name: load_suite(name) for name in names}  # fail on an unknown suite before reading data
    run_id = run_id or f"{datetime.now(UTC):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:6]}"
    params = parameters(cfg)
    context = _context()
    tables = LakeTables(cfg.lake.root)
    locales = load_reference(cfg.reference.categories, cfg.reference.locales).locales
    results: list[SuiteResult] = []
    written: list[str] = []
    for name, suite in loaded.items():
        table_name = str(suite["meta"]["table"])
        kind = suite["meta"]["frame"]
        if kind == "embeddings":
            result, current = check_embeddings(cfg, dims, params=params, context=context)
            results.append(result)
            if write_baseline and current:
                drift.write_baselines(cfg, current)
                written += [f"{b.model_version} ({b.modality}, {b.rows} vectors)" for b in current]
            continue
        path = tables.table(table_name)
        columns = list(LISTING_FRAME_COLUMNS) if kind == "listings" else None
        data = sample(cfg, path, cfg.quality.sample_rows, columns)
        if data is None:
            results.append(_missing(name, table_name, path))
            continue
        frame = bronze_frame(data, locales) if kind == "bronze" else to_frame(data)
        outcomes = check_frame(suite, frame, params, context=context)
        results.append(SuiteResult(name, table_name, len(frame), tuple(outcomes)))
    report = QualityReport(run_id, tuple(results), tuple(written))
    record(cfg, report)
    log.info("%s", report.lines()[-1])
    return report
