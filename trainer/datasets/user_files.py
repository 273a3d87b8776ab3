"""Reading users' labelled CSV and JSONL files.

:func:`read_labelled_file` collects every bad row with its line number instead of stopping
at the first.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from storage.texts import normalise_text
from trainer.datasets.examples import DatasetError, Example

MAX_TEXT_CHARS = 10_000


@dataclass(frozen=True)
class RowError:
    """A row of a user's file that was skipped.

    Attributes:
        line: 1-based line number in the file where the row starts.
        message: What is wrong with it, for the user.
    """

    line: int
    message: str


@dataclass(frozen=True)
class ReadResult:
    """What :func:`read_labelled_file` found.

    Attributes:
        examples: The valid rows, in file order, one per distinct normalised text.
        errors: The rows that were skipped, with line numbers.
        duplicates_merged: Rows dropped because an earlier row had the same normalised
            text and the same label.
    """

    examples: list[Example]
    errors: list[RowError]
    duplicates_merged: int


_CSV_SUFFIXES = (".csv",)
_JSONL_SUFFIXES = (".jsonl", ".ndjson")


@dataclass
class _Collector:
    labels: Mapping[str, str]
    expected: str
    examples: list[Example] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)
    duplicates: int = 0
    first_seen: dict[str, tuple[int, str]] = field(default_factory=dict)

    def add(self, line: int, text: str, label: str) -> None:
        text = text.strip()
        if not text:
            self.errors.append(RowError(line, "empty text"))
            return
        if len(text) > MAX_TEXT_CHARS:
            self.errors.append(
                RowError(
                    line,
                    f"text too long ({len(text):,} characters; the limit is {MAX_TEXT_CHARS:,})",
                )
            )
            return
        canonical = self.labels.get(label.strip().casefold())
        if canonical is None:
            self.errors.append(
                RowError(
                    line, f"unknown label {label.strip()!r} (expected one of: {self.expected})"
                )
            )
            return
        key = normalise_text(text)
        seen = self.first_seen.get(key)
        if seen is not None:
            first_line, first_label = seen
            if first_label == canonical:
                self.duplicates += 1
            else:
                self.errors.append(
                    RowError(
                        line,
                        f"label {canonical!r} conflicts with line {first_line}, which has the "
                        f"same text labelled {first_label!r}",
                    )
                )
            return
        self.first_seen[key] = (line, canonical)
        self.examples.append(Example(text, canonical))

    def result(self) -> ReadResult:
        return ReadResult(self.examples, self.errors, self.duplicates)


def read_labelled_file(path: Path, labels: Sequence[str]) -> ReadResult:
    """Read a user's labelled examples from CSV or JSONL.

    CSV (``.csv``): UTF-8 (a BOM is fine) with a header naming ``text`` and ``label`` in
    any order; other columns are ignored. JSONL (``.jsonl``, ``.ndjson``): one
    ``{"text": ..., "label": ...}`` object per line; blank lines are skipped. Labels match
    case-insensitively after stripping. Texts are stripped. A row whose normalised text was
    seen before with the same label is merged; with another label it is an error naming
    the first line. Bad rows never stop the read: each becomes a :class:`RowError`.

    Args:
        path: The file.
        labels: The task's label set.

    Returns:
        The valid examples, the errors, and how many duplicates were merged.

    Raises:
        DatasetError: The file is missing, of another type, empty, or its CSV header lacks
            ``text`` or ``label``.
    """
    suffix = path.suffix.lower()
    if suffix not in _CSV_SUFFIXES + _JSONL_SUFFIXES:
        raise DatasetError(
            f"{path.name}: unsupported file type {suffix or '(none)'!r}; use .csv (with a "
            "text,label header) or .jsonl/.ndjson (one JSON object per line)"
        )
    try:
        raw = path.read_bytes()
    except FileNotFoundError as exc:
        raise DatasetError(f"{path}: file not found") from exc
    except OSError as exc:
        raise DatasetError(f"{path}: cannot read: {exc}") from exc
    if raw.startswith(b"\xef\xbb\xbf"):
        raw = raw[3:]
    if not raw.strip():
        raise DatasetError(f"{path.name}: the file is empty")
    collector = _Collector(
        labels={label.strip().casefold(): label for label in labels},
        expected=", ".join(labels),
    )
    if suffix in _CSV_SUFFIXES:
        _read_csv(path, raw, collector)
    else:
        _read_jsonl(raw, collector)
    return collector.result()


def _has_surrogates(value: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in value)


def _read_csv(path: Path, raw: bytes, collector: _Collector) -> None:
    text = raw.decode("utf-8", errors="surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except csv.Error as exc:
        raise DatasetError(f"{path.name}: cannot read the CSV header: {exc}") from exc
    if any(_has_surrogates(name) for name in header):
        raise DatasetError(f"{path.name}: the header is not valid UTF-8; save the file as UTF-8")
    names = [name.strip().casefold() for name in header]
    missing = [column for column in ("text", "label") if column not in names]
    if missing:
        raise DatasetError(
            f"{path.name}: the header has no {' or '.join(repr(m) for m in missing)} column "
            f"(found: {', '.join(repr(h) for h in header)})"
        )
    text_at, label_at = names.index("text"), names.index("label")
    records: Iterator[list[str]] = iter(reader)
    while True:
        line = reader.line_num + 1
        try:
            record = next(records)
        except StopIteration:
            break
        except csv.Error as exc:
            collector.errors.append(RowError(line, f"malformed CSV: {exc}"))
            break
        if not record or all(not value.strip() for value in record):
            if record and len(record) > 1:
                collector.errors.append(RowError(line, "empty text"))
            continue
        if any(_has_surrogates(value) for value in record):
            collector.errors.append(RowError(line, "not valid UTF-8"))
            continue
        missing_here = [
            name for name, at in (("text", text_at), ("label", label_at)) if at >= len(record)
        ]
        if missing_here:
            collector.errors.append(
                RowError(line, f"missing column {' and '.join(repr(m) for m in missing_here)}")
            )
            continue
        collector.add(line, record[text_at], record[label_at])


def _read_jsonl(raw: bytes, collector: _Collector) -> None:
    for number, line_bytes in enumerate(raw.split(b"\n"), start=1):
        if not line_bytes.strip():
            continue
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError:
            collector.errors.append(RowError(number, "not valid UTF-8"))
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            collector.errors.append(RowError(number, f"invalid JSON: {exc.msg}"))
            continue
        if not isinstance(record, dict):
            collector.errors.append(RowError(number, "expected a JSON object with text and label"))
            continue
        missing = [key for key in ("text", "label") if key not in record]
        if missing:
            collector.errors.append(
                RowError(number, f"missing column {' and '.join(repr(m) for m in missing)}")
            )
            continue
        text, label = record["text"], record["label"]
        if not isinstance(text, str) or not isinstance(label, str):
            collector.errors.append(RowError(number, "'text' and 'label' must be strings"))
            continue
        collector.add(number, text, label)
