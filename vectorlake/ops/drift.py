"""Embedding drift: per-vector statistics, each model version's distribution and its shift from a baseline.

    frame, current = embedding_frame(table, dims, read_baselines(cfg))   # the embeddings suite's frame
    skips = drift_skips(suite, frame)          # drift expectations to report as skipped, with why
    write_baselines(cfg, current)              # `vectorlake quality --write-baseline`

Everything is computed in numpy from a sample of gold/embeddings (Arrow): ``vector_dim``, ``norm`` and
``has_nan`` per row (`vector_stats`), and per (model version, modality) a `Baseline` (mean vector, mean
norm, spread) and ``mean_shift``, the L2 distance of the sample's mean vector from the stored baseline's.
Baselines live in control/quality_baselines, one row per model version and modality. The embeddings suite
that judges these columns is run by `vectorlake.ops.quality`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from vectorlake.config import Config

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd
    import pyarrow as pa


# --- statistics ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Baseline:
    """The embedding distribution of one model version, as stored in control/quality_baselines."""

    model_version: str
    modality: str
    mean: tuple[float, ...]
    rows: int
    mean_norm: float = 0.0
    spread: float = 0.0

    @property
    def dim(self) -> int:
        return len(self.mean)


@dataclass(frozen=True)
class VectorStats:
    """Per-row derived columns of a sample of vectors, and the flat values to compute means from."""

    vector_dim: np.ndarray  # float, NaN where the vector is null
    norm: np.ndarray  # float (NaN components count as 0; has_nan says so), NaN where the vector is null
    has_nan: np.ndarray  # bool
    starts: np.ndarray  # offset of each row's first component in `flat`
    flat: np.ndarray  # float32, every component of every non-null vector


def vector_stats(vectors: pa.Array | pa.ChunkedArray) -> VectorStats:
    """Dimension, norm and NaN flag of each vector of an Arrow list array, computed in numpy."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc

    array = vectors.combine_chunks() if isinstance(vectors, pa.ChunkedArray) else vectors
    n = len(array)
    lengths = pc.list_value_length(array).to_numpy(zero_copy_only=False).astype(np.float64)
    counts = np.nan_to_num(lengths, nan=0.0).astype(np.int64)
    flat = pc.list_flatten(array).to_numpy(zero_copy_only=False).astype(np.float32)
    row: np.ndarray = np.repeat(np.arange(n), counts)
    squares = np.bincount(row, weights=np.nan_to_num(flat).astype(np.float64) ** 2, minlength=n)
    nans = np.bincount(row, weights=np.isnan(flat).astype(np.float64), minlength=n) > 0
    norm = np.where(np.isnan(lengths), np.nan, np.sqrt(squares))
    starts = np.cumsum(counts) - counts
    return VectorStats(lengths, norm, nans, starts, flat)


def _matrix(stats: VectorStats, rows: np.ndarray, dim: int) -> np.ndarray:
    import numpy as np

    if not len(rows):
        return np.zeros((0, dim), dtype=np.float64)
    index = stats.starts[rows][:, None] + np.arange(dim)[None, :]
    matrix: np.ndarray = stats.flat[index].astype(np.float64)
    return matrix


def _usable(stats: VectorStats, rows: np.ndarray, dim: int) -> np.ndarray:
    """The rows (of ``rows``) whose vector has ``dim`` components and no NaN: what means are taken over."""
    usable: np.ndarray = rows[(stats.vector_dim[rows] == dim) & ~stats.has_nan[rows]]
    return usable


def baseline_of(model_version: str, modality: str, vectors: np.ndarray) -> Baseline:
    """The distribution statistics of a (rows x dim) matrix of one model version's vectors."""
    import numpy as np

    mean = vectors.mean(axis=0)
    spread = float(np.linalg.norm(vectors - mean, axis=1).mean()) if len(vectors) else 0.0
    return Baseline(
        model_version,
        modality,
        tuple(float(x) for x in mean),
        len(vectors),
        float(np.linalg.norm(mean)),
        spread,
    )


