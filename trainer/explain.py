"""Explanations of a prediction: the words that pushed it, and the nearest labelled examples.

Words come from integrated gradients (Sundararajan et al., 2017) on the input word
embeddings, computed by the exported model's ``explain`` signature
(:mod:`trainer.attribution`): all interpolation steps go through the model in one batched
call, and each word piece's attribution is the path integral of the gradient of the
predicted label's calibrated log-odds, ``log p / (1 - p)``. The baseline is the same
sequence with every text piece replaced by ``[PAD]`` ([CLS] and [SEP] kept), so the
attributions of a text sum to about ``log-odds(text) - log-odds(baseline)``; what is left
over is reported as the completeness gap.
Word pieces are merged back into the words of the message here, in pure Python.

Neighbours come from an index written beside the model at training time
(:func:`write_neighbour_index`): a deterministic, stratified sample of its training
examples, embedded with the trained model (the pooled vector its head reads), L2-normalised
and stored as float16. The nearest by cosine similarity are returned with their labels.

Imports no TensorFlow: the bot and the CLI use these types; the model does the work.
"""

from __future__ import annotations

import json
import math
import threading
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from trainer.bounds import bounded, check_bounds

NEIGHBOUR_VECTORS_FILE = "neighbours.npy"
NEIGHBOUR_EXAMPLES_FILE = "neighbours.jsonl"
SPECIAL_TOKENS = frozenset({"[CLS]", "[SEP]", "[PAD]", "[MASK]"})
UNKNOWN_TOKEN = "[UNK]"
CONTINUATION = "##"
REIMPORT_HINT = (
    "its encoder predates explanations: re-import the encoder: bertbot encoder import "
    "--force, then retrain the task"
)


class ExplainError(RuntimeError):
    """A prediction cannot be explained; the message says why and what to do."""


@dataclass(frozen=True)
class ExplainOptions:
    """How explanations are computed (settings ``BERTBOT_EXPLAIN__*``).

    Attributes:
        steps: Integrated-gradients interpolation steps, all in one batched model call
            (Gauss-Legendre points between the baseline and the text).
        token_budget: The most word pieces one explanation sends through the model,
            ``(steps + 2) x`` the text's pieces: a long text gets fewer steps (at least 4),
            which bounds the latency. 0: always ``steps``.
        top_words: How many words an explanation shows (by absolute attribution).
        neighbours: How many similar labelled examples it shows.
    """

    steps: int = bounded(16, ge=1, le=32)
    token_budget: int = bounded(800, ge=0, le=100_000)
    top_words: int = bounded(5, ge=1, le=20)
    neighbours: int = bounded(3, ge=0, le=10)

    def __post_init__(self) -> None:
        check_bounds(self)


@dataclass(frozen=True)
class WordAttribution:
    """One word of the text and how much it pushed the predicted class's probability.

    Attributes:
        word: The word as written in the text (or as the model read it, where it could not
            be found there).
        attribution: Signed, in log-odds of the predicted label: positive pushed towards it.
        start: The word's first character in the text (None when not found).
        end: One past its last character.
    """

    word: str
    attribution: float
    start: int | None = None
    end: int | None = None


@dataclass(frozen=True)
class Neighbour:
    """A labelled training example near the text (cosine similarity of pooled embeddings)."""

    text: str
    label: str
    similarity: float


