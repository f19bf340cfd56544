#!/usr/bin/env bash
# The whole test suite against the real local stack: `make test` (which runs setup and lint first).
# Starts the stack, runs pytest over tests/, and stops the stack again whether the tests pass or not.
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
BIN=.venv/bin

started=0
cleanup() { [ "$started" = 1 ] && "$BIN/vectorlake" stack down; }
trap cleanup EXIT

# Only stop at the end what this run started; a stack that was already up is left as it was.
if ! "$BIN/vectorlake" stack status >/dev/null 2>&1; then started=1; fi
"$BIN/vectorlake" stack up || exit 1

t0=$SECONDS
# `bash scripts/test.sh tests/unit -x` runs a part; without a tests/ path, all of tests/.
paths=(tests)
for arg in "$@"; do case "$arg" in tests/*) paths=() ;; esac; done
# the 25 slowest tests stay visible in every run (CI included)
"$BIN/python" -m pytest "${paths[@]}" --durations=25 "$@"
rc=$?
echo "tests: $((SECONDS - t0)) s"
if [ "$rc" = 5 ]; then
  echo "test.sh: pytest collected no tests; that is a failure here" >&2
  exit 1
fi
exit "$rc"
