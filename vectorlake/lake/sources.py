"""Event sources as streaming DataFrames of raw records (`vectorlake.contracts.RAW_COLUMNS`).

Both sources end in the same four columns, after which they share one code path:
``kind`` (listing_changes | media | seller_policy), ``value`` (the record's bytes), ``source`` (where it
came from: ``kafka:<topic>/<partition>@<offset>`` or the landing file's URI) and ``received_at`` (the
micro-batch time, which Spark keeps fixed when it replays a batch).

The landing folder has one sub-folder per kind of JSON-lines files; files whose names start with ``.`` or
``_`` are ignored (writers rename a finished file into place), and so are blank lines.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from vectorlake import contracts
from vectorlake.config import Config

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession


def read_landing(spark: SparkSession, cfg: Config, landing_dir: str | None = None) -> DataFrame:
    """The landing folder's three kinds as one stream of raw records."""
    from pyspark.sql import functions as F

    root = (landing_dir or cfg.sources.landing_dir).rstrip("/")
    streams = []
    for kind in contracts.KINDS:
        path = f"{root}/{kind}"
        if "://" not in path:
            Path(path).mkdir(parents=True, exist_ok=True)  # a stream over a missing folder cannot start
        reader = spark.readStream.format("text").option("pathGlobFilter", "*.jsonl")
        if cfg.sources.max_files_per_trigger:
            reader = reader.option("maxFilesPerTrigger", cfg.sources.max_files_per_trigger)
        lines = reader.load(path).where(F.length(F.trim("value")) > 0)
        streams.append(
            lines.select(
                F.lit(kind).alias("kind"),
                F.col("value").cast("binary").alias("value"),
                F.col("_metadata.file_path").alias("source"),
                F.current_timestamp().alias("received_at"),
            )
        )
    out = streams[0]
    for s in streams[1:]:
        out = out.unionByName(s)
    return out


def kafka_options(cfg: Config) -> dict[str, str]:
    """Options of the Kafka source (pure: tested without a broker)."""
    topics = cfg.sources.topics
    opts = {
        "kafka.bootstrap.servers": cfg.kafka_bootstrap_servers,
        "subscribe": ",".join((topics.listing_changes, topics.media, topics.seller_policy)),
        "startingOffsets": cfg.sources.starting_offsets,
        "failOnDataLoss": str(cfg.sources.fail_on_data_loss).lower(),
        "kafka.security.protocol": cfg.kafka.security_protocol,
    }
    if cfg.kafka.sasl_mechanism:
        opts["kafka.sasl.mechanism"] = cfg.kafka.sasl_mechanism
    if cfg.kafka.auth == "iam":  # MSK IAM: the client signs with the job's AWS credentials (default chain)
        opts |= {
            "kafka.sasl.mechanism": "AWS_MSK_IAM",
            "kafka.sasl.jaas.config": "software.amazon.msk.auth.iam.IAMLoginModule required;",
            "kafka.sasl.client.callback.handler.class": (
                "software.amazon.msk.auth.iam.IAMClientCallbackHandler"
            ),
        }
    if cfg.sources.max_offsets_per_trigger:
        opts["maxOffsetsPerTrigger"] = str(cfg.sources.max_offsets_per_trigger)
    return opts


def read_kafka(spark: SparkSession, cfg: Config) -> DataFrame:
    """The three Kafka topics as one stream of raw records."""
    from pyspark.sql import functions as F

    topics = cfg.sources.topics
    kind = F.when(F.col("topic") == topics.listing_changes, "listing_changes").when(
        F.col("topic") == topics.media, "media"
    )
    kind = kind.when(F.col("topic") == topics.seller_policy, "seller_policy").otherwise(F.col("topic"))
    reader = spark.readStream.format("kafka")
    for key, value in kafka_options(cfg).items():
        reader = reader.option(key, value)
    return reader.load().select(
        kind.alias("kind"),
        F.coalesce(F.col("value"), F.lit(b"")).alias("value"),
        F.format_string("kafka:%s/%d@%d", "topic", "partition", "offset").alias("source"),
        F.current_timestamp().alias("received_at"),
    )


def ensure_topics(cfg: Config, timeout_s: float = 30.0) -> None:
    """On the local stack, create any of the three topics that is missing (``kafka.partitions`` partitions
    each). Elsewhere topics are the platform's (replication, retention, ACLs): nothing is created."""
    if not cfg.stack.local:
        return
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    from vectorlake.errors import VectorlakeError

    topics = cfg.sources.topics
    wanted = [topics.listing_changes, topics.media, topics.seller_policy]
    admin = AdminClient({"bootstrap.servers": cfg.kafka_bootstrap_servers, "log_level": 3})  # errors only
    try:
        existing = set(admin.list_topics(timeout=timeout_s).topics)
        missing = [t for t in wanted if t not in existing]
        if missing:
            futures = admin.create_topics(
                [NewTopic(t, num_partitions=cfg.kafka.partitions, replication_factor=1) for t in missing]
            )
            for future in futures.values():
                try:
                    future.result(timeout=timeout_s)
                except KafkaException as e:
                    if "TOPIC_ALREADY_EXISTS" not in str(e):
                        raise
    except KafkaException as e:
        raise VectorlakeError(
            f"cannot create Kafka topics {wanted} at {cfg.kafka_bootstrap_servers}: {e}; is the broker up "
            f"(`vectorlake stack status`)?"
        ) from e
