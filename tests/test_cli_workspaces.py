"""``bertbot workspaces list|purge``, in-process against a temporary home."""

from __future__ import annotations

import json
from datetime import timedelta
from pathlib import Path

import pytest

from bertbot.cli import main
from storage import audit, messages, workspaces
from storage.db import Database
from storage.enums import utcnow


@pytest.fixture
def home(clean_home: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    assert main(["db", "upgrade"]) == 0
    capsys.readouterr()
    database = Database.connect(f"sqlite:///{clean_home / 'bertbot.db'}")
    with database.begin() as session:
        for team, ts in (("T0GONE", "1.1"), ("T0GONE", "1.2"), ("T0STAY", "1.1")):
            messages.add_message(
                session=session, team_id=team, channel_id="C1", ts=ts, text="hi", user_id="U1"
            )
        workspaces.record_uninstall(
            session=session,
            team_id="T0GONE",
            reason="app_uninstalled",
            now=utcnow() - timedelta(days=40),
        )
    database.dispose()
    return clean_home


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> object:
    assert main(["workspaces", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_purge_deletes_the_data_of_workspaces_past_the_retention(
    home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    (listed,) = _run(capsys, "list")  # type: ignore[misc]
    assert listed["team_id"] == "T0GONE" and listed["purged_at"] is None

    monkeypatch.setenv("BERTBOT_OAUTH__RETENTION_DAYS", "60")
    assert _run(capsys, "purge")["due"] == []  # type: ignore[index]
    dry = _run(capsys, "purge", "--retention-days", "30", "--dry-run")
    assert dry["due"] == ["T0GONE"] and dry["purged"] == []  # type: ignore[index]

    monkeypatch.delenv("BERTBOT_OAUTH__RETENTION_DAYS")
    report = _run(capsys, "purge")
    assert report["retention_days"] == 30  # type: ignore[index]
    assert report["purged"] == [  # type: ignore[index]
        {"team_id": "T0GONE", "messages": 2, "predictions": 0, "corrections": 0}
    ]
    assert _run(capsys, "purge")["purged"] == []  # type: ignore[index]
    database = Database.connect(f"sqlite:///{home / 'bertbot.db'}")
    with database.begin() as session:
        assert workspaces.count_workspace_messages(session=session, team_id="T0STAY") == 1
        [entry] = audit.list_audit(session=session, subject_prefix="team/")
    database.dispose()
    assert (entry.action, entry.subject, entry.details["messages"]) == (
        "workspace.purge",
        "team/T0GONE",
        2,
    )


def test_a_negative_retention_is_refused(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["workspaces", "purge", "--retention-days", "-1"]) != 0
    assert "--retention-days" in capsys.readouterr().err
