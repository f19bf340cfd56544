"""Build (or resume) an index generation under spark-submit: the same as `vectorlake reindex`.

    scripts/submit.sh jobs/reindex.py [--text-model V] [--image-model V] [--generation INDEX] [--no-validate]

The embedding_reindex DAG runs it with ``--generation <the building index> --no-validate`` and validates
in its next task. Config comes from conf/<VECTORLAKE_ENV>.yaml and VECTORLAKE__* variables.
"""

from __future__ import annotations

import sys

from vectorlake.cli import main

if __name__ == "__main__":
    sys.exit(main(["reindex", *sys.argv[1:]]))