@dataclass(frozen=True)
class Explanation:
    """Why a model predicted what it did for one text.

    Attributes:
        task: The task.
        model_version: The model that explained (and predicted) it.
        label: The predicted label.
        probability: Its calibrated probability.
        words: Every word the model read, in text order, with its attribution.
        top: The ``top_words`` words with the largest absolute attribution, largest first.
        neighbours: The most similar labelled training examples, most similar first.
        baseline_probability: The predicted label's probability for the baseline (the text's
            pieces replaced by [PAD]).
        log_odds: The predicted label's calibrated log-odds, ``log p / (1 - p)``.
        baseline_log_odds: The same for the baseline.
        completeness_gap: ``sum(attributions) - (log_odds - baseline_log_odds)``.
        steps: The interpolation steps used (fewer than asked for a long text, see
            :attr:`ExplainOptions.token_budget`).
        truncated: The model read only the beginning of the text.
    """

    task: str
    model_version: str
    label: str
    probability: float
    words: tuple[WordAttribution, ...]
    top: tuple[WordAttribution, ...]
    neighbours: tuple[Neighbour, ...]
    baseline_probability: float
    log_odds: float
    baseline_log_odds: float
    completeness_gap: float
    steps: int
    truncated: bool

    def to_json(self) -> dict[str, Any]:
        """The ``bertbot explain --json`` document."""
        return {
            "task": self.task,
            "model_version": self.model_version,
            "label": self.label,
            "probability": round(self.probability, 6),
            "words": [{"word": w.word, "attribution": round(w.attribution, 6)} for w in self.top],
            "neighbours": [
                {"text": n.text, "label": n.label, "similarity": round(n.similarity, 6)}
                for n in self.neighbours
            ],
            "baseline_probability": round(self.baseline_probability, 6),
            "log_odds": round(self.log_odds, 6),
            "baseline_log_odds": round(self.baseline_log_odds, 6),
            "completeness_gap": round(self.completeness_gap, 6),
            "steps": self.steps,
            "truncated": self.truncated,
        }


class Explainable(Protocol):
    """A model that can explain its predictions (:class:`trainer.serving.SavedModelClassifier`).

    ``explain`` runs the model: call it on a worker, never on an ingest or ack path.
    """

    @property
    def task(self) -> str: ...

    @property
    def version(self) -> str: ...

    def explain(self, text: str, options: ExplainOptions) -> Explanation: ...


def can_explain(model: Any) -> bool:
    return callable(getattr(model, "explain", None))


# Word pieces -> words ---------------------------------------------------------------------


def _normalised_chars(text: str) -> tuple[str, list[int]]:
    """The text as the tokenizer sees it (lower case, no accents or control characters),
    with the index in ``text`` of every character of the result."""
    out: list[str] = []
    index: list[int] = []
    for i, char in enumerate(text):
        if char in "\t\n\r" or unicodedata.category(char) == "Zs":
            pieces = " "
        elif unicodedata.category(char) in ("Cc", "Cf", "Co") or char == "\ufffd":
            continue
        else:
            decomposed = unicodedata.normalize("NFD", char)
            pieces = "".join(c for c in decomposed if unicodedata.category(c) != "Mn").lower()
        for piece in pieces:
            out.append(piece)
            index.append(i)
    return "".join(out), index


def _is_punctuation(char: str) -> bool:
    code = ord(char)
    if 33 <= code <= 47 or 58 <= code <= 64 or 91 <= code <= 96 or 123 <= code <= 126:
        return True
    return unicodedata.category(char).startswith("P")


def merge_wordpieces(
    text: str, tokens: Sequence[str], attributions: Sequence[float]
) -> list[WordAttribution]:
    """Sum word pieces' attributions into the words they came from, spelled as in ``text``.

    A piece starting with ``##`` continues the word before it; special tokens ([CLS],
    [SEP], [PAD]) are dropped. Each word is found in the text (after the tokenizer's own
    lower-casing and accent stripping) so it keeps the message's spelling; an ``[UNK]``
    takes the text's word at that place; a word that cannot be found keeps the model's
    spelling and no position. Words cut off by truncation are simply absent.

    Args:
        text: The text the model read.
        tokens: Its word pieces, as the model's vocabulary spells them.
        attributions: One per piece.

    Returns:
        The words in text order.
    """
    if len(tokens) != len(attributions):
        raise ValueError(f"{len(tokens)} tokens but {len(attributions)} attributions")
    words: list[tuple[str, float]] = []
    for token, value in zip(tokens, attributions, strict=True):
        if token in SPECIAL_TOKENS:
            continue
        if token.startswith(CONTINUATION) and words and words[-1][0] != UNKNOWN_TOKEN:
            spelled, total = words[-1]
            words[-1] = (spelled + token[len(CONTINUATION) :], total + float(value))
        else:
            words.append((token, float(value)))

    normalised, origin = _normalised_chars(text)
    cursor = 0
    merged: list[WordAttribution] = []
    for spelled, value in words:
        while cursor < len(normalised) and normalised[cursor].isspace():
            cursor += 1
        if spelled == UNKNOWN_TOKEN:
            start = cursor
            if cursor < len(normalised) and _is_punctuation(normalised[cursor]):
                cursor += 1
            else:
                while (
                    cursor < len(normalised)
                    and not normalised[cursor].isspace()
                    and not _is_punctuation(normalised[cursor])
                ):
                    cursor += 1
            if cursor > start:
                merged.append(_span_word(text, origin, start, cursor, value))
            else:
                merged.append(WordAttribution(spelled, value))
            continue
        found = normalised.find(spelled, cursor)
        if found < 0:
            merged.append(WordAttribution(spelled.removeprefix(CONTINUATION), value))
            continue
        cursor = found + len(spelled)
        merged.append(_span_word(text, origin, found, cursor, value))
    return merged


