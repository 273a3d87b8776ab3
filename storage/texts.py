"""Text identity: normalisation, the content hash and the stable train/eval side.

Each labelled text is assigned to ``train`` or ``eval`` once, by a hash of its
normalised text, so duplicates land together and an example never changes sides.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from typing import Literal

DEFAULT_EVAL_FRACTION = 0.2
_WHITESPACE = re.compile(r"\s+")
# PostgreSQL text cannot hold NUL, and no UTF-8 database can hold a lone surrogate (JSON can
# carry both, as \u0000 and \ud800): both are stored as U+FFFD, on every backend alike.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
REPLACEMENT_CHARACTER = "\ufffd"


def storable_text(text: str) -> str:
    """The text as the database keeps it: NUL and lone surrogates become U+FFFD."""
    return _UNSTORABLE.sub(REPLACEMENT_CHARACTER, text)


def normalise_text(text: str) -> str:
    """NFKC, case-folded, whitespace collapsed and stripped (of the storable text)."""
    text = storable_text(text)
    return _WHITESPACE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


def text_hash(text: str) -> str:
    """sha256 (hex) of the normalised text: the identity of a labelled example."""
    return hashlib.sha256(normalise_text(text).encode("utf-8")).hexdigest()


def split_for_hash(
    hash_hex: str, eval_fraction: float = DEFAULT_EVAL_FRACTION
) -> Literal["train", "eval"]:
    """``eval`` when the hash's first 8 bytes, as a fraction of 2**64, are below
    ``eval_fraction``; else ``train``. Raising the fraction only moves texts to eval."""
    if not 0.0 <= eval_fraction <= 1.0:
        raise ValueError(f"eval_fraction must be between 0 and 1, got {eval_fraction!r}")
    position = int(hash_hex[:16], 16) / 2**64
    return "eval" if position < eval_fraction else "train"


def split_of(text: str, eval_fraction: float = DEFAULT_EVAL_FRACTION) -> Literal["train", "eval"]:
    """The stable side (``train`` or ``eval``) of a text."""
    return split_for_hash(text_hash(text), eval_fraction)
