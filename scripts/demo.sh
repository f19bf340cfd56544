#!/usr/bin/env bash
# `make demo`: the main job end to end on the local stack. Starts the stack, registers the encoders in
# mlflow, sends a generated catalog through Kafka, streams it once (ingest to silver, then embed and index
# into OpenSearch), and shows counts, a few searches with their results, and the freshness of the run.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=.venv/bin
VL="$BIN/vectorlake"
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
echo "==> example searches (score = cosine similarity)"
mapfile -t queries < <("$BIN/python" -c "
import json, sys
lines = open('$landing/queries.jsonl').read().splitlines()
for line in lines[:3]:
    print(json.loads(line)['query'])
")
for q in "${queries[@]}"; do
  echo "--- text: \"$q\""
  "$VL" search --text "$q" --k 3
done
top="$("$VL" search --text "${queries[0]}" --k 1 --json)"
first="$(echo "$top" | "$BIN/python" -c 'import json,sys; print(json.load(sys.stdin)[0]["listing_id"])')"
category="$(echo "$top" | "$BIN/python" -c 'import json,sys; print(json.load(sys.stdin)[0]["category_id"])')"
echo "--- text: \"${queries[0]}\", only locale en-US and category $category (filters inside the k-NN query)"
"$VL" search --text "${queries[0]}" --locale en-US --category "$category" --k 3
echo "--- more like $first (its fused text+image vector)"
"$VL" search --like "$first" --k 3
image="$(find "$landing/images" -name '*.jpg' | sort | head -n 1 || true)"
echo "--- image: $image"
"$VL" search --image "$image" --k 3
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
echo "The stack stays up; stop it with: make down"
