#!/usr/bin/env bash
# spark-submit a job the way `vectorlake submit` does (master, deploy mode, memory, the executors' Python,
# jars or packages and the s3a class path from config), for scripts that name the job's file:
#
#   scripts/submit.sh jobs/stream_listings.py --source files --once
#   scripts/submit.sh --master spark://127.0.0.1:7077 jobs/reindex.py --no-validate
#
# is `vectorlake submit [--master M] [--deploy-mode D] [--print] JOB [ARGS...]` (JOB: stream, reindex,
# backfill, purge or jobs/<name>.py). A job spark-submit started keeps spark-submit's master and memory.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
if [ ! -x "$root/.venv/bin/vectorlake" ]; then
  echo "submit: no $root/.venv; run \`make setup\` first" >&2
  exit 1
fi
exec "$root/.venv/bin/vectorlake" submit "$@"
