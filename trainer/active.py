"""Choosing what to ask moderators: uncertainty, diversity and near-duplicates (numpy only).

:func:`choose` takes candidates (a channel message's text, its latest calibrated
probabilities for a task, and optionally a drift flag) and, for the ``active`` strategy, a
row of the encoder's pooled embedding per candidate, and returns ``k`` items, each with a
``reason`` a moderator can read. The rule, in order:

1. **Margin.** A candidate's uncertainty is its margin: the top calibrated probability minus
   the second (0: a coin toss, 1: certain).
2. **Near-duplicates collapse.** Candidates are visited least-sure first; one whose
   normalised text (:func:`storage.texts.normalise_text`) equals an earlier one's, or whose
   L2-normalised embedding has cosine >= ``duplicate_cosine`` (default 0.95) with an earlier
   group's representative, joins that group. Each group is one item (its least-sure member,
   or its drift-flagged one), carrying the group size and the other members' ids.
3. **Drift-flagged items lead**, in the order given, whatever the strategy.
4. The rest of the ``k`` by strategy:

   - ``uncertainty``: smallest margin first (ties: lower top probability, then input order).
   - ``random``: a uniform sample, reproducible with ``seed``.
   - ``active`` (the default): the ``pool`` least-sure groups, where
     ``pool = min(groups, max(pool_factor * k, min_pool))`` (defaults 5 and 50), then greedy
     k-center over their L2-normalised embeddings, weighted by uncertainty. The chosen set
     starts with the drift-flagged items (or, if there are none, the least-sure group).
     Each next pick is the pool member with the highest ``(1 - margin) * d``, where ``d`` is
     its Euclidean distance to the nearest chosen item (between 0 and 2 on the unit
     sphere), so an unsure message far from everything chosen wins, and a slightly surer
     one from an unasked region beats a coin toss next to one already asked. Without
     embeddings it is ``uncertainty`` (the reason says so).

Reasons read ``drift-flagged``, ``uncertain: margin 0.04``, ``diverse: far from 12 chosen
(distance 0.83), margin 0.12``, ``random (seed 0)``; ``, N near-duplicates`` is appended to
a group of more than one.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from storage.texts import normalise_text

DEFAULT_DUPLICATE_COSINE = 0.95
DEFAULT_POOL_FACTOR = 5
DEFAULT_MIN_POOL = 50
NO_EMBEDDINGS = "no embeddings: uncertainty only"


class Strategy(enum.StrEnum):
    """How the queue picks after the drift-flagged items."""

    ACTIVE = "active"
    UNCERTAINTY = "uncertainty"
    RANDOM = "random"


@dataclass(frozen=True)
class Candidate:
    """A message that could be asked about.

    Attributes:
        message_id: The stored channel message.
        text: Its text.
        probabilities: Its latest calibrated probability per label for the task.
        flagged: Why it was flagged for review (``drift``); None: not flagged.
    """

    message_id: int
    text: str
    probabilities: Mapping[str, float]
    flagged: str | None = None

    @property
    def margin(self) -> float:
        return margin_of(self.probabilities)

    @property
    def top_probability(self) -> float:
        return max(self.probabilities.values(), default=0.0)


@dataclass(frozen=True)
class Choice:
    """One queue item: the candidate asked about, why, and the near-duplicates it stands for.

    Attributes:
        candidate: The candidate (its group's representative).
        index: Its position in the candidates given to :func:`choose`.
        reason: Why it was chosen, for people.
        duplicate_ids: The message ids of the other members of its group.
    """

    candidate: Candidate
    index: int
    reason: str
    duplicate_ids: tuple[int, ...] = ()

    @property
    def group_size(self) -> int:
        return 1 + len(self.duplicate_ids)


def margin_of(probabilities: Mapping[str, float]) -> float:
    """The top probability minus the second highest (0 with fewer than one label)."""
    ranked = sorted((float(p) for p in probabilities.values()), reverse=True)
    if not ranked:
        return 0.0
    return ranked[0] - (ranked[1] if len(ranked) > 1 else 0.0)


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero), as float32."""
    vectors = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1.0)


def group_duplicates(
    candidates: Sequence[Candidate],
    embeddings: np.ndarray | None = None,
    *,
    duplicate_cosine: float = DEFAULT_DUPLICATE_COSINE,
) -> list[list[int]]:
    """Near-duplicate groups (candidate indices), each led by its representative.

    Candidates are visited drift-flagged first, then least sure first; each joins the first
    group whose representative has the same normalised text or (with embeddings) cosine >=
    ``duplicate_cosine``, else starts a group. Groups come out in the visiting order.
    """
    flagged = [i for i in range(len(candidates)) if candidates[i].flagged is not None]
    unsure = sorted(
        (i for i in range(len(candidates)) if candidates[i].flagged is None),
        key=lambda i: (candidates[i].margin, -candidates[i].top_probability, i),
    )
    order = flagged + unsure  # flagged items keep their given order
    units = unit_rows(embeddings) if embeddings is not None and len(candidates) else None
    leader_rows = None if units is None else np.zeros_like(units)
    by_text: dict[str, int] = {}
    groups: list[list[int]] = []
    for i in order:
        key = normalise_text(candidates[i].text)
        group = by_text.get(key)
        if group is None and units is not None and leader_rows is not None and groups:
            similarity = leader_rows[: len(groups)] @ units[i]
            best = int(np.argmax(similarity))
            if similarity[best] >= duplicate_cosine:
                group = best
        if group is None:
            group = len(groups)
            groups.append([])
            if units is not None and leader_rows is not None:
                leader_rows[group] = units[i]
        groups[group].append(i)
        by_text.setdefault(key, group)
    return groups


