"""The ``bertbot`` command line, run in-process against a temporary home."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from bertbot.cli import build_parser, main
from bertbot.doctor import encoder_present
from storage import registry, schema
from storage.db import Database
from storage.enums import VersionStatus
from trainer.artifact import write_manifest


@pytest.fixture
def home(clean_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    home = clean_home
    return home


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def test_every_command_has_help(capsys: pytest.CaptureFixture[str]) -> None:
    parser = build_parser()
    paths = [[]]
    seen = []
    while paths:
        path = paths.pop()
        with pytest.raises(SystemExit) as exit_:
            parser.parse_args([*path, "--help"])
        assert exit_.value.code == 0
        out = capsys.readouterr().out
        assert out.startswith("usage: bertbot")
        seen.append(" ".join(path))
        # Find sub-commands listed in this help text's positional choices.
        for action in _subparsers(parser, path):
            paths.extend([*path, name] for name in action)
    assert {"", "db", "db upgrade", "db downgrade", "db current", "doctor"} <= set(seen)


def _subparsers(parser, path):  # type: ignore[no-untyped-def]
    import argparse

    current = parser
    for name in path:
        for action in current._actions:
            if isinstance(action, argparse._SubParsersAction):
                current = action.choices[name]
                break
    for action in current._actions:
        if isinstance(action, argparse._SubParsersAction):
            yield list(action.choices)


def test_doctor_on_an_empty_home_names_each_missing_piece(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = _run(capsys, "doctor")
    assert code == 1
    assert "MISSING database" in out and "fix: bertbot db upgrade" in out
    assert "MISSING encoder all-MiniLM-L6-v2" in out and "fix: bertbot encoder import" in out
    assert "MISSING model spam" in out and "MISSING model sentiment" in out
    assert "ok      slack" in out and "local mode" in out
    assert not home.exists(), "doctor must not create anything"


def test_doctor_on_a_complete_setup_exits_0(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert _run(capsys, "db", "upgrade")[0] == 0
    encoder = home / "encoders" / "all-MiniLM-L6-v2"
    for name in encoder_present(encoder):  # every piece doctor looks for
        (encoder / name).parent.mkdir(parents=True, exist_ok=True)
        (encoder / name).write_bytes(b"x")
    code, out, _ = _run(capsys, "doctor")
    assert code == 1 and "no production model" in out and "MISSING encoder" not in out

    database = Database.connect(f"sqlite:///{home / 'bertbot.db'}")
    for task in ["spam", "sentiment"]:
        artifact = home / "models" / task / "1"
        artifact.mkdir(parents=True)
        (artifact / "saved_model.pb").write_bytes(b"model")
        (artifact / "variables").mkdir()
        (artifact / "variables" / "variables.data").write_bytes(b"weights of " + task.encode())
        # spam as trained today (its temperature in the manifest), sentiment from before.
        sha256 = write_manifest(artifact, {"temperature": 1.7} if task == "spam" else None)
        with database.begin() as session:
            version = registry.add_model_version(
                session=session,
                task=task,
                version="1",
                status=VersionStatus.ACCEPTED,
                artifact_uri=f"models/{task}/1",
                sha256=sha256,
                base_encoder="all-MiniLM-L6-v2",
                hyperparameters={},
                data_snapshot={},
                metrics={},
                created_by="test",
            )
            registry.compare_and_set_alias(
                session=session,
                task=task,
                version_id=version.id,
                expected_version_id=None,
                updated_by="t",
            )
    database.dispose()
    code, out, _ = _run(capsys, "doctor")
    assert code == 0, out
    assert "everything is in place" in out

    assert "files match sha256" in out
    assert "calibrated, T = 1.70" in out
    assert "uncalibrated" in out and "bertbot retrain --task sentiment --force" in out

    # A changed model file is found by its checksum and named.
    (home / "models" / "sentiment" / "1" / "variables" / "variables.data").write_bytes(b"other")
    code, out, _ = _run(capsys, "doctor")
    assert code == 1 and "variables/variables.data is corrupt" in out, out
    assert "bertbot models rollback --task sentiment" in out

    # A production pointer whose files are gone is reported, not trusted.
    (home / "models" / "spam" / "1" / "saved_model.pb").unlink()
    code, out, _ = _run(capsys, "doctor")
    assert code == 1 and "is missing saved_model.pb" in out, out


def test_doctor_reports_half_configured_slack(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-123")
    code, out, _ = _run(capsys, "doctor")
    assert code == 1 and "MISSING slack" in out and "SLACK_SIGNING_SECRET is not set" in out


def test_db_upgrade_current_downgrade(home: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = _run(capsys, "db", "current")
    assert code == 1 and "empty" in out and "bertbot db upgrade" in out
    code, out, _ = _run(capsys, "db", "upgrade")
    head = schema.head_revision()
    assert code == 0 and f"empty -> {head}" in out
    code, out, _ = _run(capsys, "db", "current")
    assert code == 0 and "at head" in out
    code, out, _ = _run(capsys, "db", "downgrade", "base")
    assert code == 0 and f"{head} -> empty" in out
    code, out, _ = _run(capsys, "db", "downgrade", "nonsense")
    assert code == 1


def test_bad_setting_stops_start_up_naming_the_variable(
    home: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("BERTBOT_GATE__MIN_EVAL", "-3")
    code, _, err = _run(capsys, "doctor")
    assert code == 2 and "BERTBOT_GATE__MIN_EVAL" in err


def test_a_debug_log_level_from_dotenv_reaches_where_tensorflow_is_imported(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """trainer.tf_runtime reads BERTBOT_LOG_LEVEL from the environment, not from .env."""
    dotenv = home.parent / ".env"
    try:
        dotenv.write_text("BERTBOT_LOG_LEVEL=INFO\n")
        _run(capsys, "db", "current")
        assert "BERTBOT_LOG_LEVEL" not in os.environ
        dotenv.write_text("BERTBOT_LOG_LEVEL=DEBUG\n")
        _run(capsys, "db", "current")
        assert os.environ.get("BERTBOT_LOG_LEVEL") == "DEBUG"
    finally:
        os.environ.pop("BERTBOT_LOG_LEVEL", None)


def test_console_script_starts_without_tensorflow(home: Path) -> None:
    """`bertbot --help` and `db current` must not import TensorFlow (slow start-up)."""
    code = (
        "import sys; from bertbot.cli import main; main(['db', 'current']); "
        "print('tensorflow' in sys.modules)"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=False
    )
    assert result.stdout.strip().splitlines()[-1] == "False", result.stderr


@pytest.mark.parametrize("how", ["changed", "missing", "extra"])
def test_models_promote_refuses_a_tampered_version_naming_the_file(
    home: Path, capsys: pytest.CaptureFixture[str], how: str
) -> None:
    from tests.trainer.test_promotion import _tamper, add_version, production

    assert _run(capsys, "db", "upgrade")[0] == 0
    database = Database.connect(f"sqlite:///{home / 'bertbot.db'}")
    add_version(database, home, "1", VersionStatus.ACCEPTED)
    add_version(database, home, "2", VersionStatus.REJECTED)
    code, out, err = _run(
        capsys, "models", "promote", "--task", "spam", "--version", "1", "--reason", "first"
    )
    assert code == 0, out + err
    name = _tamper(home, "2", how)

    code, out, err = _run(
        capsys, "models", "promote", "--task", "spam", "--version", "2", "--reason", "try"
    )
    assert code == 1 and name in err and "spam v2 is refused" in err, out + err
    assert production(database) == "1"

    # A stale expectation is refused before anything is read from disk.
    code, out, err = _run(
        capsys, "models", "rollback", "--task", "spam", "--reason", "x", "--expect", "7"
    )
    assert code == 1 and "production moved: it is v1 now, not v7" in err, out + err
    database.dispose()
