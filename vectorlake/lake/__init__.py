"""The lake: bronze (raw valid events), silver (canonical state), gold (embeddings, index log)."""
