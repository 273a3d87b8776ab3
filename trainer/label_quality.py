"""The rules of the label check: confident learning, annotator flags, agreement.

**Suspects (confident learning).** Each example of the check (a seeded sample of seed/import
labels plus every human label) gets out-of-fold class probabilities from a logistic
regression on the production model's frozen pooled embeddings (k stratified folds: no
example is scored by a model that saw it). A human label is scored by a model fitted without
*any* of its annotator's labels (leave-one-annotator-out) when two or more annotators are
checked, so a moderator who labels systematically wrong cannot teach the judge their own
pattern. Per class ``j`` the threshold
``t_j`` is the mean out-of-fold probability of ``j`` over the examples labelled ``j`` (the
model's typical confidence in that class). A checked label ``i`` is a *suspect* when the
model is not confident in it (``p_i < t_i``) but confident in another class (some ``j != i``
with ``p_j >= t_j``; the suggested label is the likeliest such ``j``): the off-diagonal of
cleanlab's confident joint. Only moderators' corrections and appeal decisions are judged;
seed rows and admins' labels inform the model but are never suspects.

**Flagged annotators.** With ``n`` checked corrections of which ``s`` are suspect, and the
others' pooled counts ``n_o``, ``s_o`` (their rate smoothed as ``(s_o + 0.5) / (n_o + 1)``
so that a perfect peer group does not make every single suspect damning), an annotator is
flagged when ``n >= flag_min_corrections``, ``s / n >= flag_ratio x`` that rate, and the
one-sided binomial test ``P(X >= s | n, rate) < flag_p_value``. An annotator with no peers
(no other annotator in the check) is never flagged.

**Agreement with other moderators** is Cohen's kappa over the texts an annotator and another
moderator both labelled (each one's latest label), pooled over all their partners.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from trainer.options import QualityOptions


@dataclass(frozen=True)
class ConfidentLearning:
    """Out-of-fold probabilities and the verdict per example.

    Attributes:
        probabilities: [n, classes] out-of-fold probabilities.
        thresholds: Per class, the mean probability over examples labelled with it.
        issue: Per example, True when its label is a suspect (see the module docstring).
        suggested: Per example, the index of the likeliest confident other class (-1: none).
        folds: Folds actually used.
    """

    probabilities: np.ndarray
    thresholds: np.ndarray
    issue: np.ndarray
    suggested: np.ndarray
    folds: int


def out_of_fold_probabilities(
    embeddings: np.ndarray,
    given: np.ndarray,
    classes: int,
    *,
    folds: int,
    seed: int,
    groups: Sequence[str | None] | None = None,
) -> tuple[np.ndarray, int]:
    """Class probabilities of each row from a logistic regression fitted on the other folds.

    Args:
        embeddings: [n, d] features.
        given: [n] class indices; every present class needs at least 2 rows.
        classes: Number of classes (absent ones get probability 0).
        folds: Wanted folds (fewer when the smallest class is smaller).
        seed: Seeds the fold assignment.
        groups: Per row, its annotator (None: a seed/import row). A grouped row is then
            scored by a model fitted without any row of its group, so an annotator's own
            labels never vouch for each other (a systematic swap is judged by everyone
            else's labels). Ungrouped rows keep their k-fold probabilities.

    Returns:
        The [n, classes] probabilities and the folds used.
    """
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import StratifiedKFold
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    counts = np.bincount(given, minlength=classes)
    present = counts[counts > 0]
    k = int(min(folds, present.min()))
    if k < 2 or len(present) < 2:
        raise ValueError("need two classes with at least two examples each")
    out = np.zeros((len(given), classes), dtype=np.float64)
    splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    for train, test in splitter.split(embeddings, given):
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, C=1.0))
        model.fit(embeddings[train], given[train])
        fitted = model.classes_
        out[np.ix_(test, fitted)] = model.predict_proba(embeddings[test])
    for group in sorted({g for g in groups or () if g is not None}):
        mine = np.array([g == group for g in groups or ()])
        rest = ~mine
        if len(np.unique(given[rest])) < 2:
            continue  # nothing else to judge them by: their k-fold probabilities stand
        model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000, C=1.0))
        model.fit(embeddings[rest], given[rest])
        out[mine] = 0.0
        out[np.ix_(np.flatnonzero(mine), model.classes_)] = model.predict_proba(embeddings[mine])
    return out, k


def confident_learning(probabilities: np.ndarray, given: np.ndarray) -> tuple[np.ndarray, ...]:
    """The confident-learning verdict (module docstring) on out-of-fold probabilities.

    Returns:
        ``(thresholds, issue, suggested)``.
    """
    n, classes = probabilities.shape
    thresholds = np.full(classes, np.inf)
    for j in range(classes):
        mine = given == j
        if mine.any():
            thresholds[j] = probabilities[mine, j].mean()
    confident = probabilities >= thresholds[None, :]
    rows = np.arange(n)
    confident_in_given = confident[rows, given]
    others = confident.copy()
    others[rows, given] = False
    masked = np.where(others, probabilities, -1.0)
    suggested = np.where(others.any(axis=1), masked.argmax(axis=1), -1)
    issue = (~confident_in_given) & (suggested >= 0)
    return thresholds, issue, suggested


def find_label_issues(
    embeddings: np.ndarray,
    given: np.ndarray,
    classes: int,
    *,
    folds: int,
    seed: int,
    groups: Sequence[str | None] | None = None,
) -> ConfidentLearning:
    """Out-of-fold probabilities and the confident-learning verdict for every row (``groups``:
    see :func:`out_of_fold_probabilities`)."""
    probabilities, used = out_of_fold_probabilities(
        embeddings, given, classes, folds=folds, seed=seed, groups=groups
    )
    thresholds, issue, suggested = confident_learning(probabilities, given)
    return ConfidentLearning(probabilities, thresholds, issue, suggested, used)


@dataclass(frozen=True)
class FlagVerdict:
    """One annotator's suspect rate against their peers' (see the module docstring)."""

    annotator: str
    corrections: int
    suspects: int
    peer_rate: float
    p_value: float
    flagged: bool

    @property
    def rate(self) -> float:
        return self.suspects / self.corrections if self.corrections else 0.0


def flag_annotators(
    counts: Mapping[str, tuple[int, int]], options: QualityOptions
) -> list[FlagVerdict]:
    """Judge each annotator's ``(corrections, suspects)`` against the pooled others'."""
    from scipy.stats import binomtest

    total_n = sum(n for n, _ in counts.values())
    total_s = sum(s for _, s in counts.values())
    verdicts = []
    for annotator, (n, s) in sorted(counts.items()):
        peers_n, peers_s = total_n - n, total_s - s
        has_peers = len(counts) > 1 and peers_n > 0
        peer_rate = (peers_s + 0.5) / (peers_n + 1) if has_peers else float("nan")
        p_value = 1.0
        if has_peers and n > 0:
            p_value = float(binomtest(s, n, min(peer_rate, 1.0), alternative="greater").pvalue)
        flagged = (
            has_peers
            and n >= options.flag_min_corrections
            and s / n >= options.flag_ratio * peer_rate
            and p_value < options.flag_p_value
        )
        verdicts.append(FlagVerdict(annotator, n, s, peer_rate, p_value, bool(flagged)))
    return verdicts


def cohen_kappa(pairs: Sequence[tuple[str, str]]) -> float | None:
    """Cohen's kappa of paired labels; None without pairs, 1.0 for perfect agreement on one
    label (chance agreement 1)."""
    if not pairs:
        return None
    n = len(pairs)
    observed = sum(a == b for a, b in pairs) / n
    left = Counter(a for a, _ in pairs)
    right = Counter(b for _, b in pairs)
    expected = sum(left[label] * right.get(label, 0) for label in left) / (n * n)
    if expected >= 1.0:
        return 1.0 if observed >= 1.0 else 0.0
    return (observed - expected) / (1.0 - expected)


def pairwise_agreement(labels_by_text: Mapping[str, Mapping[str, str]]) -> dict[str, list]:
    """Per annotator, the (their label, other's label) pairs over texts both labelled."""
    pairs: dict[str, list[tuple[str, str]]] = {}
    for by_annotator in labels_by_text.values():
        if len(by_annotator) < 2:
            continue
        for annotator, label in by_annotator.items():
            for other, theirs in by_annotator.items():
                if other != annotator:
                    pairs.setdefault(annotator, []).append((label, theirs))
    return pairs