def mean_shift(vectors: np.ndarray, baseline: Baseline) -> float:
    """L2 distance between the mean of ``vectors`` and the baseline's mean vector (unit vectors: 0..2)."""
    import numpy as np

    return float(np.linalg.norm(vectors.mean(axis=0) - np.asarray(baseline.mean)))


def embedding_frame(
    table: pa.Table,
    dims: Mapping[str, int | None],
    baselines: Mapping[tuple[str, str], Baseline],
) -> tuple[pd.DataFrame, list[Baseline]]:
    """gold/embeddings rows (listing_id, modality, model_version, dim, vector) -> the embeddings suite's
    frame, and the current distribution of each (model version, modality) (for `write_baselines`).

    ``dims``: the registry's dimension of each model version (None: unknown, the dimension check fails).
    ``mean_shift`` is null for a model version without a baseline of its dimension.
    """
    import numpy as np
    import pandas as pd

    stats = vector_stats(table.column("vector"))
    labels = np.asarray(table.column("model_version").to_pylist(), dtype=object)
    modalities = np.asarray(table.column("modality").to_pylist(), dtype=object)
    model_dim = np.array([_float(dims.get(str(v))) for v in labels], dtype=np.float64)
    shift = np.full(len(labels), np.nan)
    current = []
    for label, modality in sorted({(str(a), str(b)) for a, b in zip(labels, modalities, strict=True)}):
        rows = np.flatnonzero((labels == label) & (modalities == modality))
        dim = dims.get(label)
        if dim is None:
            continue
        usable = _matrix(stats, _usable(stats, rows, dim), dim)
        if not len(usable):
            continue
        current.append(baseline_of(label, modality, usable))
        base = baselines.get((label, modality))
        if base is not None and base.dim == dim:
            shift[rows] = mean_shift(usable, base)
    frame = pd.DataFrame(
        {
            "listing_id": table.column("listing_id").to_pylist(),
            "modality": modalities,
            "model_version": labels,
            "dim": np.array([_float(d) for d in table.column("dim").to_pylist()], dtype=np.float64),
            "vector_dim": stats.vector_dim,
            "model_dim": model_dim,
            "norm": stats.norm,
            "has_nan": stats.has_nan,
            "mean_shift": shift,
        }
    )
    return frame, current


def _float(value: Any) -> float:
    return math.nan if value is None else float(value)


def drift_skips(suite: Mapping[str, Any], frame: pd.DataFrame) -> dict[int, str]:
    """The drift expectations to skip, with why: no model version in the sample has a baseline."""
    with_baseline = set(frame.loc[frame["mean_shift"].notna(), "model_version"])
    without = sorted(set(frame["model_version"]) - with_baseline)
    if with_baseline or frame.empty:
        return {}
    reason = (
        f"no baseline for {', '.join(without)}: run `vectorlake quality --write-baseline`"
        if without
        else "no vectors"
    )
    return {
        seq: reason for seq, e in enumerate(suite["expectations"]) if e.get("meta", {}).get("needs_baseline")
    }


# --- storage ------------------------------------------------------------------------------------------


def read_baselines(cfg: Config) -> dict[tuple[str, str], Baseline]:
    """The stored baseline of each (model version, modality)."""
    from vectorlake import control

    out = {}
    for r in control.quality_baselines_table(cfg).rows():
        out[(r["model_version"], r["modality"])] = Baseline(
            r["model_version"],
            r["modality"],
            tuple(float(x) for x in json.loads(r["mean"])),
            int(r["rows"]),
            float(r["mean_norm"]),
            float(r["spread"]),
        )
    return out


def write_baselines(cfg: Config, baselines: Sequence[Baseline]) -> None:
    """Store (replace) the baseline of each model version and modality."""
    from vectorlake import control

    now = datetime.now(UTC)
    control.quality_baselines_table(cfg).upsert(
        [
            {
                "model_version": b.model_version,
                "modality": b.modality,
                "dim": b.dim,
                "rows": b.rows,
                "mean": json.dumps([round(x, 7) for x in b.mean]),
                "mean_norm": b.mean_norm,
                "spread": b.spread,
                "written_at": now,
            }
            for b in baselines
        ]
    )
