"""Explanations' pure parts: word pieces merged into words, ranking, the index sample and search."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from trainer.explain import (
    ExplainError,
    ExplainOptions,
    NeighbourIndex,
    WordAttribution,
    merge_wordpieces,
    sample_for_index,
    top_words,
    write_neighbour_index,
)


def words_of(text: str, tokens: list[str], values: list[float]) -> list[tuple[str, float]]:
    return [(w.word, round(w.attribution, 6)) for w in merge_wordpieces(text, tokens, values)]


def test_continuation_pieces_are_summed_into_their_word_and_specials_dropped() -> None:
    tokens = ["[CLS]", "na", "##ive", "cat", "[SEP]"]
    assert words_of("naive cat", tokens, [9.0, 0.25, 0.5, -1.0, 9.0]) == [
        ("naive", 0.75),
        ("cat", -1.0),
    ]


def test_words_keep_the_message_spelling_and_their_place() -> None:
    text = "  Hello,\tWORLD! Naïve café"
    tokens = ["[CLS]", "hello", ",", "world", "!", "na", "##ive", "caf", "##e", "[SEP]"]
    merged = merge_wordpieces(text, tokens, [0, 1, 2, 3, 4, 5, 6, 7, 8, 0])
    assert [(w.word, w.attribution) for w in merged] == [
        ("Hello", 1.0),
        (",", 2.0),
        ("WORLD", 3.0),
        ("!", 4.0),
        ("Naïve", 11.0),
        ("café", 15.0),
    ]
    for word in merged:
        assert word.start is not None and text[word.start : word.end] == word.word


def test_an_unknown_word_takes_the_text_at_its_place() -> None:
    text = "win 🎉🎉 now!! ☃"
    tokens = ["[CLS]", "win", "[UNK]", "now", "!", "!", "[UNK]", "[SEP]"]
    assert words_of(text, tokens, [0, 1, 2, 3, 4, 5, 6, 0]) == [
        ("win", 1.0),
        ("🎉🎉", 2.0),
        ("now", 3.0),
        ("!", 4.0),
        ("!", 5.0),
        ("☃", 6.0),
    ]


def test_truncated_text_gives_only_the_words_the_model_read() -> None:
    text = "the cat sat on the mat"
    merged = merge_wordpieces(text, ["[CLS]", "the", "cat", "[SEP]"], [0, 1, 2, 0])
    assert [w.word for w in merged] == ["the", "cat"]
    assert merged[1].end == 7


def test_a_piece_not_found_in_the_text_keeps_the_models_spelling() -> None:
    merged = merge_wordpieces("abc", ["[CLS]", "xyz", "##q", "[SEP]"], [0, 1, 1, 0])
    assert merged == [WordAttribution("xyzq", 2.0, None, None)]
    with pytest.raises(ValueError, match="attributions"):
        merge_wordpieces("abc", ["a"], [])


def test_control_characters_do_not_shift_positions() -> None:
    text = "a\u200bb cat"  # a zero-width space the tokenizer removes: "ab"
    merged = merge_wordpieces(text, ["a", "##b", "cat"], [1, 1, 1])
    assert [(w.word, w.start, w.end) for w in merged] == [("a\u200bb", 0, 3), ("cat", 4, 7)]


def test_top_words_rank_by_absolute_attribution_and_keep_the_sign() -> None:
    words = [WordAttribution(w, a) for w, a in [("a", 0.1), ("b", -0.5), ("c", 0.3), ("d", 0.3)]]
    assert [(w.word, w.attribution) for w in top_words(words, 3)] == [
        ("b", -0.5),
        ("c", 0.3),
        ("d", 0.3),
    ]


def test_options_are_bounded() -> None:
    assert ExplainOptions().steps <= 32
    with pytest.raises(ValueError, match="steps"):
        ExplainOptions(steps=33)
    with pytest.raises(ValueError, match="top_words"):
        ExplainOptions(top_words=0)


def test_the_index_sample_is_stratified_capped_and_deterministic() -> None:
    labels = ["ham"] * 900 + ["spam"] * 95 + ["rare"] * 5
    texts = [f"t{i}" for i in range(len(labels))]
    chosen = sample_for_index(texts, labels, 100, seed=3)
    assert len(chosen) == 100 and chosen == sorted(set(chosen))
    counts = Counter(labels[i] for i in chosen)
    assert counts == {"ham": 90, "spam": 9, "rare": 1}
    assert sample_for_index(texts, labels, 100, seed=3) == chosen
    assert sample_for_index(texts, labels, 100, seed=4) != chosen
    assert sample_for_index(texts[:50], labels[:50], 100) == list(range(50))
    assert sample_for_index(texts, labels, 0) == []


def test_the_index_round_trips_and_returns_the_nearest(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(20, 8)).astype(np.float32)
    texts = [f"text {i}" for i in range(20)]
    labels = ["a" if i % 2 else "b" for i in range(20)]
    write_neighbour_index(tmp_path, vectors * 7.0, texts, labels)  # scale does not matter
    stored = np.load(tmp_path / "neighbours.npy")
    assert stored.dtype == np.float16
    assert np.allclose(np.linalg.norm(stored.astype(np.float32), axis=1), 1.0, atol=1e-3)
    index = NeighbourIndex.load(tmp_path)
    assert index is not None and len(index) == 20
    query = vectors[5] + 0.01 * rng.normal(size=8)
    nearest = index.nearest(query, 3)
    assert nearest[0].text == "text 5" and nearest[0].label == "a"
    assert nearest[0].similarity == pytest.approx(1.0, abs=1e-2)
    expected = np.argsort(-(vectors / np.linalg.norm(vectors, axis=1, keepdims=True)) @ query)
    assert [n.text for n in nearest] == [f"text {i}" for i in expected[:3]]
    assert nearest[0].similarity >= nearest[1].similarity >= nearest[2].similarity
    assert NeighbourIndex.load(tmp_path / "nothing") is None
    (tmp_path / "neighbours.jsonl").write_text('{"text": "x"}\n')
    with pytest.raises(ExplainError, match="unreadable"):
        NeighbourIndex.load(tmp_path)
