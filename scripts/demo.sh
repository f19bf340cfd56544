#!/usr/bin/env bash
# `make demo`: the main job end to end on the local stack. Starts the stack, registers the encoders in
# mlflow, sends a generated catalog through Kafka, streams it once (ingest to silver, then embed and index
# into OpenSearch), starts the query service, and shows counts, a few searches through it with their
# results, and the freshness of the run.
# Library chatter (Spark's JVM log) goes to .vectorlake/logs/spark.log; what is printed is vectorlake's.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=.venv/bin
VL="$BIN/vectorlake"
t0=$SECONDS
"$VL" stack up
echo
echo "==> the encoders in the mlflow registry (alias champion)"
"$VL" models register
echo
landing="$("$BIN/python" -c 'from vectorlake.config import load_config; print(load_config().sources.landing_dir)')"
echo "==> generating a catalog (seed 42) and sending it to Kafka; images and labelled queries in $landing"
"$VL" generate --kafka --listings 500 --events 5000
echo
started="$(date -u +%Y-%m-%dT%H:%M:%S+00:00)"
echo "==> stream once: Kafka -> bronze, quarantine, silver -> embeddings -> OpenSearch"
"$VL" stream --source kafka --once
echo
echo "==> the query service (models loaded once and kept warm; POST /search, OpenAPI page at /docs)"
"$VL" stack up --with serve | grep '^serve '
echo
echo "==> example searches through the query service (score = cosine similarity)"
"$BIN/python" scripts/demo_searches.py "$landing"
serve_url="$("$BIN/python" -c 'from vectorlake.config import load_config; print(load_config().serve_url)')"
echo "--- the same from any HTTP client:"
echo "curl -s $serve_url/search -H 'content-type: application/json' -d '{\"text\": \"steel chair\", \"k\": 3}'"
echo
echo "==> freshness of this run (generated events carry made-up past event times: read the 'received' line)"
"$VL" freshness --since "$started"
echo
echo "==> index generations (a model upgrade: vectorlake reindex, then vectorlake cutover)"
"$VL" generations
echo
echo "==> pipeline status (vectorlake status; Prometheus text: vectorlake metrics [serve])"
"$VL" status
echo
lake="$("$BIN/python" -c 'from vectorlake.config import load_config; print(load_config().lake.root)')"
echo "The lake is in $lake (bronze/, quarantine/, silver/, gold/); the index is behind the alias 'listings'."
echo "The stack stays up, the query service at $serve_url with it; stop them with: make down"
echo "make demo took $((SECONDS - t0)) s"
