#!/usr/bin/env bash
# `make demo`: bring the local stack up, send a generated catalog through Kafka and run the ingest stream
# over it (bronze, quarantine, silver). Embedding, indexing and search join with their issues.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=.venv/bin
"$BIN/vectorlake" stack up
echo
echo "==> generating a catalog (seed 42) and sending it to Kafka"
"$BIN/vectorlake" generate --kafka --listings 500 --events 5000
echo
echo "==> ingest: Kafka -> bronze, quarantine, silver (processes what is there, then returns)"
"$BIN/vectorlake" stream --source kafka --once
echo
lake="$("$BIN/python" -c 'from vectorlake.config import load_config; print(load_config().lake.root)')"
echo "The lake is in $lake (bronze/, quarantine/, silver/). The stack stays up; stop it with: make down"
