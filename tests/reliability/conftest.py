"""Reliability tests: the bot over real HTTP under faults, hostile input and role abuse.

Every test records its counts (requests sent, faults injected, rows expected and found)
with the ``report`` fixture: they are printed (``pytest -s`` or ``-rA`` shows them) and,
when ``BERTBOT_RELIABILITY_REPORT`` names a file, appended to it as one JSON line per test
so a bench script can summarise a run.

The bots here are built exactly like ``tests/bot``'s (waitress serving the Bolt app, a
fake Slack Web API, keyword-rule fake classifiers, no TensorFlow), on SQLite or on a
fresh PostgreSQL database per test.
"""

from __future__ import annotations

import json
import os
import pwd
import shutil
import subprocess
import threading
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

from bot.app import BotConfig, create_app, make_client
from bot.emulator.inbound import SlackSender
from bot.emulator.outbound import FakeSlack, RecordedCall
from bot.inbox_policy import InboxPolicy
from bot.services import BotServices
from bot.services.alert_outbox import AlertPolicy
from bot.services.retraining import RetrainService
from bot.services.roles import Roles
from bot.services.status import StatusService
from bot.transport.http import BotHttpServer
from storage import schema
from storage.db import Database
from tests.bot.conftest import (
    ADMIN,
    BOT_TOKEN,
    MEMBER,
    MODERATOR,
    SIGNING_SECRET,
    Bot,
    FakeModels,
    TrackingExecutor,
    fake_models,
)
from tests.ci import running_in_ci
from tests.conftest import FreshDatabases
from trainer.retrain import RetrainError, RetrainOptions
from trainer.tasks import BUILTIN_TASKS

REPORT_ENV = "BERTBOT_RELIABILITY_REPORT"


@dataclass
class Report:
    """The counts of one reliability test, printed and written as a JSON line."""

    test: str
    counts: dict[str, Any] = field(default_factory=dict)
    started: float = field(default_factory=time.monotonic)
    emitted: bool = False

    def add(self, **counts: Any) -> None:
        self.counts.update(counts)

    def emit(self, outcome: str = "passed") -> None:
        """Print the counts and append them to ``$BERTBOT_RELIABILITY_REPORT``, once."""
        if self.emitted:
            return
        self.emitted = True
        line = {
            "test": self.test,
            "outcome": outcome,
            "seconds": round(time.monotonic() - self.started, 2),
            **self.counts,
        }
        shown = ", ".join(f"{key}={value}" for key, value in line.items() if key != "test")
        print(f"\n[reliability] {self.test}: {shown}", flush=True)
        path = os.environ.get(REPORT_ENV)
        if path:
            with open(path, "a", encoding="utf-8") as stream:
                stream.write(json.dumps(line, sort_keys=True, default=str) + "\n")


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Iterator[Report]:
    """Counts for this test; a test that fails before emitting is reported as ``failed``."""
    current = Report(request.node.nodeid)
    yield current
    current.emit("failed" if not current.emitted else "passed")


def posted_to(response_url: str) -> Callable[[RecordedCall], bool]:
    """Matches the fake Slack's record of a post to ``response_url``."""
    key = response_url.rstrip("/").rsplit("/", 1)[-1]

    def match(call: RecordedCall) -> bool:
        return call.path.endswith(key)

    return match


@pytest.fixture(scope="session")
def reliability_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated SQLite file; each test copies it."""
    path = tmp_path_factory.mktemp("reliability-template") / "template.db"
    database = Database.connect(f"sqlite:///{path}")
    schema.upgrade(database)
    database.dispose()
    return path


@pytest.fixture
def sqlite_database(reliability_template: Path, tmp_path: Path) -> Iterator[Database]:
    path = tmp_path / "bot.db"
    shutil.copyfile(reliability_template, path)
    database = Database.connect(f"sqlite:///{path}")
    yield database
    database.dispose()


@pytest.fixture
def postgres_database(tmp_path: Path) -> Iterator[Database]:
    """A fresh PostgreSQL database for this test, migrated to head and dropped after.

    Skipped without ``BERTBOT_TEST_POSTGRES_URL`` (failed instead when ``CI=true``).
    """
    factory = FreshDatabases(tmp_path)
    database = factory.create("postgresql")
    try:
        schema.upgrade(database)
        yield database
    finally:
        factory.drop_all()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def any_database(request: pytest.FixtureRequest) -> Database:
    """The test runs once on SQLite and once on PostgreSQL."""
    name = "sqlite_database" if request.param == "sqlite" else "postgres_database"
    database: Database = request.getfixturevalue(name)
    return database


BotFactory = Callable[..., "FullBot"]


class RecordingRunner:
    """A retrain runner that only records who started it (no training here)."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def __call__(
        self, database: Database, spec: Any, options: Any, *, requested_by: str, **_: Any
    ) -> Any:
        with self._lock:
            self.calls.append((spec.name, requested_by))
        raise RetrainError("no training in reliability tests")


@dataclass
class FullBot(Bot):
    """A served bot with every surface: status (Home, shortcut) and /retrain."""

    status: StatusService
    retraining: RetrainService
    runner: RecordingRunner
    home: Path


