"""``bertbot serve --emulator`` runs on a database of its own; the configured one is only read.

The configured database holds a deployment: spam v1 in production and v2, seed labels, a
workspace message with a correction. The emulator's database gets the registry (with the
artifacts named by absolute path) and the seed labels, never the workspace's messages; a
promotion, a message and a label in the emulator change only the emulator's database.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

from bertbot.commands import CommandError
from bertbot.commands.emulator import (
    emulator_database_url,
    emulator_home,
    prepare_emulator_database,
)
from bertbot.services import retrain_options
from bertbot.settings import Settings, load_settings
from bot.services.retrain_requests import MoveRequest
from bot.services.retraining import RetrainService
from bot.services.roles import Roles
from storage import annotations, messages, registry, schema
from storage.db import Database
from storage.enums import AnnotationSource, VersionStatus
from storage.errors import StorageError
from storage.models import Base
from storage.seed_copy import read_only_database
from tests.artifacts import write_fake_artifact
from trainer.artifact import resolve_artifact
from trainer.tasks import BUILTIN_TASKS

ADMIN = "U0EMUADMIN"


def snapshot(url: str) -> dict[str, Any]:
    """Every table's row count and a digest of its rows, and the schema revision."""
    database = read_only_database(url)
    try:
        state: dict[str, Any] = {"revision": schema.current_revision(database)}
        with database.engine.connect() as connection:
            for table in Base.metadata.sorted_tables:
                rows = connection.execute(select(table).order_by(*table.primary_key.columns)).all()
                digest = hashlib.sha256(repr([tuple(r) for r in rows]).encode()).hexdigest()
                state[table.name] = (len(rows), digest)
            state["alembic_version"] = connection.execute(
                text("SELECT version_num FROM alembic_version")
            ).all()
        return state
    finally:
        database.dispose()


def _deployment(database: Database, home: Path) -> None:
    """spam v1 in production and v2 accepted, seed labels, and a workspace's message."""
    with database.begin() as session:
        ids = {}
        for version in ("1", "2"):
            ids[version] = registry.add_model_version(
                session=session,
                task="spam",
                version=version,
                status=VersionStatus.ACCEPTED,
                artifact_uri=f"models/spam/{version}",
                sha256=write_fake_artifact(home / "models" / "spam" / version, version),
                base_encoder="fake",
                hyperparameters={},
                data_snapshot={},
                metrics={"eval": {"macro_f1": 0.9}},
                created_by="setup",
            ).id
        assert registry.compare_and_set_alias(
            session=session,
            task="spam",
            version_id=ids["1"],
            expected_version_id=None,
            updated_by="setup",
        )
        annotations.add_annotations(
            session=session,
            task="spam",
            items=[
                annotations.NewAnnotation(text=f"seed text {i}", label=("spam", "ham")[i % 2])
                for i in range(30)
            ],
            annotator="seed",
            source=AnnotationSource.SEED,
        )
        message = messages.add_message(
            session=session,
            team_id="T1",
            channel_id="C1",
            ts="1700000000.000100",
            text="a private workspace message",
            user_id="U1",
        )
        annotations.add_annotation(
            session=session,
            task="spam",
            text=message.text,
            label="ham",
            annotator="U0MOD",
            source=AnnotationSource.CORRECTION,
            message_id=message.id,
        )


