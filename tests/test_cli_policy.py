"""``bertbot policy list|set|clear``, in-process against a temporary home."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bertbot.cli import main
from storage import audit
from storage.db import Database


@pytest.fixture
def home(clean_home: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    return clean_home


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> list[dict[str, object]]:
    assert main(["policy", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_list_shows_the_workspace_default_from_the_settings(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("BERTBOT_ALERT_THRESHOLD", "0.7")
    rows = _json(capsys, "list")
    assert [(r["channel"], r["task"], r["source"]) for r in rows] == [
        ("*", "spam", "default"),
        ("*", "sentiment", "default"),
    ]
    assert rows[0]["threshold"] == 0.7 and rows[0]["action"] == "alert" and rows[0]["watch"]


def test_set_then_list_then_clear(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (row,) = _json(
        capsys,
        "set",
        "--channel",
        "C0RANDOM",
        "--task",
        "spam",
        "--threshold",
        "0.95",
        "--action",
        "react",
        "--exempt",
        "U0VENDOR1",
        "--exempt",
        "S0BOTS",
    )
    assert row["source"] == "channel" and row["exempt"] == ["U0VENDOR1", "S0BOTS"]
    (row,) = _json(capsys, "set", "--channel", "C0RANDOM", "--task", "spam", "--watch", "off")
    assert (row["watch"], row["threshold"], row["action"]) == (False, 0.95, "react")
    listed = _json(capsys, "list")
    assert [(r["channel"], r["source"]) for r in listed][-1] == ("C0RANDOM", "channel")
    assert main(["policy", "list", "--channel", "C0RANDOM"]) == 0
    text = capsys.readouterr().out
    assert "C0RANDOM" in text and "react" in text and "off" in text
    (row,) = _json(capsys, "clear", "--channel", "C0RANDOM", "--task", "spam")
    assert row["source"] == "default"
    database = Database.connect(f"sqlite:///{home / 'bertbot.db'}")
    with database.begin() as session:
        actions = [e.action for e in audit.list_audit(session=session, subject_prefix="policy/")]
    database.dispose()
    assert actions == ["policy.clear", "policy.set", "policy.set"]


def test_remove_without_the_admin_token_says_it_falls_back(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert main(["policy", "set", "--channel", "C0A", "--task", "spam", "--action", "remove"]) == 0
    out = capsys.readouterr().out
    assert "alert (asked: remove)" in out and "SLACK_ADMIN_USER_TOKEN" in out
    monkeypatch.setenv("SLACK_ADMIN_USER_TOKEN", "xoxp-1-admin")
    (row,) = _json(capsys, "list", "--channel", "C0A")[:1]
    assert row["action"] == "remove" and row["note"] is None


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["set", "--channel", "C0A", "--task", "spam"], "nothing to set"),
        (["set", "--channel", "C0A", "--task", "nope", "--watch", "on"], "unknown task"),
        (["set", "--channel", "#general", "--task", "spam", "--watch", "on"], "channel id"),
        (["set", "--channel", "C0A", "--task", "spam", "--threshold", "2"], "(0, 1]"),
    ],
)
def test_bad_changes_fail_with_a_reason(
    home: Path, capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    assert main(["policy", *argv]) == 1
    assert message in capsys.readouterr().err


def test_a_bad_admin_token_names_the_variable(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SLACK_ADMIN_USER_TOKEN", "xoxb-not-a-user-token")
    assert main(["policy", "list"]) == 2
    assert "SLACK_ADMIN_USER_TOKEN: an admin's user token starts with xoxp-" in (
        capsys.readouterr().err
    )
