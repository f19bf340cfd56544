"""The main job under spark-submit: landing folder or Kafka -> bronze, quarantine, silver -> vectors -> index.

    vectorlake submit stream --source kafka
    vectorlake submit --master spark://127.0.0.1:7077 stream --source files --once --landing-dir /data/landing

`vectorlake submit` (or scripts/submit.sh jobs/stream_listings.py ...) is spark-submit with master, memory,
jars and the executors' Python from config. Arguments are those of `vectorlake stream`; config comes from
conf/<VECTORLAKE_ENV>.yaml and VECTORLAKE__* variables as for the CLI. The session keeps spark-submit's
master, which `vectorlake submit` takes from --master or else spark.master (local[2] in conf/local.yaml)."""

from __future__ import annotations

import sys

from vectorlake.cli import main

if __name__ == "__main__":
    sys.exit(main(["stream", *sys.argv[1:]]))
