"""The pipeline: the two streaming queries and what only they use.

Data flows one way, and so do the imports: this package drives `vectorlake.lake` (tables, silver rules,
tombstones), `vectorlake.embed` (models, the embedding stage) and `vectorlake.index` (OpenSearch), and is
driven by `vectorlake.ops` and the CLI; nothing here imports `ops`.

- `ingest_query` / `ingest_batch`: source -> parse -> dedup -> foreachBatch(quarantine, bronze, silver);
- `index_query` / `publish` / `documents` / `targets`: the silver change feed -> vectors -> OpenSearch
  generations;
- `supervise`: intervals, graceful stops and signals for both queries; `batch_metrics`: each micro-batch's
  counts and its ``ops/stream_metrics`` row;
- `stream`: the job that runs both queries together (``vectorlake stream``).

Importing the package imports nothing heavy: Spark, pandas and the models are imported where used.
"""
