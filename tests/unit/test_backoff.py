"""The retry policy of index writes: capped exponential backoff with full jitter, and what is retried."""

from __future__ import annotations

import random
import statistics

import pytest

from vectorlake.config import Config
from vectorlake.errors import IndexUnavailable
from vectorlake.index.backoff import Backoff, is_retryable_status, retry
from vectorlake.index.sink import classify_item

POLICY = Backoff(initial_s=0.5, max_s=30.0, max_retries=6)


def test_from_config_takes_the_sink_section(cfg: Config) -> None:
    policy = Backoff.from_config(cfg.sink)
    assert policy == Backoff(cfg.sink.backoff_initial_s, cfg.sink.backoff_max_s, cfg.sink.max_retries)


def test_delays_stay_within_zero_and_the_cap() -> None:
    rng = random.Random(1)
    for attempt in range(40):
        cap = min(30.0, 0.5 * 2**attempt)
        assert POLICY.cap(attempt) == cap
        for _ in range(200):
            assert 0.0 <= POLICY.delay(attempt, rng) <= cap


def test_cap_doubles_until_the_maximum_and_stays_there() -> None:
    caps = [POLICY.cap(a) for a in range(10)]
    assert caps[:6] == [0.5, 1.0, 2.0, 4.0, 8.0, 16.0]
    assert caps[6:] == [30.0] * 4
    assert POLICY.cap(10_000) == 30.0  # no float overflow for absurd attempt numbers


def test_mean_delay_grows_exponentially_then_flattens_at_half_the_maximum() -> None:
    rng = random.Random(7)
    means = [statistics.fmean(POLICY.delay(a, rng) for _ in range(4000)) for a in range(8)]
    for attempt, mean in enumerate(means):
        # full jitter: uniform on [0, cap], so the mean is cap / 2
        assert mean == pytest.approx(POLICY.cap(attempt) / 2, rel=0.06)
    assert means[1] / means[0] == pytest.approx(2.0, rel=0.12)
    assert means[4] / means[3] == pytest.approx(2.0, rel=0.12)
    assert means[7] == pytest.approx(15.0, rel=0.06)


def test_delays_are_spread_not_constant() -> None:
    rng = random.Random(3)
    delays = [POLICY.delay(5, rng) for _ in range(1000)]
    assert min(delays) < 1.6 and max(delays) > 14.4  # the whole of [0, 16] is used


def test_a_seeded_rng_gives_the_same_delays() -> None:
    first = [POLICY.delay(a, random.Random(42)) for a in range(8)]
    second = [POLICY.delay(a, random.Random(42)) for a in range(8)]
    assert first == second
    assert first != [POLICY.delay(a, random.Random(43)) for a in range(8)]


