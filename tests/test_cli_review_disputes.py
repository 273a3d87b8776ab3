"""``bertbot review disputes`` and ``bertbot review decide``, in-process against a temporary
home: JSON shapes, the admin check and clear errors."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bertbot.cli import main
from bot.second_opinion_policy import SecondOpinionPolicy
from bot.services.roles import Roles
from bot.services.second_opinion import SecondOpinionService, route_correction
from storage import annotations, audit, messages
from storage import second_opinion as opinions
from storage.db import Database
from storage.enums import AnnotationSource
from storage.texts import text_hash
from trainer.tasks import BUILTIN_TASKS

ADMIN = "U0ADMIN01"
MOD1, MOD2 = "U0MOD1", "U0MOD2"
TEXT = "free pizza in the kitchen"


@pytest.fixture
def database(
    clean_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Database]:
    monkeypatch.setenv("BERTBOT_ADMINS", ADMIN)
    monkeypatch.setenv("BERTBOT_MODERATORS", f"{MOD1},{MOD2}")
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    db = Database.connect(f"sqlite:///{clean_home / 'bertbot.db'}")
    yield db
    db.dispose()


def _dispute(database: Database, text: str = TEXT) -> int:
    """MOD1 corrects a confident spam prediction to ham; MOD2 answers spam."""
    with database.begin() as session:
        message = messages.add_message(
            session=session, team_id="T", channel_id="C", ts=text, text=text, user_id="U9"
        )
        prediction = messages.add_prediction(
            session=session,
            task="spam",
            model_version="3",
            label="spam",
            scores={"ham": 0.02, "spam": 0.98},
            latency_ms=1.0,
            message_id=message.id,
        )
        first, _ = annotations.add_annotation(
            session=session,
            task="spam",
            text=text,
            label="ham",
            annotator=MOD1,
            source=AnnotationSource.CORRECTION,
            message_id=message.id,
            prediction_id=prediction.id,
        )
        request = route_correction(
            session=session,
            annotation=first,
            prediction=prediction,
            policy=SecondOpinionPolicy(share=0.0),
        )
    assert request is not None
    roles = Roles.of(admins=[ADMIN], moderators=[MOD1, MOD2])
    service = SecondOpinionService(database, {"spam": BUILTIN_TASKS["spam"]}, roles)
    assert service.answer(user_id=MOD2, request_id=request.id, label="spam").status == "disputed"
    return request.id


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["review", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    code, out, err = _run(capsys, *argv, "--json")
    assert code == 0, err
    return json.loads(out)


def test_disputes_lists_both_labels_and_who_gave_them(
    database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _json(capsys, "disputes", "--task", "spam") == []
    dispute_id = _dispute(database)

    (row,) = _json(capsys, "disputes", "--task", "spam")

    assert row["id"] == dispute_id and row["task"] == "spam"
    assert (row["text"], row["text_hash"]) == (TEXT, text_hash(TEXT))
    assert (row["predicted_label"], row["probability"], row["model_version"]) == ("spam", 0.98, "3")
    assert row["reason"] == "contradicts a 0.98 prediction"
    assert [(lbl["label"], lbl["by"]) for lbl in row["labels"]] == [("ham", MOD1), ("spam", MOD2)]
    assert all(isinstance(lbl["at"], str) for lbl in row["labels"])
    assert isinstance(row["message_id"], int)
    assert _json(capsys, "disputes", "--task", "sentiment") == []
    code, out, _ = _run(capsys, "disputes", "--task", "spam")
    assert code == 0 and f"ham ({MOD1}) vs spam ({MOD2})" in out and TEXT in out


def test_decide_closes_the_dispute_with_the_admins_label(
    database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    dispute_id = _dispute(database)

    decided = _json(capsys, "decide", str(dispute_id), "spam", "--by", ADMIN)

    assert set(decided) == {
        "id",
        "task",
        "status",
        "label",
        "decided_by",
        "decided_at",
        "annotation_id",
        "created",
    }
    assert (decided["id"], decided["status"], decided["label"]) == (dispute_id, "decided", "spam")
    assert (decided["decided_by"], decided["created"]) == (ADMIN, True)
    assert _json(capsys, "disputes", "--task", "spam") == []
    with database.begin() as session:
        assert opinions.held_out_hashes(session=session, task="spam") == set()
        (effective,) = annotations.effective_labels(session=session, task="spam")
        entries = audit.list_audit(session=session, subject_prefix=f"second_opinion/{dispute_id}")
    assert (effective.label, effective.source, effective.annotator) == (
        "spam",
        AnnotationSource.ADMIN,
        ADMIN,
    )
    assert effective.annotation_id == decided["annotation_id"]
    assert [(e.action, e.actor) for e in entries][0] == ("second_opinion.decide", ADMIN)

    again = _json(capsys, "decide", str(dispute_id), "spam", "--by", ADMIN)  # a repeat
    assert again["created"] is False and again["annotation_id"] == decided["annotation_id"]
    code, out, _ = _run(capsys, "decide", str(dispute_id), "spam", "--by", ADMIN)
    assert code == 0 and "already decided so" in out


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["decide", "999", "spam", "--by", ADMIN], "There is no second opinion dispute 999"),
        (["decide", "{id}", "maybe", "--by", ADMIN], "'maybe' is not a spam label (ham, spam)"),
        (["decide", "{id}", "spam", "--by", MOD1], "Only admins decide disputes"),
        (["decide", "{id}", "spam", "--by", "U0SOMEONE"], "is not one of BERTBOT_ADMINS"),
        (["disputes", "--task", "nope"], "The nope task is not active"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(
    database: Database, capsys: pytest.CaptureFixture[str], argv: list[str], error: str
) -> None:
    dispute_id = _dispute(database)
    code, out, err = _run(capsys, *[a.replace("{id}", str(dispute_id)) for a in argv], "--json")
    assert code == 1 and out == ""
    assert error in err
    with database.begin() as session:
        assert opinions.held_out_hashes(session=session, task="spam") == {text_hash(TEXT)}


def test_decide_needs_a_number_and_by(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["review", "decide", "first", "spam", "--by", ADMIN])
    assert exit_.value.code == 2 and "invalid int value: 'first'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["review", "decide", "1", "spam"])
    assert "--by" in capsys.readouterr().err
