#!/usr/bin/env bash
# Spark's GPU discovery script (spark.executor.resource.gpu.discoveryScript, conf/prod.yaml): prints the
# GPUs of this node as the JSON Spark expects, {"name": "gpu", "addresses": ["0", "1", ...]}. Spark then
# hands each embedding task its own GPU (vectorlake.embed.device.task_device): no two workers share GPU 0.
set -euo pipefail
addresses="$(nvidia-smi --query-gpu=index --format=csv,noheader | tr -d ' ' | sed '/^$/d' \
  | sed 's/.*/"&"/' | paste -sd, -)"
echo "{\"name\": \"gpu\", \"addresses\": [${addresses}]}"