@pytest.mark.parametrize(
    "bad", [dict(initial_s=-1.0, max_s=1.0, max_retries=1), dict(initial_s=1.0, max_s=1.0, max_retries=-1)]
)
def test_a_negative_policy_is_refused(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        Backoff(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("status", [429, 500, 502, 503, 504, 599])
def test_429_and_5xx_are_retryable(status: int) -> None:
    assert is_retryable_status(status)


@pytest.mark.parametrize("status", [200, 201, 400, 401, 403, 404, 409, 413, 428, 600])
def test_success_and_other_4xx_are_not_retryable(status: int) -> None:
    assert not is_retryable_status(status)


class Flaky(Exception):
    pass


def test_retry_retries_max_retries_times_then_raises_the_last_error() -> None:
    calls: list[int] = []
    sleeps: list[float] = []

    def call(attempt: int) -> str:
        calls.append(attempt)
        raise Flaky(f"attempt {attempt}")

    with pytest.raises(Flaky, match="attempt 6"):
        retry(call, POLICY, random.Random(0), sleeps.append, lambda e: isinstance(e, Flaky))
    assert calls == [0, 1, 2, 3, 4, 5, 6]  # the first try and max_retries retries
    assert len(sleeps) == 6
    expected = [POLICY.delay(a, rng) for rng in [random.Random(0)] for a in range(6)]
    assert sleeps == expected  # each wait is the policy's delay for that attempt, same rng sequence


def test_retry_returns_as_soon_as_a_call_succeeds() -> None:
    sleeps: list[float] = []

    def call(attempt: int) -> int:
        if attempt < 2:
            raise Flaky
        return attempt * 10

    assert retry(call, POLICY, random.Random(0), sleeps.append, lambda e: isinstance(e, Flaky)) == 20
    assert len(sleeps) == 2


def test_retry_does_not_retry_what_is_not_retryable() -> None:
    sleeps: list[float] = []
    calls: list[int] = []

    def call(attempt: int) -> None:
        calls.append(attempt)
        raise KeyError("no")

    with pytest.raises(KeyError):
        retry(call, POLICY, random.Random(0), sleeps.append, lambda e: isinstance(e, Flaky))
    assert calls == [0] and sleeps == []


def test_zero_retries_means_one_call() -> None:
    calls: list[int] = []

    def call(attempt: int) -> None:
        calls.append(attempt)
        raise Flaky

    with pytest.raises(Flaky):
        retry(call, Backoff(0.5, 30.0, 0), random.Random(0), lambda s: None, lambda e: True)
    assert calls == [0]


# Items of real _bulk responses, captured from OpenSearch 2.19.6 (tests/integration/test_index_sink.py
# produces each of them again against the live server): which are retried, which are final.
BLOCKED_429 = {
    "_index": "listings_g1",
    "_id": "z",
    "status": 429,
    "error": {
        "type": "cluster_block_exception",
        "reason": "index [listings_g1] blocked by: [TOO_MANY_REQUESTS/12/disk usage exceeded flood-stage "
        "watermark, index has read-only-allow-delete block];",
    },
}
CONFLICT_409 = {
    "_index": "listings_g1",
    "_id": "a",
    "status": 409,
    "error": {
        "type": "version_conflict_engine_exception",
        "reason": "[a]: version conflict, current version [5] is higher than the one provided [3]",
        "index": "listings_g1",
        "shard": "0",
        "index_uuid": "GABl60unStGsP6SuAZ0CvA",
    },
}
MAPPER_400 = {
    "_index": "listings_g1",
    "_id": "b",
    "status": 400,
    "error": {
        "type": "mapper_parsing_exception",
        "reason": "failed to parse field [text_vector] of type [knn_vector] in document with id 'b'. "
        "Preview of field's value: 'null'",
        "caused_by": {
            "type": "illegal_argument_exception",
            "reason": "Vector dimension mismatch. Expected: 3, Given: 2",
        },
    },
}
DELETE_NOT_FOUND_404 = {
    "_index": "listings_g1",
    "_id": "d",
    "_version": 6,
    "result": "not_found",
    "_shards": {"total": 1, "successful": 1, "failed": 0},
    "_seq_no": 2,
    "_primary_term": 1,
    "status": 404,
}
NO_ALIAS_404 = {
    "_index": "no-such-alias",
    "_id": "a",
    "status": 404,
    "error": {
        "type": "index_not_found_exception",
        "reason": "no such index [no-such-alias] and [require_alias] request flag is [true] and "
        "[no-such-alias] is not an alias",
        "index": "no-such-alias",
        "index_uuid": "_na_",
    },
}


def test_a_429_item_is_retried_and_a_5xx_item_too() -> None:
    verdict = classify_item("index", BLOCKED_429)
    assert (verdict.outcome, verdict.status) == ("retry", 429)
    assert verdict.error is not None and verdict.error.startswith("cluster_block_exception: index [")
    unavailable = {"status": 503, "error": {"type": "unavailable_shards_exception", "reason": "primary"}}
    assert classify_item("delete", unavailable).outcome == "retry"


def test_final_items_are_classified_with_their_reason() -> None:
    assert classify_item("index", CONFLICT_409).outcome == "stale"
    rejected = classify_item("index", MAPPER_400)
    assert (rejected.outcome, rejected.status) == ("rejected", 400)
    assert rejected.error == (
        "mapper_parsing_exception: failed to parse field [text_vector] of type [knn_vector] in document "
        "with id 'b'. Preview of field's value: 'null' (caused by illegal_argument_exception: Vector "
        "dimension mismatch. Expected: 3, Given: 2)"
    )
    assert classify_item("delete", DELETE_NOT_FOUND_404).outcome == "applied"
    assert classify_item("index", {"status": 201}).outcome == "applied"


def test_a_missing_alias_fails_the_batch_instead_of_rejecting_every_document() -> None:
    with pytest.raises(IndexUnavailable, match="no such index"):
        classify_item("index", NO_ALIAS_404)


def test_a_long_reason_is_cut() -> None:
    item = {"status": 400, "error": {"type": "illegal_argument_exception", "reason": "x" * 5000}}
    error = classify_item("index", item).error
    assert error is not None and len(error) == 500 and error.endswith("...")
