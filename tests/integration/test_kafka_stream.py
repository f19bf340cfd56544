from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from vectorlake.config import Config


def test_structured_streaming_reads_a_kafka_topic_into_delta(
    spark: Any, cfg: Config, tmp_path: Path, unique_name: str
) -> None:
    from confluent_kafka import Producer
    from confluent_kafka.admin import AdminClient, NewTopic

    topic = unique_name
    admin = AdminClient({"bootstrap.servers": cfg.kafka_bootstrap_servers})
    admin.create_topics([NewTopic(topic, num_partitions=2, replication_factor=1)])[topic].result(timeout=30)
    try:
        sent = {f"k{i}": {"listing_id": f"L{i}", "n": i} for i in range(50)}
        producer = Producer({"bootstrap.servers": cfg.kafka_bootstrap_servers, "enable.idempotence": True})
        for key, value in sent.items():
            producer.produce(topic, key=key, value=json.dumps(value))
        assert producer.flush(30) == 0

        table = str(tmp_path / "bronze")
        query = (
            spark.readStream.format("kafka")
            .option("kafka.bootstrap.servers", cfg.kafka_bootstrap_servers)
            .option("subscribe", topic)
            .option("startingOffsets", "earliest")
            .load()
            .selectExpr("CAST(key AS STRING) AS key", "CAST(value AS STRING) AS value", "partition", "offset")
            .writeStream.format("delta")
            .option("checkpointLocation", str(tmp_path / "checkpoint"))
            .trigger(availableNow=True)
            .start(table)
        )
        query.awaitTermination(180)
        assert query.exception() is None
        rows = spark.read.format("delta").load(table).collect()
        got = {r["key"]: json.loads(r["value"]) for r in rows}
        assert got == sent
        assert len(rows) == len(sent)  # no duplicates
        assert {r["partition"] for r in rows} == {0, 1}
    finally:
        admin.delete_topics([topic])[topic].result(timeout=30)
