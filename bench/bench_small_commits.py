"""Benchmark (not a test): the fixed cost of small Delta commits, with and without generated row projections.

    .venv/bin/python bench/bench_small_commits.py [--rounds 16] [--rows 10] [--out PATH]

A micro-batch of a few events costs seconds that do not depend on its size: every Delta append, MERGE and
read replays the table's log in Spark tasks, and each task generates, formats and looks up Java source
for its row projections before it can use the compiled class it finds in the cache. This measures one
round of the commits a small batch makes (an append of ``--rows`` rows, a MERGE of the same rows with
both clauses, a count of the table) in the session `conf/local.yaml` builds, under the two values of
``spark.sql.codegen.factoryMode`` that matter:

- ``FALLBACK`` (Spark's default): projections are generated code;
- ``NO_CODEGEN`` (the local profile): projections are interpreted; whole-stage code generation is on
  in both.

The two modes take turns round by round on their own tables in one JVM (the conf is a session conf read
by each query), so warm-up and the machine's speed drift touch both alike; the first two rounds of each
are warm-up and not counted. Every 10th commit of a table also writes a Delta checkpoint, in both.
Prints the median seconds of each operation per mode and the ratio (NO_CODEGEN / FALLBACK) of the median
round, and writes them with the machine's facts to ``bench/results/small_commits.json`` (``--out``).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import benchlib

from vectorlake import spark as vspark
from vectorlake.argtypes import OneLineParser, positive_int
from vectorlake.config import load_config

MODES = ("FALLBACK", "NO_CODEGEN")
OPS = ("append", "merge", "count", "round")
WARM_UP = 2


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = OneLineParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=positive_int, default=16, help="rounds per mode (2 are warm-up)")
    parser.add_argument("--rows", type=positive_int, default=10, help="rows per append and MERGE")
    parser.add_argument("--out", default=str(benchlib.ROOT / "bench/results/small_commits.json"))
    args = parser.parse_args(argv)
    if args.rounds <= WARM_UP:
        parser.error(f"--rounds must be more than {WARM_UP} (the warm-up rounds), got {args.rounds}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    from delta.tables import DeltaTable

    cfg = load_config()
    spark = vspark.build_session(cfg, app_name="bench-small-commits")
    spark.sparkContext.setLogLevel("ERROR")
    rows = spark.range(args.rows).selectExpr("id", "cast(id AS string) AS s", "id * 0.5 AS x")
    times: dict[str, dict[str, list[float]]] = {m: {op: [] for op in OPS} for m in MODES}
    with tempfile.TemporaryDirectory(prefix="bench-small-commits-") as tmp:
        paths = {m: f"{tmp}/{m.lower()}" for m in MODES}
        for path in paths.values():
            rows.write.format("delta").save(path)
        for r in range(args.rounds):
            for mode in MODES if r % 2 == 0 else MODES[::-1]:
                spark.conf.set("spark.sql.codegen.factoryMode", mode)
                path = paths[mode]
                t0 = time.perf_counter()
                rows.write.format("delta").mode("append").save(path)
                t1 = time.perf_counter()
                (
                    DeltaTable.forPath(spark, path)
                    .alias("t")
                    .merge(rows.alias("s"), "t.id = s.id AND t.s = s.s")
                    .whenMatchedUpdateAll()
                    .whenNotMatchedInsertAll()
                    .execute()
                )
                t2 = time.perf_counter()
                n = spark.read.format("delta").load(path).count()
                t3 = time.perf_counter()
                # every round adds `rows` rows; the MERGE updates the matches (the first of each id too)
                expected = args.rows * (r + 2)
                if n != expected:
                    raise RuntimeError(f"{mode}: {n} rows after round {r}, expected {expected}")
                for op, s in zip(OPS, (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=True):
                    times[mode][op].append(s)
                print(f"round {r:2d} {mode:>10}: {t3 - t0:6.2f} s", flush=True)
    spark.stop()
    medians = {m: {op: statistics.median(times[m][op][WARM_UP:]) for op in OPS} for m in MODES}
    ratio = medians["NO_CODEGEN"]["round"] / medians["FALLBACK"]["round"]
    print(f"\n{'median s':>12}" + "".join(f"{op:>10}" for op in OPS))
    for m in MODES:
        print(f"{m:>12}" + "".join(f"{medians[m][op]:10.2f}" for op in OPS))
    print(f"\nratio NO_CODEGEN / FALLBACK (median round): {ratio:.2f}")
    result = {
        "bench": "small_commits",
        "rounds": args.rounds,
        "warm_up_rounds": WARM_UP,
        "rows": args.rows,
        "median_s": medians,
        "ratio_no_codegen_over_fallback": round(ratio, 3),
        "seconds": times,
        "spark_conf": {k: v for k, v in vspark.session_conf(cfg).items() if "codegen" in k or "Java" in k},
        "library": benchlib.library_state([vspark], ["conf/local.yaml", "bench/bench_small_commits.py"]),
        "machine": benchlib.machine("pyspark", "delta-spark"),
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
