"""The embedding stage on Spark: model inputs, the content-hash cache, and iterator pandas UDFs.

For each modality the stage takes ``(listing_id, content_hash, input)`` rows, looks the hashes up in
``gold/embeddings`` for the model version in use, and sends only the misses (each distinct hash once) to
the model. The UDFs load their model once per Python worker process (`encoders.load_*` are cached per
process) on the device `device.choose_device` picks: CUDA with fp16 when present, else CPU. The vectors
of the misses are materialized once (a local checkpoint), so a model runs exactly once per miss; `record`
then MERGEs every needed ``(listing, hash)`` pair not yet in ``gold/embeddings``. Images that cannot be
fetched or decoded go to ``gold/embed_dead_letters`` and get no vector.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

import pandas as pd  # at module level: pandas UDFs resolve their type hints in this module's globals

from vectorlake.config import Config
from vectorlake.embed.artifacts import ModelArtifact
from vectorlake.embed.fetch import FetchPolicy
from vectorlake.embed.registry import ModelRef
from vectorlake.lake.conflicts import retry_conflicts
from vectorlake.lake.tables import LakeTables

if TYPE_CHECKING:
    from pyspark.sql import Column, DataFrame, SparkSession

log = logging.getLogger(__name__)

Modality = Literal["text", "image"]


@dataclass(frozen=True)
class EncoderSettings:
    """What a worker needs to load an encoder and fetch images: plain values, so it pickles."""

    path: str  # the model's folder on the driver (local mode: the workers share its file system)
    device: str
    batch_size: int
    overlap: int
    torch_threads: int | None
    fetch: FetchPolicy  # what an image URL may reach (config fetch:)
    artifact: ModelArtifact | None = None  # on a cluster: each executor fetches its own copy by URI

    @classmethod
    def from_config(
        cls, cfg: Config, ref: ModelRef, torch_threads: int | None, on_cluster: bool = False
    ) -> EncoderSettings:
        return cls(
            path=ref.path,
            device=cfg.embed.device,
            batch_size=cfg.embed.batch_size,
            overlap=cfg.embed.chunk_overlap_tokens,
            torch_threads=cfg.embed.torch_threads or torch_threads,
            fetch=FetchPolicy.from_config(cfg),
            artifact=ref.artifact(cfg) if on_cluster else None,
        )

    def task_device(self) -> str:
        """The device for the running task: the GPU Spark assigned it, if any, else `device`."""
        from vectorlake.embed.device import spark_task_resources, task_device

        return task_device(self.device, spark_task_resources())

    def model_path(self) -> str:
        """The model's folder where this worker runs: the driver's in local mode, else its own copy."""
        if self.artifact is None:
            return self.path
        from vectorlake.embed.artifacts import materialize

        return materialize(self.artifact)


@dataclass(frozen=True)
class EmbedCounts:
    modality: str
    needed: int  # (listing, input) pairs the batch needs a vector for
    model_calls: int  # distinct inputs sent to the model (the cache misses)
    failed: int  # inputs that went to the dead-letter table instead


def text_input_column(attribute_keys: tuple[str, ...]) -> Column:
    """The text model input of a silver listing row (see `modelinput.text_input` for the layout)."""
    from pyspark.sql import functions as F
    from pyspark.sql.functions import pandas_udf

    from vectorlake.embed.modelinput import text_input

    keys = attribute_keys

    @pandas_udf("string")  # type: ignore[call-overload,untyped-decorator]
    def model_text(
        title: pd.Series, description: pd.Series, category_path: pd.Series, attributes: pd.Series
    ) -> pd.Series:
        out = [
            text_input(_opt(t), _opt(d), _opt(c), _as_dict(a), keys)
            for t, d, c, a in zip(title, description, category_path, attributes, strict=True)
        ]
        return pd.Series(out, dtype="object")

    return model_text(F.col("title"), F.col("description"), F.col("category_path"), F.col("attributes"))


def _opt(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _as_dict(value: object) -> dict[str, str] | None:
    """A map column as pandas hands it over (a dict, or a list of key/value pairs) as a dict."""
    if value is None:
        return None
    if isinstance(value, dict):
        return {str(k): str(v) for k, v in value.items() if v is not None}
    try:
        return {str(k): str(v) for k, v in value if v is not None}  # type: ignore[attr-defined]
    except TypeError:
        return None


def text_udf(settings: EncoderSettings) -> object:
    import numpy as np
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("array<float>")  # type: ignore[call-overload,untyped-decorator]
    def encode_text(batches: Iterator[pd.Series]) -> Iterator[pd.Series]:
        from vectorlake.embed.encoders import load_text_encoder

        encoder = load_text_encoder(
            settings.model_path(),
            settings.task_device(),
            settings.batch_size,
            settings.overlap,
            settings.torch_threads,
        )
        for texts in batches:
            vectors = encoder.encode([str(t) for t in texts])
            yield pd.Series(list(np.asarray(vectors, dtype=np.float32)), dtype="object")

    return encode_text


def image_udf(settings: EncoderSettings) -> object:
    import numpy as np
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("struct<vector: array<float>, reason: string, detail: string>")  # type: ignore[call-overload,untyped-decorator]
    def encode_image(batches: Iterator[pd.Series]) -> Iterator[pd.DataFrame]:
        from vectorlake.embed.encoders import load_image_encoder
        from vectorlake.embed.fetch import ImageFetchError, fetch_many

        encoder = load_image_encoder(
            settings.model_path(), settings.task_device(), settings.batch_size, settings.torch_threads
        )
        for urls in batches:
            fetched = fetch_many([str(u) for u in urls], settings.fetch)
            good = [i for i, f in enumerate(fetched) if isinstance(f, bytes)]
            vectors: list[object] = [None] * len(fetched)
            reasons: list[str | None] = [None] * len(fetched)
            details: list[str | None] = [None] * len(fetched)
            for i, f in enumerate(fetched):
                if isinstance(f, ImageFetchError):
                    reasons[i], details[i] = f.reason, f.detail
            if good:
                images = [fetched[i] for i in good]
                array, errors = encoder.encode([b for b in images if isinstance(b, bytes)])
                for row, i in enumerate(good):
                    if errors[row] is None:
                        vectors[i] = np.asarray(array[row], dtype=np.float32)
                    else:
                        reason, _, detail = str(errors[row]).partition(": ")
                        reasons[i], details[i] = reason, detail
            yield pd.DataFrame({"vector": vectors, "reason": reasons, "detail": details})

    return encode_image


@dataclass(frozen=True)
class Embedded:
    """One modality's result: the vectors, the counts, and the rows still to record (see `record`)."""

    vectors: DataFrame  # (listing_id, content_hash, vector) of every needed row that has one, materialized
    counts: EmbedCounts
    cache_rows: DataFrame  # gold/embeddings rows of those vectors (inserted where not there yet)
    dead_letters: DataFrame | None  # gold/embed_dead_letters rows (images that failed); None: none


