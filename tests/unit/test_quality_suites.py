"""The great-expectations suites in expectations/: they load, agree with the contract, pass on good frames
and fail, naming the expectation, on each kind of bad data (no lake, no servers)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pyarrow as pa
import pytest

from vectorlake import contracts
from vectorlake.config import load_config
from vectorlake.lake import tables as lake_tables
from vectorlake.lake.reference import load_reference
from vectorlake.ops import drift, quality

DIM = 8
MODEL = "vectorlake-text-encoder/3"


@pytest.fixture(scope="module")
def params() -> dict[str, Any]:
    return quality.parameters(load_config())


@pytest.fixture(scope="module")
def context() -> Any:
    return quality._context()


def _check(name: str, frame: Any, params: dict[str, Any], context: Any, **kw: Any) -> dict[str, str]:
    outcomes = quality.check_frame(quality.load_suite(name), frame, params, context=context, **kw)
    return {o.expectation: o.status for o in outcomes}


def _failed(statuses: dict[str, str]) -> set[str]:
    return {name for name, status in statuses.items() if status == "failed"}


# --- suites and contract --------------------------------------------------------------------------------


def test_every_suite_loads_and_its_schema_check_is_the_contract() -> None:
    schemas = lake_tables.schemas(lake_tables.LakeTables("/lake"))
    for name in quality.SUITES:
        suite = quality.load_suite(name)
        assert suite["name"] == name and suite["expectations"]
        assert suite["meta"]["frame"] in ("bronze", "listings", "embeddings")
    for kind in contracts.KINDS:
        columns, _ = schemas[lake_tables.LakeTables("/lake").bronze(kind)]
        suite = quality.load_suite(f"bronze_{kind}")
        schema = [e for e in suite["expectations"] if e["type"] == "expect_table_columns_to_match_set"]
        assert schema[0]["kwargs"]["column_set"] == list(columns)
        types = {
            e["kwargs"]["column"]: e["kwargs"]["type_"]
            for e in suite["expectations"]
            if e["type"] == "expect_column_values_to_be_of_type"
        }
        assert types == {c: quality.ge_type(t) for c, t in columns.items()}
    with pytest.raises(quality.QualityError, match="unknown suite 'gold'"):
        quality.load_suite("gold")


def test_value_sets_come_from_the_contract_and_the_reference_data(params: dict[str, Any]) -> None:
    cfg = load_config()
    ref = load_reference(cfg.reference.categories, cfg.reference.locales)
    assert params["listing_changes_ops"] == ["UPSERT", "DELETE"] and params["media_ops"] == [
        "ADDED",
        "REMOVED",
    ]
    assert params["statuses"] == list(contracts.STATUSES)
    assert set(params["locales"]) == set(ref.locales.values()) and "en-US" in params["locales"]
    assert set(params["categories"]) == set(ref.category_paths)
    from vectorlake import generate

    assert set(generate._TAXONOMY) <= set(params["categories"])  # what the generator files listings under


# --- bronze ---------------------------------------------------------------------------------------------


def _bronze(n: int = 20, **changes: Any) -> pa.Table:
    columns, _ = lake_tables.schemas(lake_tables.LakeTables("/lake"))[
        lake_tables.LakeTables("/lake").bronze("listing_changes")
    ]
    import pandas as pd

    ts = pd.Timestamp("2026-11-01T00:00:00Z")
    rows = [
        {
            "event_id": f"e{i}",
            "listing_id": f"L{i % 7}",
            "event_ts": ts,
            "event_ts_ms": 1_800_000_000_000 + i,
            "op": "DELETE" if i % 5 == 0 else "UPSERT",
            "title": f"title {i}" if i % 3 == 0 else None,
            "description": None,
            "attributes": [("brand", "acme")] if i % 2 else None,
            "image_ids": ["img1"] if i % 4 == 0 else None,
            "seller_id": "S1",
            "locale": ("en_US", "de-de", "fr_FR", None)[i % 4],
            "category_id": "cat-sports-balls",
            "source": "files",
            "received_at": ts,
        }
        for i in range(n)
    ]
    for i, row in enumerate(rows):
        for column, value in changes.items():
            if callable(value):
                row[column] = value(i, row[column])
    schema = pa.schema(
        [
            pa.field(c, pa.map_(pa.string(), pa.string()))
            if t.startswith("map")
            else pa.field(c, pa.list_(pa.string()))
            if t.startswith("array")
            else pa.field(
                c, {"string": pa.string(), "bigint": pa.int64()}.get(t, pa.timestamp("us", tz="UTC"))
            )
            for c, t in columns.items()
        ]
    )
    return pa.Table.from_pylist(rows, schema=schema)


def test_bronze_suite_passes_on_good_events(params: dict[str, Any], context: Any) -> None:
    locales = load_reference(load_config().reference.categories, load_config().reference.locales).locales
    statuses = _check("bronze_listing_changes", quality.bronze_frame(_bronze(), locales), params, context)
    assert _failed(statuses) == set() and len(statuses) > 20


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (lambda t: t.drop_columns(["seller_id"]), "expect_table_columns_to_match_set"),
        (
            lambda t: t.rename_columns([("locale_code" if c == "locale" else c) for c in t.column_names]),
            "expect_table_columns_to_match_set",
        ),
        (
            lambda t: t.set_column(
                t.schema.get_field_index("event_ts_ms"),
                "event_ts_ms",
                pa.array([str(i) for i in range(t.num_rows)]),
            ),
            "expect_column_values_to_be_of_type(event_ts_ms)",
        ),
    ],
    ids=["dropped-column", "renamed-column", "retyped-column"],
)
def test_bronze_suite_catches_schema_drift(
    bad: Any, expected: str, params: dict[str, Any], context: Any
) -> None:
    statuses = _check("bronze_listing_changes", quality.bronze_frame(bad(_bronze()), {}), params, context)
    assert expected in _failed(statuses)


def test_bronze_suite_catches_a_null_explosion_an_unknown_op_and_a_bad_locale(
    params: dict[str, Any], context: Any
) -> None:
    locales = load_reference(load_config().reference.categories, load_config().reference.locales).locales
    nulls = _bronze(listing_id=lambda i, v: None if i % 2 else v)
    assert _failed(
        _check("bronze_listing_changes", quality.bronze_frame(nulls, locales), params, context)
    ) == {"expect_column_values_to_not_be_null(listing_id)"}
    ops = _bronze(op=lambda i, v: "MERGE" if i == 3 else v, locale=lambda i, v: "xx_YY" if i == 2 else v)
    assert _failed(_check("bronze_listing_changes", quality.bronze_frame(ops, locales), params, context)) == {
        "expect_column_values_to_be_in_set(op)",
        "expect_column_values_to_be_in_set(locale)",
    }


# --- silver ---------------------------------------------------------------------------------------------


def _listings(n: int = 30) -> Any:
    import pandas as pd

    frame = pd.DataFrame(
        {
            "listing_id": [f"L{i}" for i in range(n)],
            "live": [i % 10 != 0 for i in range(n)],
            "served": [i % 10 != 0 for i in range(n)],
            "version": list(range(1, n + 1)),
            "title": [f"t{i}" if i % 10 else None for i in range(n)],
            "seller_id": ["S1"] * n,
            "locale": [("en-US", "de-DE", "ja-JP")[i % 3] if i % 10 else None for i in range(n)],
            "category_id": ["cat-sports-balls" if i != 7 else "cat-unknown-123" for i in range(n)],
            "policy_status": ["ACTIVE"] * n,
        }
    )
    return quality.to_frame(pa.Table.from_pandas(frame, preserve_index=False))


def test_silver_suite_passes_on_good_listings(params: dict[str, Any], context: Any) -> None:
    statuses = _check("silver_listings", _listings(), params, context)
    assert _failed(statuses) == set()


def test_silver_suite_catches_a_duplicate_id_and_an_unknown_locale(
    params: dict[str, Any], context: Any
) -> None:
    frame = _listings()
    frame.loc[3, "listing_id"] = "L4"
    frame.loc[5, "locale"] = "en_US"  # not normalized: silver would have written en-US
    assert _failed(_check("silver_listings", frame, params, context)) == {
        "expect_column_values_to_be_unique(listing_id)",
        "expect_column_values_to_be_in_set(locale)",
    }


def test_silver_suite_catches_missing_fields_and_unknown_categories_beyond_mostly(
    params: dict[str, Any], context: Any
) -> None:
    frame = _listings()
    frame.loc[1:6, "title"] = None  # 6 of 27 served listings: more than 1 - field_mostly
    frame.loc[1:9, "category_id"] = "cat-unknown-9"
    assert _failed(_check("silver_listings", frame, params, context)) == {
        "expect_column_values_to_not_be_null(title)",
        "expect_column_values_to_be_in_set(category_id)",
    }


# --- embeddings -----------------------------------------------------------------------------------------


def _unit(rng: np.random.Generator, n: int, centre: np.ndarray) -> np.ndarray:
    v = centre + 0.3 * rng.normal(size=(n, DIM))
    unit: np.ndarray = v / np.linalg.norm(v, axis=1, keepdims=True)
    return unit


def _embeddings(vectors: list[Any], dims: list[int] | None = None) -> pa.Table:
    return pa.table(
        {
            "listing_id": [f"L{i}" for i in range(len(vectors))],
            "modality": ["text"] * len(vectors),
            "model_version": [MODEL] * len(vectors),
            "dim": pa.array(dims or [len(v) if v is not None else DIM for v in vectors], pa.int32()),
            "vector": pa.array(
                [None if v is None else [float(x) for x in v] for v in vectors], pa.list_(pa.float32())
            ),
        }
    )


def _embedding_check(table: pa.Table, baselines: dict[Any, Any], params: Any, context: Any) -> dict[str, str]:
    frame, _ = drift.embedding_frame(table, {MODEL: DIM}, baselines)
    suite = quality.load_suite("embeddings")
    outcomes = quality.check_frame(suite, frame, params, drift.drift_skips(suite, frame), context)
    return {o.expectation: o.status for o in outcomes}


def test_vector_stats_are_computed_per_row() -> None:
    stats = drift.vector_stats(
        pa.array([[3.0, 4.0], None, [float("nan"), 1.0], [1.0]], pa.list_(pa.float32()))
    )
    assert stats.vector_dim[0] == 2 and math.isnan(stats.vector_dim[1]) and stats.vector_dim[3] == 1
    assert stats.norm[0] == pytest.approx(5.0) and stats.norm[2] == pytest.approx(1.0)
    assert list(stats.has_nan) == [False, False, True, False]


def test_embeddings_suite_passes_on_unit_vectors_and_says_drift_is_skipped_without_baseline(
    params: dict[str, Any], context: Any
) -> None:
    rng = np.random.default_rng(1)
    good = _embeddings(list(_unit(rng, 50, np.eye(DIM)[0])))
    statuses = _embedding_check(good, {}, params, context)
    assert _failed(statuses) == set()
    assert statuses["expect_column_values_to_be_between(mean_shift)"] == "skipped"
    frame, current = drift.embedding_frame(good, {MODEL: DIM}, {})
    suite = quality.load_suite("embeddings")
    assert "no baseline for vectorlake-text-encoder/3" in next(iter(drift.drift_skips(suite, frame).values()))
    baseline = current[0]
    assert (baseline.model_version, baseline.dim, baseline.rows) == (MODEL, DIM, 50)
    statuses = _embedding_check(good, {(MODEL, "text"): baseline}, params, context)
    assert statuses["expect_column_values_to_be_between(mean_shift)"] == "passed"


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        (
            lambda v: [*v[:-1], np.append(v[-1], 0.0)],
            "expect_column_pair_values_to_be_equal(vector_dim, model_dim)",
        ),
        (
            lambda v: [*v[:-1], np.where(np.arange(DIM) == 0, np.nan, v[-1])],
            "expect_column_values_to_be_in_set(has_nan)",
        ),
        (lambda v: [*v[:-1], v[-1] * 1.5], "expect_column_values_to_be_between(norm)"),
        (lambda v: [*v[:-1], None], "expect_column_values_to_not_be_null(vector_dim)"),
    ],
    ids=["wrong-dimension", "nan", "non-unit-norm", "no-vector"],
)
def test_embeddings_suite_catches_each_bad_vector(
    bad: Any, expected: str, params: dict[str, Any], context: Any
) -> None:
    rng = np.random.default_rng(2)
    statuses = _embedding_check(_embeddings(bad(list(_unit(rng, 20, np.eye(DIM)[0])))), {}, params, context)
    assert expected in _failed(statuses)


def test_embeddings_suite_catches_a_wrong_stored_dim(params: dict[str, Any], context: Any) -> None:
    rng = np.random.default_rng(3)
    vectors = list(_unit(rng, 10, np.eye(DIM)[0]))
    statuses = _embedding_check(_embeddings(vectors, [DIM] * 9 + [DIM + 1]), {}, params, context)
    assert _failed(statuses) == {"expect_column_pair_values_to_be_equal(dim, vector_dim)"}


def test_embeddings_suite_catches_a_drifted_distribution(params: dict[str, Any], context: Any) -> None:
    rng = np.random.default_rng(4)
    before = drift.baseline_of(MODEL, "text", _unit(rng, 400, np.eye(DIM)[0]))
    same = _embedding_check(
        _embeddings(list(_unit(rng, 400, np.eye(DIM)[0]))), {(MODEL, "text"): before}, params, context
    )
    assert _failed(same) == set()
    moved = _unit(rng, 400, 0.6 * np.eye(DIM)[0] + 0.8 * np.eye(DIM)[1])
    drifted = _embedding_check(_embeddings(list(moved)), {(MODEL, "text"): before}, params, context)
    assert _failed(drifted) == {"expect_column_values_to_be_between(mean_shift)"}
    assert drift.mean_shift(moved, before) > params["max_mean_shift"]


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("KEY_MOSTLY", "1.5", "quality.key_mostly: expected a share in (0, 1], got 1.5"),
        ("SAMPLE_ROWS", "0", "quality.sample_rows: expected a positive integer, got 0"),
        ("MAX_MEAN_SHIFT", "-1", "quality.max_mean_shift: expected a positive number, got -1.0"),
        ("SAMPLE_ROWS", "many", "VECTORLAKE__QUALITY__SAMPLE_ROWS: expected an integer, got 'many'"),
        ("THRESHOLD", "1", "unknown config key 'quality.threshold'"),
    ],
)
def test_a_bad_quality_setting_is_a_one_line_config_error(key: str, value: str, message: str) -> None:
    import os

    from vectorlake.errors import ConfigError

    with pytest.raises(ConfigError) as e:
        load_config(environ={**os.environ, f"VECTORLAKE__QUALITY__{key}": value})
    assert message in str(e.value) and "\n" not in str(e.value)
    assert load_config().quality.max_mean_shift == 0.1  # conf/base.yaml's section loads
