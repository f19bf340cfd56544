"""The main job under spark-submit: landing folder or Kafka -> bronze, quarantine, silver -> vectors -> index.

    scripts/submit.sh jobs/stream_listings.py --source kafka
    scripts/submit.sh jobs/stream_listings.py --source files --once --landing-dir /data/landing

`scripts/submit.sh` is spark-submit with the project's Python and cached jars; on a cluster use plain
spark-submit with the cluster's Delta and Kafka packages. Arguments are those of `vectorlake stream`;
config comes from conf/<VECTORLAKE_ENV>.yaml and VECTORLAKE__* variables as for the CLI. conf/local.yaml
sets the master (local[2]); conf/prod.yaml sets none, so spark-submit's --master applies.
"""

from __future__ import annotations

import sys

from vectorlake.cli import main

if __name__ == "__main__":
    sys.exit(main(["stream", *sys.argv[1:]]))
