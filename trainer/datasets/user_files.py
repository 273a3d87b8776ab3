"""Reading users' CSV and JSONL files: labelled examples, or bare texts (messages).

:func:`read_labelled_file` and :func:`read_text_file` collect every bad row with its line
number instead of stopping at the first.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Callable, Iterator, Mapping, Sequence
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
        problem = _text_problem(text)
        if problem:
            self.errors.append(RowError(line, problem))
            return
        text = text.strip()
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


@dataclass(frozen=True)
class TextReadResult:
    """What :func:`read_text_file` found.

    Attributes:
        texts: The valid rows' texts, in file order (duplicates kept: two messages may say
            the same thing).
        errors: The rows that were skipped, with line numbers.
    """

    texts: list[str]
    errors: list[RowError]


@dataclass
class _TextCollector:
    texts: list[str] = field(default_factory=list)
    errors: list[RowError] = field(default_factory=list)

    def add(self, line: int, text: str) -> None:
        problem = _text_problem(text)
        if problem:
            self.errors.append(RowError(line, problem))
        else:
            self.texts.append(text.strip())


def _text_problem(text: str) -> str | None:
    text = text.strip()
    if not text:
        return "empty text"
    if len(text) > MAX_TEXT_CHARS:
        return f"text too long ({len(text):,} characters; the limit is {MAX_TEXT_CHARS:,})"
    return None


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
    raw, is_csv = _read_bytes(path, "text,label")
    collector = _Collector(
        labels={label.strip().casefold(): label for label in labels},
        expected=", ".join(labels),
    )
    columns = ("text", "label")
    if is_csv:
        _read_csv(path, raw, columns, collector.add, collector.errors)
    else:
        _read_jsonl(raw, columns, collector.add, collector.errors)
    return collector.result()


def read_text_file(path: Path) -> TextReadResult:
    """Read texts (e.g. channel messages to import) from CSV or JSONL.

    As :func:`read_labelled_file`, but only a ``text`` column (or key) is needed; any other,
    a label included, is ignored. Texts are stripped; duplicates are kept.

    Raises:
        DatasetError: The file is missing, of another type, empty, or its CSV header lacks
            ``text``.
    """
    raw, is_csv = _read_bytes(path, "text")
    collector = _TextCollector()
    if is_csv:
        _read_csv(path, raw, ("text",), collector.add, collector.errors)
    else:
        _read_jsonl(raw, ("text",), collector.add, collector.errors)
    return TextReadResult(collector.texts, collector.errors)


def _read_bytes(path: Path, header: str) -> tuple[bytes, bool]:
    """The file's bytes without a BOM, and whether it is CSV (else JSONL)."""
    suffix = path.suffix.lower()
    if suffix not in _CSV_SUFFIXES + _JSONL_SUFFIXES:
        raise DatasetError(
            f"{path.name}: unsupported file type {suffix or '(none)'!r}; use .csv (with a "
            f"{header} header) or .jsonl/.ndjson (one JSON object per line)"
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
    return raw, suffix in _CSV_SUFFIXES


def _has_surrogates(value: str) -> bool:
    return any("\udc80" <= char <= "\udcff" for char in value)


def _read_csv(
    path: Path,
    raw: bytes,
    columns: tuple[str, ...],
    add: Callable[..., None],
    errors: list[RowError],
) -> None:
    text = raw.decode("utf-8", errors="surrogateescape")
    reader = csv.reader(io.StringIO(text, newline=""))
    try:
        header = next(reader)
    except csv.Error as exc:
        raise DatasetError(f"{path.name}: cannot read the CSV header: {exc}") from exc
    if any(_has_surrogates(name) for name in header):
        raise DatasetError(f"{path.name}: the header is not valid UTF-8; save the file as UTF-8")
    names = [name.strip().casefold() for name in header]
    missing = [column for column in columns if column not in names]
    if missing:
        raise DatasetError(
            f"{path.name}: the header has no {' or '.join(repr(m) for m in missing)} column "
            f"(found: {', '.join(repr(h) for h in header)})"
        )
    positions = [(column, names.index(column)) for column in columns]
    records: Iterator[list[str]] = iter(reader)
    while True:
        line = reader.line_num + 1
        try:
            record = next(records)
        except StopIteration:
            break
        except csv.Error as exc:
            errors.append(RowError(line, f"malformed CSV: {exc}"))
            break
        if not record or all(not value.strip() for value in record):
            if record and len(record) > 1:
                errors.append(RowError(line, "empty text"))
            continue
        if any(_has_surrogates(value) for value in record):
            errors.append(RowError(line, "not valid UTF-8"))
            continue
        missing_here = [name for name, at in positions if at >= len(record)]
        if missing_here:
            errors.append(
                RowError(line, f"missing column {' and '.join(repr(m) for m in missing_here)}")
            )
            continue
        add(line, *(record[at] for _, at in positions))


def _read_jsonl(
    raw: bytes, columns: tuple[str, ...], add: Callable[..., None], errors: list[RowError]
) -> None:
    wanted = " and ".join(columns)
    for number, line_bytes in enumerate(raw.split(b"\n"), start=1):
        if not line_bytes.strip():
            continue
        try:
            line = line_bytes.decode("utf-8")
        except UnicodeDecodeError:
            errors.append(RowError(number, "not valid UTF-8"))
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            errors.append(RowError(number, f"invalid JSON: {exc.msg}"))
            continue
        if not isinstance(record, dict):
            errors.append(RowError(number, f"expected a JSON object with {wanted}"))
            continue
        missing = [key for key in columns if key not in record]
        if missing:
            errors.append(
                RowError(number, f"missing column {' and '.join(repr(m) for m in missing)}")
            )
            continue
        values = [record[key] for key in columns]
        if not all(isinstance(value, str) for value in values):
            quoted = " and ".join(f"'{key}'" for key in columns)
            errors.append(
                RowError(
                    number,
                    f"{quoted} must be strings"
                    if len(columns) > 1
                    else f"{quoted} must be a string",
                )
            )
            continue
        add(number, *values)
