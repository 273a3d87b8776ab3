"""Engines and units of work.

The caller owns the unit of work:
``with database.begin() as session: repo_fn(..., session=session)``.
Repositories never commit. Any SQLAlchemy error leaving a unit of work becomes a
:class:`~storage.errors.StorageError` here, the one error boundary of this package.
:func:`after_commit` runs something once a unit of work has committed (and never if it
rolls back): what counts stored rows must not count rows that were rolled back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from storage.errors import StorageError

logger = logging.getLogger(__name__)

# Where a unit of work from Database.begin keeps what runs after its commit (Session.info).
_AFTER_COMMIT = "bertbot.after_commit"


def make_engine(url: str, *, echo: bool = False, pool_size: int = 10) -> Engine:
    """Create an engine with the settings each backend needs for concurrent use.

    SQLite gets foreign keys, WAL, a busy timeout and ``BEGIN IMMEDIATE`` transactions so
    that concurrent writers queue instead of failing; savepoints work as on PostgreSQL.

    Args:
        url: A ``sqlite:///path`` or ``postgresql+psycopg://`` URL.
        echo: Log every statement.
        pool_size: Connections kept open (PostgreSQL).
    """
    if url.startswith("sqlite"):
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"check_same_thread": False, "timeout": 30},
        )
        memory = url in ("sqlite://", "sqlite:///:memory:")

        @event.listens_for(engine, "connect")
        def _sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
            # Let SQLAlchemy, not pysqlite, emit BEGIN (so SAVEPOINT works), see
            # https://docs.sqlalchemy.org/en/20/dialects/sqlite.html#serializable-isolation-savepoints-transactional-ddl
            dbapi_connection.isolation_level = None
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            if not memory:
                cursor.execute("PRAGMA journal_mode=WAL")
                cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        @event.listens_for(engine, "begin")
        def _sqlite_begin(connection: Any) -> None:
            connection.exec_driver_sql("BEGIN IMMEDIATE")

        return engine
    return create_engine(
        url, echo=echo, pool_pre_ping=True, pool_size=pool_size, max_overflow=pool_size
    )


class Database:
    """An engine and its session factory: what services receive to run units of work."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._sessions = sessionmaker(engine, expire_on_commit=False)

    @classmethod
    def connect(cls, url: str, **engine_options: Any) -> Database:
        return cls(make_engine(url, **engine_options))

    @property
    def url(self) -> str:
        return self.engine.url.render_as_string(hide_password=True)

    @property
    def sqlite_path(self) -> Path | None:
        """The database file for a file-backed SQLite URL, else None."""
        url = self.engine.url
        if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
            return None
        return Path(url.database)

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def begin(self) -> Iterator[Session]:
        """One unit of work: commits on success, rolls back and raises StorageError on error.

        Callbacks given to :func:`after_commit` run after the commit, in order.
        """
        committed: list[Callable[[], None]] = []
        try:
            with self._sessions.begin() as session:
                session.info[_AFTER_COMMIT] = committed
                yield session
        except StorageError:
            raise
        except SQLAlchemyError as exc:
            logger.debug("unit of work failed", exc_info=True)
            raise StorageError(f"database error: {_short(exc)}") from exc
        for callback in committed:
            callback()

    def ping(self) -> None:
        """Raise StorageError if the database cannot be reached."""
        try:
            with self.engine.connect() as connection:
                connection.exec_driver_sql("SELECT 1")
        except SQLAlchemyError as exc:
            raise StorageError(f"cannot reach the database {self.url}: {_short(exc)}") from exc

    def dispose(self) -> None:
        self.engine.dispose()


def after_commit(session: Session, callback: Callable[[], None]) -> None:
    """Run ``callback`` once the unit of work of ``session`` has committed.

    Savepoints inside it do not count: the callback waits for the outer commit, and is
    dropped if the unit of work rolls back.

    Raises:
        ValueError: ``session`` is not a unit of work from :meth:`Database.begin`.
    """
    committed = session.info.get(_AFTER_COMMIT)
    if committed is None:
        raise ValueError("after_commit needs a unit of work from Database.begin()")
    committed.append(callback)


def _short(exc: SQLAlchemyError) -> str:
    original = getattr(exc, "orig", None)
    text = str(original if original is not None else exc)
    return text.strip().splitlines()[0] if text.strip() else type(exc).__name__
