"""Operations over the lake and the index: freshness now; reindex, backfill, purge and quality later."""
