"""``bertbot serve --emulator``: the bot over HTTP behind a local Slack emulator.

The emulator is its own little workspace: the bot calls its Web API with the fake's
well-known local credentials, its users play member, moderator and admin (added to the
configured roles), and alerts go to its #moderators. Everything listens on loopback only.

Its users are admins, so it never runs on the configured database: it has its own,
``$BERTBOT_HOME/emulator/bertbot.db`` (or ``--database URL``), migrated at start. The first
time, it copies the configured database's model registry (versions and aliases) and seed
labels into it, reading the configured database through connections that refuse writes
(:mod:`storage.seed_copy`); the copied versions name the deployment's artifact files by
absolute path, and what the emulator trains goes under ``$BERTBOT_HOME/emulator/models``.
Delete ``$BERTBOT_HOME/emulator`` to start again from the configured database's models.
"""

from __future__ import annotations

import logging
from pathlib import Path

from sqlalchemy.engine import make_url

from bertbot.commands import CommandError
from bertbot.settings import Settings, database_url
from storage.db import Database

logger = logging.getLogger(__name__)


def emulator_home(settings: Settings) -> Path:
    """Where the emulator keeps its database and the models it trains."""
    return settings.home_dir / "emulator"


def emulator_database_url(settings: Settings, database: str | None) -> str:
    """The emulator's database: ``database`` if given, else its own SQLite file.

    Raises:
        CommandError: ``database`` is neither a SQLite nor a PostgreSQL URL.
    """
    if not database:
        return f"sqlite:///{emulator_home(settings) / 'bertbot.db'}"
    try:
        return database_url(database)
    except ValueError as exc:
        raise CommandError(f"--database {exc}") from exc


def same_database(url: str, other: str) -> bool:
    """Whether two URLs name one database (SQLite files compared by their resolved path)."""
    first, second = make_url(url), make_url(other)
    if first.get_backend_name() == second.get_backend_name() == "sqlite":
        return Path(first.database or "").resolve() == Path(second.database or "").resolve()
    return first.render_as_string(hide_password=False) == second.render_as_string(
        hide_password=False
    )


def prepare_emulator_database(settings: Settings, url: str) -> None:
    """Migrate the emulator's database; the first time, copy the deployment's models into it.

    The configured database is only read, and only while the emulator's holds no model and
    no label.
    Given the configured database itself (``--database`` naming it), nothing is migrated
    or copied: serving checks its schema as always.

    Raises:
        CommandError: The configured database's schema is not at head (the copy needs it).
    """
    from storage import schema, seed_copy
    from trainer.artifact import resolve_artifact

    if same_database(url, settings.db_url):
        logger.warning("the emulator runs on the configured database %s", url)
        return
    target = Database.connect(url)
    try:
        if target.sqlite_path is not None:
            target.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
        schema.upgrade(target)
        with target.begin() as session:
            if seed_copy.has_models_or_labels(session=session):
                return  # copied before (or the emulator's own since)
        source_path = make_url(settings.db_url).database
        if settings.db_url.startswith("sqlite") and not (
            source_path and Path(source_path).is_file()
        ):
            logger.warning("no database at %s: the emulator starts without models", source_path)
            return
        source = seed_copy.read_only_database(settings.db_url)
        try:
            if schema.current_revision(source) != schema.head_revision():
                raise CommandError(
                    f"the configured database {source.url} is not at the current schema, so "
                    f"the emulator cannot copy its models; run `{schema.UPGRADE_HINT}`"
                )
            artifacts = settings.artifacts
            with source.begin() as read, target.begin() as write:
                copied = seed_copy.copy_models_and_seed_labels(
                    source=read,
                    target=write,
                    artifact_uri=lambda uri: resolve_artifact(artifacts, uri).resolve().as_uri(),
                )
        finally:
            source.dispose()
        logger.info(
            "the emulator's database %s starts with %d model version(s) and %d seed label(s) "
            "copied from %s",
            target.url,
            copied.model_versions,
            copied.seed_labels,
            source.url,
        )
    finally:
        target.dispose()


class ServedEmulator:
    """The emulator's Web API (started now) and its page (bound now, served by :meth:`open`).

    Raises:
        CommandError: ``host`` is not a loopback address, or the page's port is taken.
    """

    def __init__(self, host: str, port: int, database: str | None = None) -> None:
        from bot.emulator import Emulator, EmulatorWebServer
        from bot.emulator.web import is_loopback

        if not is_loopback(host):
            raise CommandError(
                "serve --emulator listens on a loopback address only (its credentials are "
                "public); drop --host or use 127.0.0.1"
            )
        self.emulator = Emulator(host=host)
        try:
            self.page = EmulatorWebServer(self.emulator, host=host, port=port)
        except OSError as exc:
            raise CommandError(
                f"cannot serve the emulator on {host}:{port} ({exc.strerror or exc}); "
                "choose another --port"
            ) from exc
        self.database = database
        self.home: Path | None = None  # set by settings_for
        self.emulator.start()

    def settings_for(self, settings: Settings) -> Settings:
        """The settings the bot runs with inside the emulator, its database made ready.

        Sets :attr:`home`, where the bot resolves artifacts and trains models: the
        emulator's own, unless it runs on the configured database.
        """
        from pydantic import SecretStr

        from bot.emulator.outbound import LOCAL_ADMIN_USER_TOKEN

        emulator = self.emulator
        url = emulator_database_url(settings, self.database)
        prepare_emulator_database(settings, url)
        configured = same_database(url, settings.db_url)
        self.home = settings.home_dir if configured else emulator_home(settings)
        return settings.model_copy(
            update={
                "database_url": url,
                "slack_api_url": emulator.api_url,
                "slack_bot_token": None,
                "slack_signing_secret": None,
                "slack_app_token": None,
                # The emulator's admin user token: the remove action deletes with it.
                "slack_admin_user_token": SecretStr(LOCAL_ADMIN_USER_TOKEN),
                "admins": [*settings.admins, *emulator.ids_with_role("admin")],
                "moderators": [*settings.moderators, *emulator.ids_with_role("moderator")],
                "moderators_channel": emulator.channels["moderators"],
            }
        )

    def open(self, events_url: str) -> str:
        """Send people's requests to the bot at ``events_url``; serve the page; its URL."""
        self.emulator.connect(events_url)
        self.page.start()
        return self.page.url

    def close(self) -> None:
        self.page.stop()
        self.emulator.stop()
