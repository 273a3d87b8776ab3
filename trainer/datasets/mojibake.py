"""Repairing the layers of mojibake in the CrowdFlower tweets.

The jobs were passed through a tool that read bytes as Windows-1252 and saved them as Mac OS
Roman, several times over (layer "A"), some after the UTF-8 was itself read as Windows-1252
and saved as UTF-8 again (layer "B"). Characters Mac OS Roman lacks became "_" (lost), and
Windows-1252's five undefined bytes passed through unchanged (the rule that lets the most
runs decode). A chain lists the layers to undo, outermost first.
"""

from __future__ import annotations

import functools
import itertools
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

_MOJIBAKE_RUN = re.compile(r"_*[^\x00-\x7f][^\x00-\x5e\x60-\x7f]*")
_LEADING_JOINERS = "\ufe0e\ufe0f\u200d"

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
