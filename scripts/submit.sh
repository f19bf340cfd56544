#!/usr/bin/env bash
# spark-submit a job with the project's Python and the jars `make setup` cached (Delta, Kafka source).
#
#   scripts/submit.sh jobs/stream_listings.py --source files --once
#
# The jars must be on the command line: a driver started by spark-submit cannot load jars named only in
# the session's config. On a cluster, pass the cluster's own --jars/--packages to spark-submit instead.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
export PATH="$root/.venv/bin:$PATH"
export PYSPARK_PYTHON="$root/.venv/bin/python" PYSPARK_DRIVER_PYTHON="$root/.venv/bin/python"
jars_dir="${VECTORLAKE__SPARK__JARS_DIR:-$root/.vectorlake/jars/spark}"
if ! ls "$jars_dir"/*.jar >/dev/null 2>&1; then
  echo "submit: no jars in $jars_dir; run \`make setup\` first" >&2
  exit 1
fi
jars="$(ls "$jars_dir"/*.jar | paste -sd, -)"
exec spark-submit --jars "$jars" "$@"
