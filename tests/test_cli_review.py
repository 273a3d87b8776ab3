"""``bertbot review next``: its JSON shape, its strategies and its errors (no model here; the
tiny-BERT run with embeddings is in tests/trainer/test_review_loop.py)."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from bertbot.cli import main
from bertbot.settings import load_settings
from storage import drift, messages, review_queue
from storage.db import Database
from storage.enums import SkipKind, utcnow
from storage.models import Message

KEYS = {"message_id", "text", "predicted_label", "probabilities", "reason", "duplicates"}


def _store(rows: list[tuple[str, float]]) -> list[int]:
    database = Database.connect(load_settings().db_url)
    ids = []
    with database.begin() as session:
        for n, (text, spam) in enumerate(rows):
            message = messages.add_message(
                session=session, team_id="T", channel_id="C", ts=f"1.{n}", text=text, user_id=None
            )
            messages.add_prediction(
                session=session,
                task="spam",
                model_version="1",
                label="spam" if spam >= 0.5 else "ham",
                scores={"ham": 1 - spam, "spam": spam},
                latency_ms=1.0,
                message_id=message.id,
            )
            ids.append(message.id)
    database.dispose()
    return ids


STDERR: list[str] = []


def _next(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, Any]]:
    assert main(["review", "next", "--task", "spam", "--json", *argv]) == 0, capsys.readouterr()
    out, err = capsys.readouterr()
    STDERR.append(err)
    result: list[dict[str, Any]] = json.loads(out)
    return result


@pytest.fixture
def stored(clean_home: Path) -> list[int]:
    assert main(["db", "upgrade"]) == 0
    rows = [(f"message number {n}", 0.5 + n / 40) for n in range(12)]
    return _store([*rows, ("MESSAGE number 0", 0.9)])


def test_review_next_json_shape_and_strategies(
    stored: list[int], capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    items = _next(capsys, "--limit", "3")
    assert "no production model: the queue is chosen by uncertainty only" in STDERR[-1]
    assert [item["message_id"] for item in items] == stored[:3]
    assert set(items[0]) >= KEYS
    first = items[0]
    assert first["text"] == "message number 0" and first["predicted_label"] == "spam"
    assert first["probabilities"] == {"ham": 0.5, "spam": 0.5}
    assert first["duplicates"] == [stored[-1]]  # the same text, normalised
    assert first["reason"].startswith("uncertain: margin 0.00 (no production model")

    unsure = _next(capsys, "--strategy", "uncertainty", "--limit", "20")
    assert len(unsure) == 12 and unsure[1]["reason"] == "uncertain: margin 0.05"
    random = _next(capsys, "--strategy", "random", "--limit", "5", "--seed", "3")
    assert random == _next(capsys, "--strategy", "random", "--limit", "5", "--seed", "3")
    assert {item["reason"] for item in random} <= {
        "random (seed 3)",
        "random (seed 3), 1 near-duplicate",
    }


def test_review_next_leads_with_drift_flags_and_honours_skips_and_the_age_limit(
    stored: list[int], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    database = Database.connect(load_settings().db_url)
    with database.begin() as session:
        drift.flag_for_review(session=session, task="spam", scores=[(stored[11], 2.0)])
        for user in ("U0MODA", "U0MODB"):
            review_queue.record_skip(
                session=session, task="spam", message_id=stored[1], user_id=user, kind=SkipKind.SKIP
            )
        review_queue.record_skip(
            session=session,
            task="spam",
            message_id=stored[2],
            user_id="U0MODA",
            kind=SkipKind.NOT_SURE,
        )
        session.execute(
            update(Message)
            .where(Message.id == stored[3])
            .values(received_at=utcnow() - timedelta(days=20))
        )
    database.dispose()
    capsys.readouterr()
    items = _next(capsys, "--strategy", "uncertainty", "--limit", "4")
    assert [i["message_id"] for i in items] == [stored[11], stored[0], stored[2], stored[4]]
    assert items[0]["reason"] == "drift-flagged"
    mine = _next(capsys, "--strategy", "uncertainty", "--limit", "3", "--user", "U0MODA")
    assert [i["message_id"] for i in mine] == [stored[11], stored[0], stored[4]]
    monkeypatch.setenv("BERTBOT_REVIEW__MAX_AGE_DAYS", "30")
    assert stored[3] in [
        i["message_id"] for i in _next(capsys, "--strategy", "uncertainty", "--limit", "20")
    ]


def test_review_next_refuses_bad_input(
    clean_home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    assert main(["review", "next", "--task", "spam", "--limit", "0"]) == 1
    assert "--limit must be between 1 and 10000" in capsys.readouterr().err
    assert main(["review", "next", "--task", "nope"]) == 1
    assert "unknown task 'nope'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["review", "next", "--task", "spam", "--strategy", "clever"])
    assert "invalid choice: 'clever'" in capsys.readouterr().err
    assert main(["review", "next", "--task", "spam"]) == 0
    assert "nothing waits for review in spam" in capsys.readouterr().out
    with pytest.raises(SystemExit) as done:
        main(["review", "next", "--help"])
    assert done.value.code == 0 and "--strategy" in capsys.readouterr().out
