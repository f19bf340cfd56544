"""Embedding: the model input of a listing, the encoders (text and image), the model registry, image fetch.

Nothing is loaded at import: torch, open_clip, sentence-transformers and mlflow are imported inside the
functions that need them, and each model is loaded once per worker process by a cached loader.
"""
