from __future__ import annotations

import hashlib
import itertools

import numpy as np
import pytest

from vectorlake.embed.modelinput import chunk_spans, content_hash, fuse, pool, text_input

KEYS = ("brand", "color", "material", "condition")


def test_text_input_lays_out_title_category_chosen_attributes_and_description() -> None:
    text = text_input(
        title="Sleek Steel Chair",
        description="A sturdy chair. Ships fast.",
        category_path="Furniture > Chairs",
        attributes={"price": "12.5", "condition": "used", "brand": "Acme & Co", "color": "red"},
        attribute_keys=KEYS,
    )
    assert text == (
        "Sleek Steel Chair\n"
        "Furniture > Chairs\n"
        "brand: Acme & Co; color: red; condition: used\n"  # attribute_keys order; material missing; no price
        "A sturdy chair. Ships fast."
    )


def test_text_input_normalizes_unicode_and_whitespace() -> None:
    text = text_input(
        # fullwidth "Full" and a no-break space fold under NFKC
        title="  \uff26\uff55\uff4c\uff4c\u00a0width\ttitle \n",
        description="line one\r\n\r\n   line two\u2003end ",
        category_path=None,
        attributes={"brand": " ﬁne\nbrand "},  # the "fi" ligature is NFKC-folded too
        attribute_keys=("brand",),
    )
    assert text == "Full width title\nbrand: fine brand\nline one line two end"


def test_text_input_skips_missing_and_blank_fields() -> None:
    assert text_input("Chair", None, None, None, KEYS) == "Chair"
    assert text_input("Chair", "  ", "", {"brand": " ", "color": None}, KEYS) == "Chair"  # type: ignore[dict-item]
    assert text_input(None, "only a description", None, {}, KEYS) == "only a description"
    assert text_input(None, None, None, None, KEYS) == ""


def test_text_input_uses_only_the_chosen_keys_in_their_order() -> None:
    attrs = {"color": "blue", "brand": "Zed", "material": "oak"}
    assert text_input("T", None, None, attrs, ("material", "brand")) == "T\nmaterial: oak; brand: Zed"
    assert text_input("T", None, None, attrs, ()) == "T"
    assert text_input("T", None, None, {"price": 9.99}, ("price",)) == "T\nprice: 9.99"  # type: ignore[dict-item]


def test_text_input_is_deterministic_and_independent_of_mapping_order() -> None:
    a = text_input("T", "D", "C", {"brand": "B", "color": "red"}, KEYS)
    b = text_input("T", "D", "C", {"color": "red", "brand": "B"}, KEYS)
    assert a == b
    assert content_hash(a) == content_hash(b)


def test_content_hash_is_sha256_of_the_exact_input() -> None:
    assert content_hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    assert content_hash(b"abc") == content_hash("abc")
    assert content_hash("é") == hashlib.sha256("é".encode()).hexdigest()
    assert content_hash("abc ") != content_hash("abc")
    url = "s3://bucket/images/l-00001/0.jpg"
    assert content_hash(url) == hashlib.sha256(url.encode()).hexdigest()


def test_chunk_spans_short_text_is_one_span() -> None:
    assert chunk_spans(0, 254, 32) == [(0, 0)]
    assert chunk_spans(10, 254, 32) == [(0, 10)]
    assert chunk_spans(254, 254, 32) == [(0, 254)]


def test_chunk_spans_overlap_and_short_last_window() -> None:
    assert chunk_spans(255, 254, 32) == [(0, 254), (222, 255)]
    assert chunk_spans(10, 4, 1) == [(0, 4), (3, 7), (6, 10)]
    assert chunk_spans(11, 4, 1) == [(0, 4), (3, 7), (6, 10), (9, 11)]
    assert chunk_spans(8, 4, 0) == [(0, 4), (4, 8)]


@pytest.mark.parametrize(
    ("n", "window", "overlap"), [(1000, 254, 32), (257, 256, 255), (37, 5, 2), (300, 7, 0)]
)
def test_chunk_spans_cover_every_token_with_the_given_overlap(n: int, window: int, overlap: int) -> None:
    spans = chunk_spans(n, window, overlap)
    assert spans[0][0] == 0 and spans[-1][1] == n
    assert all(0 < e - s <= window for s, e in spans)
    for (s1, e1), (s2, _) in itertools.pairwise(spans):
        assert e1 - s2 == overlap  # consecutive windows share exactly `overlap` tokens
        assert s2 > s1
    assert all(e - s == window for s, e in spans[:-1])
    covered = set().union(*(range(s, e) for s, e in spans))
    assert covered == set(range(n))


@pytest.mark.parametrize(
    ("n", "window", "overlap"), [(10, 4, 4), (10, 4, 5), (10, 0, 0), (10, 4, -1), (-1, 4, 1)]
)
def test_chunk_spans_rejects_bad_arguments(n: int, window: int, overlap: int) -> None:
    with pytest.raises(ValueError):
        chunk_spans(n, window, overlap)


def test_pool_is_the_token_weighted_mean_normalized() -> None:
    vectors: np.ndarray = np.array([[1.0, 0.0], [0.0, 1.0]], dtype=np.float32)
    np.testing.assert_allclose(pool(vectors, [3, 1]), np.array([3.0, 1.0]) / np.sqrt(10), rtol=1e-6)
    np.testing.assert_allclose(pool(vectors, [1, 1]), np.array([1.0, 1.0]) / np.sqrt(2), rtol=1e-6)
    one = pool(np.array([[3.0, 4.0]]), [7])
    np.testing.assert_allclose(one, [0.6, 0.8], rtol=1e-6)
    assert one.dtype == np.float32


def test_pool_rejects_bad_weights() -> None:
    vectors: np.ndarray = np.ones((2, 3), dtype=np.float32)
    with pytest.raises(ValueError):
        pool(vectors, [1])
    with pytest.raises(ValueError):
        pool(vectors, [0, 0])
    with pytest.raises(ValueError):
        pool(vectors, [2, -1])
    with pytest.raises(ValueError):
        pool(np.zeros((0, 3)), [])


def test_fuse_without_image_fills_zeros_and_keeps_the_text_direction() -> None:
    text = np.array([0.6, 0.8], dtype=np.float32)
    fused = fuse(text, None, image_dim=3, text_weight=1.0, image_weight=1.0)
    assert fused.dtype == np.float32
    np.testing.assert_allclose(fused, [0.6, 0.8, 0.0, 0.0, 0.0], rtol=1e-6)


def test_fuse_weights_the_parts_then_normalizes() -> None:
    text = np.array([1.0, 0.0], dtype=np.float32)
    image = np.array([0.0, 1.0, 0.0], dtype=np.float32)
    fused = fuse(text, image, image_dim=3, text_weight=1.0, image_weight=1.0)
    np.testing.assert_allclose(fused, np.array([1.0, 0.0, 0.0, 1.0, 0.0]) / np.sqrt(2), rtol=1e-6)
    weighted = fuse(text, image, image_dim=3, text_weight=3.0, image_weight=4.0)
    np.testing.assert_allclose(weighted, [0.6, 0.0, 0.0, 0.8, 0.0], rtol=1e-6)
    assert np.linalg.norm(weighted) == pytest.approx(1.0, abs=1e-6)


def test_fuse_checks_the_image_dimension() -> None:
    with pytest.raises(ValueError, match="expected 4"):
        fuse(np.ones(2), np.ones(3), image_dim=4, text_weight=1.0, image_weight=1.0)
