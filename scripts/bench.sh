#!/usr/bin/env bash
# `make bench`: run every bench/bench_*.py; each prints its ratios and writes bench/results/<name>.json.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
shopt -s nullglob
benches=(bench/bench_*.py)
if [ ${#benches[@]} -eq 0 ]; then
  echo "bench: no benchmarks in bench/ yet"
  exit 0
fi
for b in "${benches[@]}"; do
  echo "==> $b"
  .venv/bin/python "$b"
done