@pytest.fixture
def serve_bot(tmp_path: Path) -> Iterator[BotFactory]:
    """Serve a bot on a database: ``serve_bot(database, roles=..., models=..., threads=...)``.

    Every surface is registered (``/classify``, events, labels, ``/bertbot``, App Home, the
    label shortcut, ``/retrain`` and its card's buttons); ``/retrain`` runs a
    :class:`RecordingRunner`. Every bot (and its fake Slack) is stopped after the test.
    """
    with ExitStack() as stack:

        def serve(
            database: Database,
            *,
            roles: Roles | None = None,
            models: FakeModels | None = None,
            threads: int = 8,
            users: Mapping[str, str] | None = None,
            inbox: InboxPolicy | None = None,
        ) -> FullBot:
            fake = stack.enter_context(
                FakeSlack(
                    bot_token=BOT_TOKEN,
                    users=users or {MODERATOR: "mo", ADMIN: "ad", MEMBER: "me"},
                )
            )
            models = models or fake_models()
            roles = roles or Roles.of(admins=[ADMIN], moderators=[MODERATOR])
            tasks = {"spam": BUILTIN_TASKS["spam"], "sentiment": BUILTIN_TASKS["sentiment"]}
            services = BotServices(
                database,
                models,
                tasks,
                roles,
                alerts=AlertPolicy(channel="moderators", threshold=0.8, reaction=None),
                inbox=inbox,
            )
            status = StatusService(database, models, tasks, roles)
            runner = RecordingRunner()
            retraining = RetrainService(
                database,
                tasks,
                RetrainOptions(
                    home=tmp_path / "home", encoder_dir=tmp_path / "encoder", base_encoder="fake"
                ),
                roles,
                runner=runner,
                progress_interval_s=0.0,
            )
            client = make_client(BOT_TOKEN, base_url=fake.api_url)
            executor = TrackingExecutor(threads)
            app = create_app(
                BotConfig(signing_secret=SIGNING_SECRET),
                services,
                client,
                executor=executor,
                status=status,
                retraining=retraining,
            )
            server = BotHttpServer(app, host="127.0.0.1", port=0, threads=threads).start()

            def stop() -> None:
                server.close()
                try:
                    executor.wait_idle(30)
                finally:
                    executor.shutdown(wait=True)
                    services.close()
                    retraining.shutdown(wait=True)

            stack.callback(stop)
            sender = SlackSender(server.events_url, SIGNING_SECRET, fake=fake, timeout=10)
            return FullBot(
                fake,
                sender,
                server,
                services,
                database,
                models,
                executor,
                status,
                retraining,
                runner,
                tmp_path / "home",
            )

        yield serve


class PostgresServer:
    """Stops and starts the local PostgreSQL cluster that serves the test database.

    Uses ``pg_ctlcluster`` (Debian's postgresql-common) on the cluster listening on the
    test URL's port; ``--skip-systemctl-redirect`` makes it work without systemd.
    """

    def __init__(self, version: str, cluster: str, host: str, port: int) -> None:
        self.version = version
        self.cluster = cluster
        self.host = host
        self.port = port

    def _ctl(self, action: str, *extra: str) -> None:
        subprocess.run(
            [
                "pg_ctlcluster",
                "--skip-systemctl-redirect",
                self.version,
                self.cluster,
                action,
                *extra,
            ],
            check=True,
            capture_output=True,
            timeout=60,
        )

    def is_ready(self) -> bool:
        result = subprocess.run(
            ["pg_isready", "-q", "-h", self.host, "-p", str(self.port)],
            check=False,
            timeout=10,
        )
        return result.returncode == 0

    def stop(self) -> None:
        """Fast shutdown: open connections are terminated, as in a crash or a failover."""
        self._ctl("stop", "-m", "fast")

    def start(self, timeout: float = 30.0) -> None:
        if not self.is_ready():
            self._ctl("start")
        deadline = time.monotonic() + timeout
        while not self.is_ready():
            if time.monotonic() > deadline:
                raise RuntimeError(f"PostgreSQL {self.version}/{self.cluster} did not come back")
            time.sleep(0.1)


def _cannot(message: str) -> NoReturn:
    if running_in_ci():
        pytest.fail(message + " (required when CI=true)")
    pytest.skip(message)


@pytest.fixture
def postgres_server(postgres_database: Database) -> Iterator[PostgresServer]:
    """Control of the PostgreSQL server behind ``postgres_database``; always left running.

    Skipped (failed when ``CI=true``) when this process cannot restart that server: not
    a local Debian cluster, or not run as root or postgres.
    """
    url = postgres_database.engine.url
    host, port = url.host or "127.0.0.1", int(url.port or 5432)
    if host not in ("127.0.0.1", "localhost", "::1"):
        _cannot(f"PostgreSQL at {host} is not on this machine, so it cannot be restarted")
    if shutil.which("pg_ctlcluster") is None or shutil.which("pg_lsclusters") is None:
        _cannot("pg_ctlcluster is not installed (Debian's postgresql-common): cannot restart")
    if os.geteuid() != 0 and pwd.getpwuid(os.geteuid()).pw_name != "postgres":
        _cannot("restarting PostgreSQL needs root or the postgres user")
    listing = subprocess.run(
        ["pg_lsclusters", "--no-header"], check=True, capture_output=True, text=True
    ).stdout
    found = [line.split() for line in listing.splitlines() if line.split()[2:3] == [str(port)]]
    if not found:
        _cannot(f"no local PostgreSQL cluster listens on port {port}")
    server = PostgresServer(found[0][0], found[0][1], host, port)
    try:
        yield server
    finally:
        server.start()  # whatever happened, leave PostgreSQL running