def _span_word(
    text: str, origin: Sequence[int], start: int, end: int, value: float
) -> WordAttribution:
    first, last = origin[start], origin[end - 1] + 1
    return WordAttribution(text[first:last], value, first, last)


def top_words(words: Sequence[WordAttribution], count: int) -> tuple[WordAttribution, ...]:
    """The ``count`` words with the largest absolute attribution, largest first (stable)."""
    ranked = sorted(range(len(words)), key=lambda i: (-abs(words[i].attribution), i))
    return tuple(words[i] for i in ranked[:count])


# The neighbour index -----------------------------------------------------------------------


def sample_for_index(
    texts: Sequence[str], labels: Sequence[str], cap: int, seed: int = 0
) -> list[int]:
    """Indices of at most ``cap`` examples, stratified by label, the same every time.

    Each label keeps a share of the cap proportional to its count (at least one example
    while the cap allows), drawn with a seeded generator; the result is sorted.
    """
    if len(texts) != len(labels):
        raise ValueError("texts and labels differ in length")
    if cap <= 0:
        return []
    if len(texts) <= cap:
        return list(range(len(texts)))
    by_label: dict[str, list[int]] = {}
    for i, label in enumerate(labels):
        by_label.setdefault(label, []).append(i)
    names = sorted(by_label)
    exact = {name: cap * len(by_label[name]) / len(texts) for name in names}
    quotas = {name: max(1, math.floor(exact[name])) for name in names}
    by_remainder = sorted(names, key=lambda n: (-(exact[n] - math.floor(exact[n])), n))
    for name in by_remainder[: max(0, cap - sum(quotas.values()))]:
        quotas[name] += 1
    while sum(quotas.values()) > cap:  # the one-per-label floor overshot: trim the largest
        largest = max(names, key=lambda n: (quotas[n], n))
        quotas[largest] -= 1
    rng = np.random.default_rng(seed)
    chosen: list[int] = []
    for name in names:
        members = by_label[name]
        picked = rng.choice(len(members), size=quotas[name], replace=False)
        chosen += [members[int(i)] for i in picked]
    return sorted(chosen)


def normalise_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


def write_neighbour_index(
    directory: Path, embeddings: np.ndarray, texts: Sequence[str], labels: Sequence[str]
) -> None:
    """Write the index files of an artifact (before its manifest, so they are hashed)."""
    if not (len(embeddings) == len(texts) == len(labels)):
        raise ValueError("embeddings, texts and labels differ in length")
    vectors = normalise_rows(np.asarray(embeddings, dtype=np.float32)).astype(np.float16)
    np.save(directory / NEIGHBOUR_VECTORS_FILE, vectors, allow_pickle=False)
    with (directory / NEIGHBOUR_EXAMPLES_FILE).open("w", encoding="utf-8") as handle:
        for text, label in zip(texts, labels, strict=True):
            handle.write(json.dumps({"text": text, "label": label}, ensure_ascii=False) + "\n")


