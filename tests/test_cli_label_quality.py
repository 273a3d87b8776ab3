"""``bertbot review suspects|clear-suspect|label-suspect`` and ``bertbot annotators [clear]``,
in-process against a temporary home: JSON shapes, admins-only decisions, audit."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from bertbot.cli import main
from storage import annotations, audit
from storage import label_quality as quality_store
from storage.db import Database
from storage.enums import AnnotationSource

ADMIN = "U0ADMIN"


@pytest.fixture
def home(
    clean_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Path:
    monkeypatch.setenv("BERTBOT_ADMINS", ADMIN)
    monkeypatch.setenv("BERTBOT_MODERATORS", "U0MODA,U0MODB,U0ROGUE")
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    return clean_home


def _database(home: Path) -> Database:
    return Database.connect(f"sqlite:///{home / 'bertbot.db'}")


def _label(database: Database, who: str, items: list[tuple[str, str]]) -> list[int]:
    with database.begin() as session:
        return [
            annotations.add_annotation(
                session=session,
                task="sentiment",
                text=text,
                label=label,
                annotator=who,
                source=AnnotationSource.CORRECTION,
            )[0].id
            for text, label in items
        ]


def _setup(home: Path) -> list[int]:
    """Two moderators agree on 20 texts; the rogue disagrees and has two suspects, flagged."""
    database = _database(home)
    texts = [(f"text {i}", "positive" if i % 2 else "negative") for i in range(20)]
    _label(database, "U0MODA", texts)
    _label(database, "U0MODB", texts[:10])
    rogue = _label(database, "U0ROGUE", [(t, "neutral") for t, _ in texts[10:]])
    with database.begin() as session:
        quality_store.add_suspects(
            session=session,
            task="sentiment",
            run_id=None,
            items=[
                quality_store.NewSuspect(rogue[0], "confident learning", "positive", 0.1),
                quality_store.NewSuspect(rogue[1], "confident learning", "negative", 0.2),
            ],
        )
        quality_store.flag_annotator(
            session=session,
            task="sentiment",
            annotator="U0ROGUE",
            run_id=None,
            corrections=10,
            suspects=2,
            peer_rate=0.02,
            p_value=0.001,
        )
        quality_store.record_check(
            session=session,
            task="sentiment",
            run_id=None,
            ran=True,
            reason="2 of 40 correction(s) suspect",
            details={
                "annotators": {
                    "U0MODA": {"n": 20, "agree": 19, "suspects": 0},
                    "U0ROGUE": {"n": 10, "agree": 2, "suspects": 2},
                }
            },
        )
    return rogue


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code = main([*argv, "--json"])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return json.loads(captured.out)


def test_annotators_json_shape(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    _setup(home)
    rows = _json(capsys, "annotators", "--task", "sentiment")
    assert [r["annotator"] for r in rows] == ["U0MODA", "U0MODB", "U0ROGUE"]
    by = {r["annotator"]: r for r in rows}
    assert set(by["U0MODA"]) == {
        "annotator",
        "corrections",
        "kappa",
        "kappa_pairs",
        "oof_agreement",
        "suspects",
        "held",
        "suspect_rate",
        "flagged",
        "flagged_at",
    }
    assert by["U0MODB"]["kappa"] == 1.0 and by["U0MODB"]["kappa_pairs"] == 10
    assert by["U0MODA"]["oof_agreement"] == 0.95 and by["U0MODB"]["oof_agreement"] is None
    assert by["U0ROGUE"]["flagged"] is True and by["U0ROGUE"]["suspect_rate"] == 0.2
    assert by["U0ROGUE"]["kappa"] is not None and by["U0ROGUE"]["kappa"] <= 0
    assert by["U0MODA"]["flagged"] is False and by["U0MODA"]["suspects"] == 0
    lone = _json(capsys, "annotators", "--task", "spam")
    assert lone == []


def test_suspects_are_listed_and_only_admins_decide(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _setup(home)
    held = _json(capsys, "review", "suspects", "--task", "sentiment")
    assert [s["status"] for s in held] == ["held", "held"]
    assert held[0]["text"] == "text 10" and held[0]["suggested_label"] == "positive"
    first, second = held[0]["id"], held[1]["id"]

    assert main(["review", "clear-suspect", str(first), "--by", "U0MODA"]) == 1
    assert "not an admin" in capsys.readouterr().err
    cleared = _json(capsys, "review", "clear-suspect", str(first), "--by", ADMIN)
    assert cleared["status"] == "cleared" and cleared["decided_by"] == ADMIN
    assert main(["review", "clear-suspect", str(first), "--by", ADMIN]) == 1
    assert "already" in capsys.readouterr().err

    assert main(["review", "label-suspect", str(second), "--label", "nope", "--by", ADMIN]) == 1
    assert "not a sentiment label" in capsys.readouterr().err
    relabelled = _json(
        capsys, "review", "label-suspect", str(second), "--label", "negative", "--by", ADMIN
    )
    assert relabelled["status"] == "confirmed"
    assert _json(capsys, "review", "suspects", "--task", "sentiment") == []
    assert len(_json(capsys, "review", "suspects", "--task", "sentiment", "--status", "all")) == 2
    with _database(home).begin() as session:
        effective = {
            e.text: (e.label, e.source)
            for e in annotations.effective_labels(session=session, task="sentiment")
        }
        actions = [e.action for e in audit.list_audit(session=session, subject_prefix="sentiment/")]
    assert effective["text 11"] == ("negative", AnnotationSource.ADMIN)
    assert sorted(actions) == ["clear_suspect", "confirm_suspect"]
    assert main(["review", "clear-suspect", "999", "--by", ADMIN]) == 1
    assert "no suspect 999" in capsys.readouterr().err


def test_clearing_an_annotator_releases_their_corrections(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    _setup(home)
    with _database(home).begin() as session:
        before = quality_store.held_out_reasons(session=session, task="sentiment")
    assert sorted(before.values()).count("flagged annotator") == 8  # 10, two of them suspects
    assert main(["annotators", "clear", "--task", "sentiment", "--annotator", "U0ROGUE",
                 "--by", "U0MODA"]) == 1  # fmt: skip
    assert "not an admin" in capsys.readouterr().err
    result = _json(
        capsys, "annotators", "clear", "--task", "sentiment", "--annotator", "U0ROGUE",
        "--by", ADMIN,
    )  # fmt: skip
    assert result["annotator"] == "U0ROGUE" and result["cleared_by"] == ADMIN
    with _database(home).begin() as session:
        after = quality_store.held_out_reasons(session=session, task="sentiment")
        entries = audit.list_audit(session=session, subject_prefix="sentiment/annotator/")
    assert sorted(after.values()) == ["suspect", "suspect"]
    assert [e.action for e in entries] == ["clear_annotator"] and entries[0].actor == ADMIN
    rows = _json(capsys, "annotators", "--task", "sentiment")
    assert not any(r["flagged"] for r in rows)
    assert main(["annotators", "clear", "--task", "sentiment", "--annotator", "U0ROGUE",
                 "--by", ADMIN]) == 1  # fmt: skip
    assert "not flagged" in capsys.readouterr().err


def test_bad_input_gets_a_clear_error(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["annotators"]) == 1
    assert "name the task" in capsys.readouterr().err
    assert main(["review", "suspects", "--task", "nope"]) == 1
    assert "unknown task 'nope'" in capsys.readouterr().err
