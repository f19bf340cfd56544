"""Carry out the pending GDPR/CCPA erasure requests under spark-submit: the same as `vectorlake purge`.

    scripts/submit.sh jobs/gdpr_purge.py [--no-deadline-check] [--verify REQUEST_ID]

The gdpr_purge DAG runs it hourly. Config comes from conf/<VECTORLAKE_ENV>.yaml and VECTORLAKE__* variables.
"""

from __future__ import annotations

import sys

from vectorlake.cli import main

if __name__ == "__main__":
    sys.exit(main(["purge", *sys.argv[1:]]))