def choose(
    candidates: Sequence[Candidate],
    k: int,
    *,
    strategy: Strategy | str = Strategy.ACTIVE,
    embeddings: np.ndarray | None = None,
    seed: int = 0,
    duplicate_cosine: float = DEFAULT_DUPLICATE_COSINE,
    pool_factor: int = DEFAULT_POOL_FACTOR,
    min_pool: int = DEFAULT_MIN_POOL,
    no_embeddings_reason: str = NO_EMBEDDINGS,
) -> list[Choice]:
    """Up to ``k`` items to ask about, drift-flagged first (see the module's rule).

    Args:
        candidates: The candidate messages.
        k: How many items.
        strategy: ``active``, ``uncertainty`` or ``random``.
        embeddings: One row per candidate (any scale); required for diversity and for
            cosine near-duplicates. Without them ``active`` falls back to uncertainty.
        seed: The ``random`` strategy's seed.
        duplicate_cosine: Cosine at or above which two candidates are one item.
        pool_factor: ``active`` looks at the ``pool_factor * k`` least-sure groups ...
        min_pool: ... but at least this many.
        no_embeddings_reason: Appended to reasons when ``active`` had no embeddings.

    Returns:
        At most ``k`` choices, in the order to ask them.

    Raises:
        ValueError: A bad argument (unknown strategy, embeddings of the wrong shape).
    """
    strategy = Strategy(strategy)
    if k < 0:
        raise ValueError(f"k must be at least 0, got {k}")
    if not 0.0 < duplicate_cosine <= 1.0:
        raise ValueError(f"duplicate_cosine must be in (0, 1], got {duplicate_cosine}")
    if embeddings is not None:
        embeddings = np.asarray(embeddings, dtype=np.float32)
        if embeddings.ndim != 2 or embeddings.shape[0] != len(candidates):
            raise ValueError(
                f"embeddings must have one row per candidate ({len(candidates)}), got shape "
                f"{embeddings.shape}"
            )
    if k == 0 or not candidates:
        return []
    groups = group_duplicates(candidates, embeddings, duplicate_cosine=duplicate_cosine)
    leaders = [group[0] for group in groups]
    members = {group[0]: group[1:] for group in groups}

    def item(i: int, reason: str) -> Choice:
        others = tuple(candidates[j].message_id for j in members[i])
        if others:
            reason += f", {len(others)} near-duplicate{'s' if len(others) > 1 else ''}"
        return Choice(candidates[i], i, reason, others)

    flagged = [i for i in leaders if candidates[i].flagged is not None][:k]
    chosen = [item(i, f"{candidates[i].flagged}-flagged") for i in flagged]
    rest = [i for i in leaders if candidates[i].flagged is None]
    want = k - len(chosen)
    if want <= 0 or not rest:
        return chosen
    if strategy is Strategy.RANDOM:
        picks = np.random.default_rng(seed).permutation(len(rest))[:want]
        return chosen + [item(rest[int(p)], f"random (seed {seed})") for p in picks]
    # ``rest`` is least sure first already (the grouping visited it so).
    if strategy is Strategy.UNCERTAINTY or embeddings is None:
        note = f" ({no_embeddings_reason})" if strategy is Strategy.ACTIVE else ""
        return chosen + [
            item(i, f"uncertain: margin {candidates[i].margin:.2f}{note}") for i in rest[:want]
        ]
    pool = rest[: min(len(rest), max(pool_factor * k, min_pool))]
    return chosen + [
        item(i, reason)
        for i, reason in _k_center(candidates, unit_rows(embeddings), flagged, pool, want)
    ]


def _k_center(
    candidates: Sequence[Candidate],
    units: np.ndarray,
    seeds: Sequence[int],
    pool: Sequence[int],
    want: int,
) -> list[tuple[int, str]]:
    """Greedy uncertainty-weighted k-center over ``pool``, starting from ``seeds``."""
    weights = np.array([1.0 - candidates[i].margin for i in pool], dtype=np.float64)
    vectors = units[list(pool)]
    picked: list[tuple[int, str]] = []
    available = np.ones(len(pool), dtype=bool)
    nearest = np.full(len(pool), np.inf)
    for i in seeds:
        nearest = np.minimum(nearest, np.linalg.norm(vectors - units[i], axis=1))
    centres = len(seeds)
    if centres == 0:  # the least-sure member opens
        available[0] = False
        picked.append((pool[0], f"uncertain: margin {candidates[pool[0]].margin:.2f}"))
        nearest = np.linalg.norm(vectors - vectors[0], axis=1)
        centres = 1
    while len(picked) < want and available.any():
        score = np.where(available, weights * nearest, -np.inf)
        best = int(np.argmax(score))
        i = pool[best]
        picked.append(
            (
                i,
                f"diverse: far from {centres} chosen (distance {nearest[best]:.2f}), "
                f"margin {candidates[i].margin:.2f}",
            )
        )
        available[best] = False
        nearest = np.minimum(nearest, np.linalg.norm(vectors - vectors[best], axis=1))
        centres += 1
    return picked
