"""Drift watch end to end on the tiny BERT: ``bertbot messages import``, ``bertbot drift``,
episodes and their one Slack message, and the review queue."""

from __future__ import annotations

import csv
import json
import os
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import update

from bertbot.cli import main
from bertbot.commands.drift import drift_notifier
from bertbot.scheduler import scheduled_drift_check
from bertbot.settings import load_settings
from bot.emulator.outbound import FakeSlack
from storage import drift, messages, overview
from storage.db import Database
from storage.enums import utcnow
from storage.models import Message, Prediction
from tests.trainer.test_retrain import new_domain
from tests.trainer.test_train import toy_examples

TOKEN = "xoxb-drift-0123"
ADMIN = "U0ADMIN01"
DRIFT_CHANNEL = "C0DRIFT01"


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_encoder_dir: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("BERTBOT_", "SLACK_")):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    (home / "encoders").mkdir(parents=True)
    (home / "encoders" / "tiny").symlink_to(tiny_encoder_dir)
    (tmp_path / "tasks.json").write_text(json.dumps({"toy": {"labels": ["neg", "pos"]}}))
    for name, value in {
        "BERTBOT_HOME": str(home),
        "BERTBOT_ENCODER": "tiny",
        "BERTBOT_TASKS": "toy",
        "BERTBOT_TASKS_FILE": str(tmp_path / "tasks.json"),
        "BERTBOT_GATE__MIN_EVAL": "20",
        "BERTBOT_RETRAIN__TRAIN_OVERRIDES": json.dumps(
            {"epochs": 3, "learning_rate": 2e-3, "batch_size": 16}
        ),
        "BERTBOT_DRIFT__SAMPLE": "120",
        "BERTBOT_DRIFT__PERMUTATIONS": "500",
        "BERTBOT_DRIFT__MIN_MESSAGES": "20",
        "BERTBOT_DRIFT__FLAG": "5",
        "BERTBOT_DRIFT__CHANNEL": DRIFT_CHANNEL,
        "BERTBOT_ADMINS": ADMIN,
    }.items():
        monkeypatch.setenv(name, value)
    return home


def _write(path: Path, header: list[str], rows: list[tuple[str, ...]]) -> str:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return str(path)


def _database() -> Database:
    return Database.connect(load_settings().db_url)


def _age_all_messages(days: float) -> None:
    """Move every stored message out of the drift window (history from long ago)."""
    database = _database()
    with database.begin() as session:
        session.execute(update(Message).values(received_at=utcnow() - timedelta(days=days)))
    database.dispose()


def _run_json(capsys: pytest.CaptureFixture[str], *argv: str) -> dict[str, Any]:
    assert main(list(argv)) == 0, capsys.readouterr().err
    out = capsys.readouterr().out
    result: dict[str, Any] = json.loads(out)
    return result