def embed(
    spark: SparkSession,
    needed: DataFrame,
    modality: Modality,
    ref: ModelRef,
    settings: EncoderSettings,
    tables: LakeTables,
    batch_id: int,
    partitions: int,
) -> Embedded:
    """Vectors for `needed` (listing_id, content_hash, input): cached ones reused, misses embedded once.

    gold/embeddings is read once, for the batch's hashes only. Nothing is written here: `record` adds the
    new pairs to gold/embeddings and the failures to gold/embed_dead_letters, once for every modality and
    target of a publish, while the index writes run.
    """
    from pyspark.sql import functions as F

    needed = needed.dropDuplicates(["listing_id", "content_hash"]).localCheckpoint(eager=True)
    cache = (
        _cached_vectors(spark, tables, modality, ref)
        .join(needed.select("content_hash").distinct(), "content_hash", "left_semi")
        .localCheckpoint(eager=True)
    )
    embedded = _embed_misses(needed, cache, modality, settings, partitions)
    fresh, failed = _split_embedded(embedded, modality)
    vectors = (
        needed.join(cache.unionByName(fresh), "content_hash")
        .select("listing_id", "content_hash", "vector")
        .localCheckpoint(eager=True)
    )
    cache_rows = vectors.select(
        "listing_id",
        F.lit(modality).alias("modality"),
        F.lit(ref.label).alias("model_version"),
        "content_hash",
        F.size("vector").alias("dim"),
        "vector",
        F.current_timestamp().alias("embedded_at"),
        F.lit(batch_id).cast("bigint").alias("batch_id"),
    )
    dead = None
    n_failed = 0
    if modality == "image":
        dead = _dead_letters(needed, failed, modality, ref, batch_id).localCheckpoint(eager=True)
        n_failed = dead.count()
    counts = EmbedCounts(modality, needed.count(), embedded.count(), n_failed)
    return Embedded(vectors, counts, cache_rows, dead if n_failed else None)


