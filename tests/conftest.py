"""Shared fixtures: real databases (SQLite and PostgreSQL) with the migrations applied.

PostgreSQL tests run when ``BERTBOT_TEST_POSTGRES_URL`` names a database on a server we may
create databases on (``make test`` and ``.ci/run`` set it). Without it they are reported as
not run; with ``CI=true`` a missing PostgreSQL fails them instead.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import create_engine, make_url
from sqlalchemy.orm import Session

from storage import schema
from storage.db import Database
from tests.ci import running_in_ci

POSTGRES_ENV = "BERTBOT_TEST_POSTGRES_URL"
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)]


def _postgres_url() -> str:
    url = os.environ.get(POSTGRES_ENV)
    if not url:
        message = f"PostgreSQL tests did not run: {POSTGRES_ENV} is not set"
        if running_in_ci():
            pytest.fail(message + " (required when CI=true)")
        pytest.skip(message)
    if url.startswith(("postgres://", "postgresql://")):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    return url


class FreshDatabases:
    """Creates empty databases of either backend and removes them afterwards."""

    def __init__(self, tmp_dir: Path) -> None:
        self._tmp_dir = tmp_dir
        self._created: list[tuple[str, Database]] = []

    def create(self, backend: str) -> Database:
        if backend == "sqlite":
            path = self._tmp_dir / f"{uuid.uuid4().hex}.db"
            database = Database.connect(f"sqlite:///{path}")
            self._created.append(("sqlite", database))
            return database
        base_url = make_url(_postgres_url())
        name = f"bertbot_t_{uuid.uuid4().hex[:12]}"
        admin = create_engine(base_url, isolation_level="AUTOCOMMIT")
        try:
            with admin.connect() as connection:
                connection.exec_driver_sql(f'CREATE DATABASE "{name}"')
        except Exception as exc:  # noqa: BLE001 - turn any connection failure into a clear message
            admin.dispose()
            message = f"PostgreSQL at {base_url.render_as_string()} is not usable: {exc}"
            if running_in_ci():
                pytest.fail(message)
            pytest.skip(message)
        admin.dispose()
        database = Database.connect(base_url.set(database=name).render_as_string(False))
        self._created.append((name, database))
        return database

    def drop_all(self) -> None:
        for name, database in self._created:
            database.dispose()
            if name == "sqlite":
                continue
            admin = create_engine(make_url(_postgres_url()), isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
            admin.dispose()
        self._created.clear()


@pytest.fixture(scope="session")
def fresh_databases(tmp_path_factory: pytest.TempPathFactory) -> Iterator[FreshDatabases]:
    factory = FreshDatabases(tmp_path_factory.mktemp("databases"))
    yield factory
    factory.drop_all()


@pytest.fixture
def empty_database(backend: str, tmp_path: Path) -> Iterator[Database]:
    """A new empty database of the same backend as ``migrated_database``, dropped after."""
    factory = FreshDatabases(tmp_path)
    yield factory.create(backend)
    factory.drop_all()


@pytest.fixture(scope="session", params=BACKENDS)
def migrated_database(request: pytest.FixtureRequest, fresh_databases: FreshDatabases) -> Database:
    """One database per backend for the whole run, migrated to head."""
    database = fresh_databases.create(request.param)
    schema.upgrade(database)
    return database


@pytest.fixture(params=BACKENDS)
def fresh_database(request: pytest.FixtureRequest, fresh_databases: FreshDatabases) -> Database:
    """A new database of each backend, migrated to head, for tests that commit."""
    database = fresh_databases.create(request.param)
    schema.upgrade(database)
    return database


@pytest.fixture
def backend(migrated_database: Database) -> str:
    return migrated_database.dialect


@pytest.fixture
def session(migrated_database: Database) -> Iterator[Session]:
    """A session inside a transaction that is rolled back after the test.

    Repositories' savepoints nest inside it, so duplicate-key tests work as in production.
    """
    with migrated_database.engine.connect() as connection:
        transaction = connection.begin()
        db_session = Session(
            bind=connection, join_transaction_mode="create_savepoint", expire_on_commit=False
        )
        try:
            yield db_session
        finally:
            db_session.close()
            transaction.rollback()


@pytest.fixture
def clean_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """An empty ``$BERTBOT_HOME`` under ``tmp_path``, run from ``tmp_path`` (no stray .env),
    with no ``BERTBOT_*`` or ``SLACK_*`` variable from the caller's environment."""
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("BERTBOT_", "SLACK_")):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    monkeypatch.setenv("BERTBOT_HOME", str(home))
    return home
