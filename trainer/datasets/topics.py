"""Which of the six CrowdFlower jobs (topics) each row of the sentiment corpus came from."""

from __future__ import annotations

import itertools
import re
from collections.abc import Mapping, Sequence

from trainer.datasets.examples import DatasetError

TOPIC_ORDER: tuple[str, ...] = (
    "self_driving_cars",
    "airline",
    "coachella",
    "deflategate",
    "apple",
    "claritin",
)
"""The six CrowdFlower jobs in the order the source file concatenates them per label."""

TOPIC_KEYWORDS: Mapping[str, str] = {
    "self_driving_cars": (
        r"(?i)driverless|self[- ]?driving|autonomous|google car|robot car|robo-?car"
    ),
    "airline": (r"(?i)@(?:united|americanair|usairways|southwestair|jetblue|virginamerica)\b"),
    "deflategate": r"(?i)deflat|inflat|patriots|brady|belichick|football",
    "apple": r"(?i)apple|iphone|ipad|\bmac|itunes|\bios|aapl|ipod|tim ?cook",
}
"""Evidence for the two job boundaries that the confidence column does not show."""


def _changepoint(texts: Sequence[str], first: str, second: str) -> int:
    """Index splitting ``texts`` into a ``first`` job then a ``second`` job.

    Maximises the keyword hits of ``first`` before the split plus those of ``second``
    after it; the earliest such index wins.
    """
    first_re, second_re = re.compile(TOPIC_KEYWORDS[first]), re.compile(TOPIC_KEYWORDS[second])
    first_hits = [1 if first_re.search(t) else 0 for t in texts]
    second_hits = [1 if second_re.search(t) else 0 for t in texts]
    best_index, best_score = 0, sum(second_hits)
    score = best_score
    for index in range(len(texts)):
        score += first_hits[index] - second_hits[index]
        if score > best_score:
            best_index, best_score = index + 1, score
    return best_index


def assign_topics(
    labels: Sequence[str], has_confidence: Sequence[bool], texts: Sequence[str]
) -> list[str]:
    """Recover which CrowdFlower job each row of the aggregated corpus came from.

    The source concatenates, within each label block, the jobs in :data:`TOPIC_ORDER`.
    Coachella and Claritin have no confidence column, so each label block reads
    [confidence | none | confidence | none]. The two stretches with confidence each hold two
    jobs (self-driving cars then airline; DeflateGate then Apple), split where the jobs'
    keywords change over (:func:`_changepoint`).

    Args:
        labels: Label per row, in file order.
        has_confidence: Whether each row has a confidence value.
        texts: Raw text per row.

    Returns:
        The topic per row.

    Raises:
        DatasetError: The file does not have this layout.
    """
    topics: list[str] = []
    start = 0
    while start < len(labels):
        end = start
        while end < len(labels) and labels[end] == labels[start]:
            end += 1
        runs = [
            (flag, sum(1 for _ in group))
            for flag, group in itertools.groupby(has_confidence[start:end])
        ]
        if [flag for flag, _ in runs] != [True, False, True, False]:
            raise DatasetError(
                f"sentiment corpus: label block {labels[start]!r} does not have the expected "
                "job layout (confidence, none, confidence, none)"
            )
        offset = start
        for (_has_confidence, size), jobs in zip(
            runs,
            [
                ("self_driving_cars", "airline"),
                ("coachella",),
                ("deflategate", "apple"),
                ("claritin",),
            ],
            strict=True,
        ):
            if len(jobs) == 1:
                topics.extend([jobs[0]] * size)
            else:
                cut = _changepoint(texts[offset : offset + size], jobs[0], jobs[1])
                topics.extend([jobs[0]] * cut + [jobs[1]] * (size - cut))
            offset += size
        start = end
    return topics