@pytest.fixture
def configured(
    fresh_database: Database, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Settings]:
    """Settings whose database (SQLite or PostgreSQL) is a deployment's."""
    home = tmp_path / "home"
    home.mkdir()
    for name in list(os.environ):
        if name.startswith(("BERTBOT_", "SLACK_")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("BERTBOT_HOME", str(home))
    url = fresh_database.engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("BERTBOT_DATABASE_URL", url)
    _deployment(fresh_database, home)
    fresh_database.dispose()
    yield load_settings()


def test_the_emulator_copies_the_registry_and_seed_labels_and_never_writes_the_deployment(
    configured: Settings,
) -> None:
    before = snapshot(configured.db_url)
    url = emulator_database_url(configured, None)
    assert url == f"sqlite:///{configured.home_dir / 'emulator' / 'bertbot.db'}"

    prepare_emulator_database(configured, url)

    emulator = Database.connect(url)
    home = emulator_home(configured)
    try:
        assert schema.current_revision(emulator) == schema.head_revision()
        with emulator.begin() as session:
            versions = registry.list_model_versions(session=session, task="spam")
            production = registry.get_alias(session=session, task="spam")
            seeds = annotations.list_annotations(session=session, source=AnnotationSource.SEED)
            corrections = annotations.list_annotations(
                session=session, source=AnnotationSource.CORRECTION
            )
            assert (
                messages.find_message(
                    session=session, team_id="T1", channel_id="C1", ts="1700000000.000100"
                )
                is None
            )
        # The same versions, naming the deployment's files by absolute path.
        assert [v.version for v in versions] == ["1", "2"]
        assert production is not None and production.version == "1"
        for version in versions:
            assert version.artifact_uri.startswith("file://")
            assert resolve_artifact(home, version.artifact_uri) == (
                configured.home_dir / "models" / "spam" / version.version
            )
        assert len(seeds) == 30 and corrections == []  # no workspace text is copied

        # An admin promotes v2 and labels a message in the emulator (as its card would).
        service = RetrainService(
            emulator,
            {"spam": BUILTIN_TASKS["spam"]},
            retrain_options(configured, beside_serving=True, home=home),
            Roles.of(admins=[ADMIN], moderators=[]),
        )
        try:
            service.move(
                MoveRequest(action="promote", task="spam", version="2", run_id=None, reason="try"),
                user_id=ADMIN,
            )
        finally:
            service.shutdown(wait=True)
        with emulator.begin() as session:
            message = messages.add_message(
                session=session,
                team_id="T0",
                channel_id="C0GENERAL",
                ts="1.1",
                text="hi",
                user_id="U0",
            )
            annotations.add_annotation(
                session=session,
                task="spam",
                text="hi",
                label="ham",
                annotator=ADMIN,
                source=AnnotationSource.CORRECTION,
                message_id=message.id,
            )
            assert registry.get_alias(session=session, task="spam").version == "2"  # type: ignore[union-attr]
    finally:
        emulator.dispose()

    assert snapshot(configured.db_url) == before

    # A second start keeps the emulator's own state and copies nothing again.
    prepare_emulator_database(configured, url)
    emulator = Database.connect(url)
    try:
        with emulator.begin() as session:
            assert registry.get_alias(session=session, task="spam").version == "2"  # type: ignore[union-attr]
            assert len(registry.list_model_versions(session=session, task="spam")) == 2
    finally:
        emulator.dispose()
    assert snapshot(configured.db_url) == before


def test_the_deployment_is_read_through_connections_that_refuse_writes(
    configured: Settings,
) -> None:
    database = read_only_database(configured.db_url)
    try:
        with pytest.raises(StorageError, match="readonly|read-only"):
            with database.begin() as session:
                session.execute(text("DELETE FROM annotations"))
    finally:
        database.dispose()


def test_an_out_of_date_deployment_is_refused_and_left_alone(
    configured: Settings, tmp_path: Path
) -> None:
    database = Database.connect(configured.db_url)
    with database.engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '0001'"))
    database.dispose()
    before = snapshot(configured.db_url)

    with pytest.raises(CommandError, match="bertbot db upgrade"):
        prepare_emulator_database(configured, f"sqlite:///{tmp_path / 'emu.db'}")

    assert snapshot(configured.db_url) == before


def test_the_configured_database_named_with_database_is_neither_migrated_nor_copied(
    configured: Settings,
) -> None:
    before = snapshot(configured.db_url)
    named = configured.db_url
    if named.startswith("sqlite"):  # another spelling of the same file
        named = f"sqlite:///{os.path.relpath(configured.home_dir / 'bertbot.db')}"
        shutil.copyfile(  # the fresh SQLite database lives elsewhere: move it home
            make_url(configured.db_url).database or "", configured.home_dir / "bertbot.db"
        )
        configured = configured.model_copy(update={"database_url": None})
        before = snapshot(configured.db_url)
    prepare_emulator_database(configured, emulator_database_url(configured, named))
    assert snapshot(configured.db_url) == before
    assert not emulator_home(configured).exists()
    with pytest.raises(CommandError, match="--database"):
        emulator_database_url(configured, "mysql://nope")


# The real command, as `make run` starts it. -------------------------------------------


def _get(url: str) -> dict[str, Any]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback only
        return dict(json.loads(response.read()))


def _post(url: str, body: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json"}
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # noqa: S310 - loopback only
        return dict(json.loads(response.read()))


def test_serve_emulator_leaves_the_configured_database_untouched(
    migrated_template: Path, tmp_path: Path
) -> None:
    # Seed labels only: a registered model would be loaded (TensorFlow) at start.
    home = tmp_path / "home"
    home.mkdir()
    shutil.copyfile(migrated_template, home / "bertbot.db")
    configured_url = f"sqlite:///{home / 'bertbot.db'}"
    database = Database.connect(configured_url)
    with database.begin() as session:
        annotations.add_annotations(
            session=session,
            task="spam",
            items=[annotations.NewAnnotation(text="seed", label="ham")],
            annotator="seed",
            source=AnnotationSource.SEED,
        )
    database.dispose()
    before = snapshot(configured_url)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BERTBOT_", "SLACK_"))}
    env["BERTBOT_HOME"] = str(home)
    process = subprocess.Popen(
        [sys.executable, "-m", "bertbot.cli", "serve", "--emulator", "--port", "0"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        lines = [process.stdout.readline() for _ in range(2)]  # type: ignore[union-attr]
        assert "the Slack emulator is at" in lines[1], process.stderr.read()  # type: ignore[union-attr]
        url = lines[1].split(" is at ", 1)[1].split()[0]
        member = _get(url + "/emulator/api/config")["users"][0]["id"]
        sent = _post(
            url + "/emulator/api/send",
            {"user": member, "channel": "C0GENERAL", "text": "hello from the emulator"},
        )
        assert sent["ok"]
        emulator = Database.connect(emulator_database_url(load_settings(home=home), None))
        deadline = time.monotonic() + 15
        try:
            while True:  # the message is stored: in the emulator's database
                with emulator.begin() as session:
                    stored = messages.find_message(
                        session=session,
                        team_id=_get(url + "/emulator/api/config")["team"]["id"],
                        channel_id="C0GENERAL",
                        ts=_get(url + f"/emulator/api/state?user={member}")["channels"][
                            "C0GENERAL"
                        ][-1]["ts"],
                    )
                if stored is not None or time.monotonic() > deadline:
                    break
                time.sleep(0.1)
            assert stored is not None and stored.text == "hello from the emulator"
            with emulator.begin() as session:
                assert len(annotations.list_annotations(session=session)) == 1  # the seed
        finally:
            emulator.dispose()
        process.send_signal(signal.SIGTERM)
        assert process.wait(15) == 0
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(10)

    assert snapshot(configured_url) == before
