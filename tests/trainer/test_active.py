"""Choosing what to ask: near-duplicates, uncertainty, diversity and drift flags (numpy only)."""

from __future__ import annotations

import numpy as np
import pytest

from trainer.active import Candidate, Strategy, choose, group_duplicates, margin_of


def _candidate(message_id: int, spam: float, text: str | None = None, flagged: str | None = None):
    return Candidate(
        message_id, text or f"message {message_id}", {"ham": 1 - spam, "spam": spam}, flagged
    )


def _clusters() -> tuple[list[Candidate], np.ndarray]:
    """Cluster A: 8 coin tosses close together; B and C: 3 less unsure messages each, far off."""
    rng = np.random.default_rng(1)
    centres = np.eye(3, 16, dtype=np.float32) * 10
    candidates, rows = [], []
    for cluster, (count, spam) in enumerate(((8, 0.5), (3, 0.35), (3, 0.3))):
        for j in range(count):
            message_id = 100 * (cluster + 1) + j
            candidates.append(_candidate(message_id, spam + j * 0.005))
            rows.append(centres[cluster] + rng.normal(0, 1.0, 16))
    return candidates, np.array(rows, dtype=np.float32)


def _cluster(choice) -> int:
    return choice.candidate.message_id // 100


def test_the_margin_is_top_minus_second() -> None:
    assert margin_of({"a": 0.5, "b": 0.3, "c": 0.2}) == pytest.approx(0.2)
    assert margin_of({"a": 1.0}) == 1.0 and margin_of({}) == 0.0


def test_k_near_duplicates_yield_one_item_carrying_the_group() -> None:
    texts = ["WIN a prize now", "win  a PRIZE now ", "Win a prize now!!", "something else"]
    candidates = [_candidate(i, 0.5 - i * 0.01, text) for i, text in enumerate(texts)]
    embeddings = np.array([[1, 0, 0], [1, 0, 0], [0.99, 0.05, 0], [0, 1, 0]], dtype=np.float32)
    for strategy in Strategy:
        chosen = choose(candidates, 10, strategy=strategy, embeddings=embeddings)
        assert sorted(c.candidate.message_id for c in chosen) == [0, 3], strategy
        group = next(c for c in chosen if c.candidate.message_id == 0)
        assert group.duplicate_ids == (1, 2) and group.group_size == 3
        assert "2 near-duplicates" in group.reason
    # Without embeddings, only equal normalised texts collapse.
    chosen = choose(candidates, 10, strategy="uncertainty")
    assert [c.candidate.message_id for c in chosen] == [0, 2, 3]


def test_active_spreads_over_clusters_where_uncertainty_picks_one() -> None:
    candidates, embeddings = _clusters()
    unsure = choose(candidates, 3, strategy="uncertainty", embeddings=embeddings)
    assert {_cluster(c) for c in unsure} == {1}
    assert unsure[0].reason.startswith("uncertain: margin 0.00")
    active = choose(candidates, 3, strategy="active", embeddings=embeddings)
    assert sorted(_cluster(c) for c in active) == [1, 2, 3]
    assert active[0].reason.startswith("uncertain:")
    assert active[1].reason.startswith("diverse: far from 1 chosen")
    assert active[2].reason.startswith("diverse: far from 2 chosen")


def test_active_without_embeddings_falls_back_to_uncertainty_and_says_so() -> None:
    candidates, _ = _clusters()
    chosen = choose(candidates, 3)
    assert {_cluster(c) for c in chosen} == {1}
    assert all("no embeddings: uncertainty only" in c.reason for c in chosen)


def test_random_is_seeded() -> None:
    candidates, embeddings = _clusters()
    first = choose(candidates, 5, strategy="random", seed=7, embeddings=embeddings)
    again = choose(candidates, 5, strategy="random", seed=7, embeddings=embeddings)
    other = choose(candidates, 5, strategy="random", seed=8, embeddings=embeddings)
    ids = [c.candidate.message_id for c in first]
    assert ids == [c.candidate.message_id for c in again]
    assert ids != [c.candidate.message_id for c in other]
    assert first[0].reason == "random (seed 7)"


@pytest.mark.parametrize("strategy", list(Strategy))
def test_a_drift_flagged_message_still_leads(strategy: Strategy) -> None:
    candidates, embeddings = _clusters()
    candidates[-1] = _candidate(candidates[-1].message_id, 0.01, flagged="drift")
    chosen = choose(candidates, 3, strategy=strategy, embeddings=embeddings)
    assert chosen[0].candidate.message_id == candidates[-1].message_id
    assert chosen[0].reason == "drift-flagged"
    assert len(chosen) == 3


def test_groups_are_led_by_the_least_sure_member() -> None:
    candidates = [_candidate(1, 0.9, "same"), _candidate(2, 0.5, "SAME")]
    assert group_duplicates(candidates) == [[1, 0]]


def test_bad_arguments_are_refused() -> None:
    candidates, embeddings = _clusters()
    with pytest.raises(ValueError, match="one row per candidate"):
        choose(candidates, 3, embeddings=embeddings[:2])
    with pytest.raises(ValueError):
        choose(candidates, 3, strategy="cleverest")
    assert choose([], 3) == [] and choose(candidates, 0) == []
