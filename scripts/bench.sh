#!/usr/bin/env bash
# `make bench`: run every bench/bench_*.py; each prints its ratios and writes bench/results/<name>.json.
# Any failure fails the run, except bench_embed_gpu.py exiting 2 (no CUDA here): that is reported as skipped.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
shopt -s nullglob
benches=(bench/bench_*.py)
if [ ${#benches[@]} -eq 0 ]; then
  echo "bench: no benchmarks in bench/ yet"
  exit 0
fi
# the sink, freshness and ingest benches need the local servers (a no-op for those already up)
.venv/bin/vectorlake stack up
err=$(mktemp)
trap 'rm -f "$err"' EXIT
for b in "${benches[@]}"; do
  echo "==> $b"
  if [ "$b" != bench/bench_embed_gpu.py ]; then
    .venv/bin/python "$b"  # set -e: a failure stops the run
    continue
  fi
  rc=0
  .venv/bin/python "$b" 2>"$err" || rc=$?  # its stderr is kept to quote the reason of a skip
  if [ "$rc" -eq 2 ]; then
    echo "skipped: $(tail -n 1 "$err")"
  else
    cat "$err" >&2
    [ "$rc" -eq 0 ] || exit "$rc"
  fi
done