def record(spark: SparkSession, tables: LakeTables, embedded: Sequence[Embedded]) -> None:
    """Insert the (listing, modality, model version, hash) vectors not yet in gold/embeddings, and the
    failures into gold/embed_dead_letters: one MERGE each, whatever the number of modalities and targets.

    Insert-only on the full key, so running it again is harmless: a reindex and the stream add vectors at
    the same time, and the one that commits second retries on Delta's conflict."""
    from functools import reduce

    from delta.tables import DeltaTable

    def insert_new(path: str, frames: list[DataFrame], key: tuple[str, ...]) -> None:
        rows = reduce(lambda a, b: a.unionByName(b), frames).dropDuplicates(list(key))
        (
            DeltaTable.forPath(spark, path)
            .alias("t")
            .merge(rows.alias("s"), " AND ".join(f"t.{k} = s.{k}" for k in key))
            .whenNotMatchedInsertAll()
            .execute()
        )

    if not embedded:
        return
    key = ("listing_id", "modality", "model_version", "content_hash")
    retry_conflicts(
        lambda: insert_new(tables.embeddings, [e.cache_rows for e in embedded], key),
        f"{tables.embeddings} merge",
    )
    dead = [e.dead_letters for e in embedded if e.dead_letters is not None]
    if dead:
        insert_new(
            tables.embed_dead_letters, dead, ("listing_id", "model_version", "content_hash", "batch_id")
        )


def _cached_vectors(spark: SparkSession, tables: LakeTables, modality: Modality, ref: ModelRef) -> DataFrame:
    """(content_hash, vector) already in gold/embeddings for this modality and model version."""
    from pyspark.sql import functions as F

    return (
        spark.read.format("delta")
        .load(tables.embeddings)
        .filter((F.col("modality") == modality) & (F.col("model_version") == ref.label))
        .select("content_hash", "vector")
        .dropDuplicates(["content_hash"])
    )


def _embed_misses(
    needed: DataFrame, cache: DataFrame, modality: Modality, settings: EncoderSettings, partitions: int
) -> DataFrame:
    """(content_hash, input, out) for each distinct input not in ``cache``: the model output, materialized."""
    from pyspark.sql import functions as F

    misses = needed.select("content_hash", "input").dropDuplicates(["content_hash"])
    misses = misses.join(cache.select("content_hash"), "content_hash", "left_anti")
    udf = text_udf(settings) if modality == "text" else image_udf(settings)
    return (
        misses.repartition(partitions)
        .select("content_hash", "input", udf(F.col("input")).alias("out"))  # type: ignore[operator]
        .localCheckpoint(eager=True)  # the model runs here, once per miss
    )


def _split_embedded(embedded: DataFrame, modality: Modality) -> tuple[DataFrame, DataFrame]:
    """The new (content_hash, vector) rows, and the (content_hash, input, reason, detail) failures."""
    from pyspark.sql import functions as F

    if modality == "text":
        fresh = embedded.select("content_hash", F.col("out").alias("vector"))
        failed = embedded.limit(0).select(
            "content_hash", "input", F.lit(None).cast("string").alias("reason"), F.lit(None).alias("detail")
        )
    else:
        fresh = embedded.filter(F.col("out.reason").isNull()).select(
            "content_hash", F.col("out.vector").alias("vector")
        )
        failed = embedded.filter(F.col("out.reason").isNotNull()).select(
            "content_hash", "input", F.col("out.reason").alias("reason"), F.col("out.detail").alias("detail")
        )
    return fresh, failed


def _dead_letters(
    needed: DataFrame, failed: DataFrame, modality: Modality, ref: ModelRef, batch_id: int
) -> DataFrame:
    """gold/embed_dead_letters rows: each needed (listing, input) whose input failed."""
    from pyspark.sql import functions as F

    return needed.join(failed.select("content_hash", "reason", "detail"), "content_hash").select(
        "listing_id",
        F.lit(modality).alias("modality"),
        F.lit(ref.label).alias("model_version"),
        "content_hash",
        "input",
        "reason",
        "detail",
        F.lit(batch_id).cast("bigint").alias("batch_id"),
        F.current_timestamp().alias("recorded_at"),
    )
