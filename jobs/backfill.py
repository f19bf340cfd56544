"""Replay a time range of bronze events under spark-submit: the same as `vectorlake backfill`.

    scripts/submit.sh jobs/backfill.py --from 2026-11-01T00:00:00Z --to 2026-11-02T00:00:00Z --target both

The listing_backfill DAG runs it with its Params. Config comes from conf/<VECTORLAKE_ENV>.yaml and
VECTORLAKE__* variables.
"""

from __future__ import annotations

import sys

from vectorlake.cli import main

if __name__ == "__main__":
    sys.exit(main(["backfill", *sys.argv[1:]]))
