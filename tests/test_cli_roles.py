"""``bertbot roles list|add|remove`` and the ``--team`` options of ``bertbot review``, in
process against a temporary home."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from bertbot.cli import main
from storage import audit, messages
from storage.db import Database

ENV_ADMIN, ENV_MOD = "U0ENVADMIN", "U0ENVMOD01"


@pytest.fixture
def database(
    clean_home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> Iterator[Database]:
    monkeypatch.setenv("BERTBOT_ADMINS", ENV_ADMIN)
    monkeypatch.setenv("BERTBOT_MODERATORS", ENV_MOD)
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    db = Database.connect(f"sqlite:///{clean_home / 'bertbot.db'}")
    yield db
    db.dispose()


def _json(capsys: pytest.CaptureFixture[str], *argv: str) -> Any:
    assert main([*argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_list_add_remove_with_json_shapes_and_the_audit(
    database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    listed = _json(capsys, "roles", "list", "--team", "T0AAA")
    assert listed == {
        "team": "T0AAA",
        "source": "environment",
        "roles": [
            {"user": ENV_ADMIN, "role": "admin", "granted_by": None, "granted_at": None},
            {"user": ENV_MOD, "role": "moderator", "granted_by": None, "granted_at": None},
        ],
    }
    added = _json(capsys, "roles", "add", "--team", "T0AAA", "--user", "U0ALICE", "--role", "admin")
    assert added == {
        "action": "add",
        "team": "T0AAA",
        "user": "U0ALICE",
        "role": "admin",
        "changed": True,
        "by": "cli",
        "also_granted": [],  # the operator is not a Slack user: nobody else is stored
    }
    again = _json(capsys, "roles", "add", "--team", "T0AAA", "--user", "U0ALICE", "--role", "admin")
    assert again["changed"] is False
    listed = _json(capsys, "roles", "list", "--team", "T0AAA")
    assert listed["source"] == "database"
    assert [(r["user"], r["role"], r["granted_by"]) for r in listed["roles"]] == [
        ("U0ALICE", "admin", "cli")
    ]
    assert _json(capsys, "roles", "list", "--team", "T0BBB")["source"] == "environment"
    removed = _json(
        capsys, "roles", "remove", "--team", "T0AAA", "--user", "U0ALICE", "--role", "admin"
    )
    assert removed["action"] == "remove" and removed["changed"] is True
    with database.begin() as session:
        entries = audit.list_audit(session=session, subject_prefix="roles/")
    assert [(e.action, e.actor, e.subject, e.details) for e in reversed(entries)] == [
        (
            "roles.add",
            "cli",
            "roles/T0AAA/U0ALICE",
            {"team": "T0AAA", "user": "U0ALICE", "role": "admin", "via": "cli"},
        ),
        (
            "roles.remove",
            "cli",
            "roles/T0AAA/U0ALICE",
            {"team": "T0AAA", "user": "U0ALICE", "role": "admin", "via": "cli"},
        ),
    ]


def test_text_output_says_when_the_environment_stops_applying(
    database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["roles", "add", "--team", "T0AAA", "--user", "U0BOB", "--role", "moderator"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "granted: U0BOB moderator in T0AAA" in out
    assert "BERTBOT_ADMINS and BERTBOT_MODERATORS no longer apply there" in out
    assert main(["roles", "list", "--team", "T0AAA"]) == 0
    assert "moderator  U0BOB  granted by cli" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "error"),
    [
        (["roles", "list", "--team", "acme"], "is not a Slack workspace id"),
        (["roles", "add", "--team", "T0AAA", "--user", "bob", "--role", "admin"], "not a Slack"),
        (["review", "next", "--task", "spam", "--team", "nope"], "--team:"),
    ],
)
def test_bad_input_is_refused_with_a_clear_error(
    database: Database, capsys: pytest.CaptureFixture[str], argv: list[str], error: str
) -> None:
    assert main(argv) != 0
    assert error in capsys.readouterr().err


def test_an_unknown_role_is_refused_by_the_parser(
    database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit):
        main(["roles", "add", "--team", "T0AAA", "--user", "U0BOB", "--role", "owner"])
    assert "invalid choice" in capsys.readouterr().err


def test_review_next_with_team_lists_only_that_workspaces_messages(
    database: Database, capsys: pytest.CaptureFixture[str]
) -> None:
    with database.begin() as session:
        for team in ("T0AAA", "T0BBB"):
            message = messages.add_message(
                session=session,
                team_id=team,
                channel_id="C1",
                ts="1.1",
                text=f"message of {team}",
                user_id="U9",
            )
            messages.add_prediction(
                session=session,
                task="spam",
                model_version="3",
                label="spam",
                scores={"ham": 0.4, "spam": 0.6},
                latency_ms=1.0,
                message_id=message.id,
            )
    argv = ("review", "next", "--task", "spam", "--strategy", "uncertainty")
    every = _json(capsys, *argv)
    only_b = _json(capsys, *argv, "--team", "T0BBB")
    assert sorted(item["text"] for item in every) == ["message of T0AAA", "message of T0BBB"]
    assert [item["text"] for item in only_b] == ["message of T0BBB"]
    assert _json(capsys, "review", "disputes", "--task", "spam", "--team", "T0BBB") == []