class NeighbourIndex:
    """An artifact's labelled examples and their unit-length embeddings."""

    def __init__(self, vectors: np.ndarray, texts: Sequence[str], labels: Sequence[str]) -> None:
        self._vectors = np.asarray(vectors, dtype=np.float32)
        self._texts = list(texts)
        self._labels = list(labels)

    def __len__(self) -> int:
        return len(self._texts)

    @classmethod
    def load(cls, directory: Path) -> NeighbourIndex | None:
        """The index of an artifact; None when it was exported without one.

        Raises:
            ExplainError: The files are there but unreadable or inconsistent.
        """
        vectors_path = directory / NEIGHBOUR_VECTORS_FILE
        examples_path = directory / NEIGHBOUR_EXAMPLES_FILE
        if not vectors_path.is_file():
            return None
        try:
            vectors = np.load(vectors_path, allow_pickle=False)
            rows = [json.loads(line) for line in examples_path.read_text("utf-8").splitlines()]
            texts = [str(row["text"]) for row in rows]
            labels = [str(row["label"]) for row in rows]
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise ExplainError(f"the neighbour index in {directory} is unreadable: {exc}") from exc
        if vectors.ndim != 2 or len(vectors) != len(texts):
            raise ExplainError(f"the neighbour index in {directory} is inconsistent")
        return cls(vectors, texts, labels)

    def nearest(self, embedding: np.ndarray, count: int) -> tuple[Neighbour, ...]:
        """The ``count`` examples most similar to ``embedding`` (cosine), most similar first."""
        if count <= 0 or not self._texts:
            return ()
        query = normalise_rows(np.asarray(embedding, dtype=np.float32).reshape(1, -1))[0]
        similarity = self._vectors @ query
        count = min(count, len(similarity))
        best = np.argpartition(-similarity, count - 1)[:count]
        best = best[np.argsort(-similarity[best], kind="stable")]
        return tuple(Neighbour(self._texts[i], self._labels[i], float(similarity[i])) for i in best)


# Running the model's explain signature ------------------------------------------------------


class _IndexCache:
    """Loads an artifact's index once, on the first explanation."""

    def __init__(self, directory: Path) -> None:
        self._directory = directory
        self._lock = threading.Lock()
        self._loaded = False
        self._index: NeighbourIndex | None = None

    def get(self) -> NeighbourIndex | None:
        with self._lock:
            if not self._loaded:
                self._index = NeighbourIndex.load(self._directory)
                self._loaded = True
            return self._index


def explain_with_signature(
    signature: Any,
    text: str,
    options: ExplainOptions,
    *,
    task: str,
    version: str,
    labels: Sequence[str],
    max_seq_length: int,
    index: NeighbourIndex | None,
) -> Explanation:
    """Run an exported ``explain`` signature on one text and build its explanation."""
    from trainer.tf_runtime import tf

    outputs = signature(
        text=tf.constant([text]),
        steps=tf.constant(options.steps, tf.int32),
        token_budget=tf.constant(options.token_budget, tf.int32),
    )
    tokens = [t.decode("utf-8", "replace") for t in outputs["tokens"].numpy().tolist()]
    attributions = outputs["attributions"].numpy().astype(np.float64)
    probabilities = outputs["probabilities"].numpy()
    baseline = outputs["baseline_probabilities"].numpy()
    target = int(probabilities.argmax())
    words = merge_wordpieces(text, tokens, attributions.tolist())
    log_odds = float(outputs["log_odds"].numpy())
    baseline_log_odds = float(outputs["baseline_log_odds"].numpy())
    return Explanation(
        task=task,
        model_version=version,
        label=labels[target],
        probability=float(probabilities[target]),
        words=tuple(words),
        top=top_words(words, options.top_words),
        neighbours=index.nearest(outputs["embedding"].numpy(), options.neighbours)
        if index is not None
        else (),
        baseline_probability=float(baseline[target]),
        log_odds=log_odds,
        baseline_log_odds=baseline_log_odds,
        completeness_gap=float(attributions.sum()) - (log_odds - baseline_log_odds),
        steps=int(outputs["steps"].numpy()),
        truncated=int(outputs["num_tokens"].numpy()) > max_seq_length,
    )


def index_cache(directory: Path) -> _IndexCache:
    return _IndexCache(directory)