@pytest.mark.slow
def test_drift_on_shifted_messages_one_notice_per_episode_and_the_review_queue(
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["db", "upgrade"]) == 0
    seed = _write(
        tmp_path / "seed.csv", ["text", "label"], [(e.text, e.label) for e in toy_examples(400)]
    )
    assert main(["data", "import", seed, "--task", "toy"]) == 0
    assert main(["retrain", "--task", "toy"]) == 0
    capsys.readouterr()

    # Before any message: a clear error, nothing recorded.
    assert main(["drift", "--task", "toy", "--json"]) == 1
    assert "only 0 channel message(s) in the last 7 day(s)" in capsys.readouterr().err

    # Unshifted messages (the seed's distribution), imported as if posted; a label column
    # is ignored.
    calm_rows = [(e.text, "whatever") for e in toy_examples(100, seed=11)]
    imported = _run_json(
        capsys,
        "messages",
        "import",
        _write(tmp_path / "calm.csv", ["text", "label"], calm_rows),
        "--channel",
        "general",
        "--json",
    )
    assert imported["stored"] == 100 and imported["predictions"] == {"toy": 100}
    assert imported["channel"] == "general" and imported["model_versions"] == {"toy": "1"}

    calm = _run_json(capsys, "drift", "--task", "toy", "--json")
    expected_keys = {
        "p_value",
        "drifted",
        "expected_macro_f1",
        "n_recent",
        "n_reference",
        "most_drifted",
        "p_embeddings",
        "p_labels",
        "alpha",
        "episode_change",
        "check_id",
    }
    assert expected_keys <= set(calm)
    assert calm["drifted"] is False and calm["p_value"] >= 0.01 and calm["alpha"] == 0.01
    assert calm["n_recent"] == 100 and 20 <= calm["n_reference"] <= 120
    assert calm["episode_change"] == "none" and calm["flagged"] == 0
    assert 0.0 <= calm["expected_macro_f1"] <= 1.0
    assert len(calm["most_drifted"]) == 5
    assert set(calm["most_drifted"][0]) == {
        "message_id",
        "channel_id",
        "text",
        "witness",
        "label",
        "confidence",
    }

    # A topic the seed data never had: drift, an episode, flagged messages, one notice.
    _age_all_messages(days=30)
    shifted = [(text,) for text, _ in new_domain(100, seed=3)]
    shifted_file = _write(tmp_path / "shifted.csv", ["text"], shifted)
    assert main(["messages", "import", shifted_file, "--channel", "C0NEWS"]) == 0
    assert "imported 100 messages into import/C0NEWS" in capsys.readouterr().out

    with FakeSlack(bot_token=TOKEN) as fake:
        monkeypatch.setenv("SLACK_BOT_TOKEN", TOKEN)
        monkeypatch.setenv("BERTBOT_SLACK_API_URL", fake.api_url)
        first = _run_json(capsys, "drift", "--task", "toy", "--json", "--notify")
        assert first["drifted"] is True and first["p_value"] < 0.01
        assert first["episode_change"] == "opened" and first["flagged"] == 5
        assert first["admins_told"] == [first["episode_id"]]
        assert {m["channel_id"] for m in first["most_drifted"]} == {"C0NEWS"}

        # The scheduler's job: the same check, then the notifier: the episode continues and
        # admins, told already, get nothing more.
        settings = load_settings()
        database = _database()
        outcome = scheduled_drift_check(
            settings, database, "toy", settings.home_dir, drift_notifier(settings, database)
        )
        assert outcome.startswith("toy: drift (p ") and "episode continued" in outcome

        [notice] = fake.messages(DRIFT_CHANNEL)
        assert notice.text.startswith("Drift in toy: the last 7 days of channel messages")
        summary = notice.blocks[0]["text"]["text"]
        assert f"<@{ADMIN}>" in summary and "production v1" in summary
        assert f"{first['n_reference']} texts" in summary
        assert "Expected macro-F1" in notice.blocks[1]["text"]["text"]

        # The flagged messages lead the review queue, with their reason.
        with database.begin() as session:
            queue = overview.review_queue(
                session=session, since=utcnow() - timedelta(days=1), limit=10
            )
            flagged_ids = {m["message_id"] for m in first["most_drifted"]}
            assert [c.reason for c in queue[:5]] == ["drift"] * 5
            assert {c.message.id for c in queue[:5]} == flagged_ids
            assert all(c.reason is None for c in queue[5:])
            checks = drift.list_checks(session=session, task="toy")
            assert [c.drifted for c in checks] == [True, True, False]
            assert checks[0].details["most_drifted"][0]["message_id"] in flagged_ids

        # Calm again: the episode ends (no message); the next drift is a new episode and
        # gets its own message.
        _age_all_messages(days=30)
        assert main(["messages", "import", _write(tmp_path / "c2.csv", ["text"], calm_rows)]) == 0
        capsys.readouterr()
        ended = _run_json(capsys, "drift", "--task", "toy", "--json", "--notify")
        assert ended["drifted"] is False and ended["episode_change"] == "ended"
        assert ended["episode_id"] == first["episode_id"] and ended["admins_told"] == []
        _age_all_messages(days=30)
        assert main(["messages", "import", shifted_file]) == 0
        capsys.readouterr()
        again = _run_json(capsys, "drift", "--task", "toy", "--json", "--notify")
        assert again["episode_change"] == "opened" and again["episode_id"] != first["episode_id"]
        assert len(fake.messages(DRIFT_CHANNEL)) == 2
        assert len(fake.calls("chat.postMessage")) == 2
    database.dispose()


def test_messages_import_refuses_bad_input_and_stores_nothing(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    bad = _write(
        tmp_path / "bad.csv", ["text", "user"], [("fine", "a"), ("   ", "b"), ("also", "c")]
    )
    assert main(["messages", "import", bad]) == 1
    err = capsys.readouterr().err
    assert "bad.csv:3: empty text" in err and "nothing was imported" in err
    assert main(["messages", "import", _write(tmp_path / "no.csv", ["body"], [("x",)])]) == 1
    assert "no 'text' column" in capsys.readouterr().err
    assert main(["messages", "import", str(tmp_path / "missing.csv")]) == 1
    assert "file not found" in capsys.readouterr().err
    assert main(["messages", "import", bad, "--channel", "has space"]) == 1
    assert "--channel 'has space'" in capsys.readouterr().err
    database = _database()
    with database.begin() as session:
        assert session.query(Message).count() == 0

    # --skip-bad-rows keeps the good ones; no production model: messages, no predictions
    jsonl = tmp_path / "m.jsonl"
    jsonl.write_text('{"text": "hello there", "label": 3}\n{"text": ""}\n{"text": "again"}\n')
    result = _run_json(
        capsys, "messages", "import", str(jsonl), "--skip-bad-rows", "--json", "--team", "T0X"
    )
    assert result["stored"] == 2 and result["predictions"] == {} and result["team"] == "T0X"
    # the same file again at once: new messages (posted twice), not a clash of timestamps
    again = _run_json(
        capsys, "messages", "import", str(jsonl), "--skip-bad-rows", "--json", "--team", "T0X"
    )
    assert again["message_ids"][0] > result["message_ids"][1]
    with database.begin() as session:
        stored, total = messages.sample_recent_messages(
            session=session, since=utcnow() - timedelta(hours=1), limit=10
        )
        assert [m.text for m in stored] == ["hello there", "again"] * 2 and total == 4
        assert len({m.ts for m in stored}) == 4
        assert {m.team_id for m in stored} == {"T0X"}
        assert session.query(Prediction).count() == 0
    database.dispose()
    # drift without a production model: a clear error
    assert main(["drift", "--task", "toy"]) == 1
    assert "toy has no production model" in capsys.readouterr().err


def test_every_new_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    for argv in (["drift", "--help"], ["messages", "import", "--help"], ["messages", "--help"]):
        with pytest.raises(SystemExit) as exited:
            main(argv)
        assert exited.value.code == 0
    out = capsys.readouterr().out
    assert "--no-record" in out and "--skip-bad-rows" in out and "Bonferroni" in out
