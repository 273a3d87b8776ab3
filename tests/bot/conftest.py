"""The bot over real HTTP: waitress serving the Bolt app, a fake Slack Web API, SQLite.

Every test gets its own database (a copy of one migrated template), fake Slack, and bot
served by the same :class:`bot.transport.http.BotHttpServer` that ``bertbot serve --http`` uses.
Models are keyword-rule fakes behind the ``Classifier`` protocol: no TensorFlow here.
"""

from __future__ import annotations

import shutil
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import func, select

from bot.app import BotConfig, create_app, make_client
from bot.emulator.inbound import SlackSender
from bot.emulator.outbound import FakeSlack
from bot.services import BotServices
from bot.services.alert_outbox import AlertPolicy
from bot.services.roles import Roles
from bot.transport.http import BotHttpServer
from storage import schema
from storage.db import Database
from storage.models import Annotation, AuditEntry, Message, Prediction, SlackEvent
from trainer.explain import ExplainOptions, Explanation, Neighbour, WordAttribution, top_words
from trainer.serving import Prediction as ModelPrediction
from trainer.tasks import BUILTIN_TASKS, TaskSpec

SIGNING_SECRET = "test-signing-secret-0123"
BOT_TOKEN = "xoxb-test-0123"
ADMIN = "U0ADMIN01"
MODERATOR = "U0MODERATOR"
MEMBER = "U0MEMBER01"
GENERAL = "C0GENERAL"
MODERATORS_CHANNEL = "C0MODERATORS"
SPAM_TEXT = "WIN a FREE prize now, click here"
HAM_TEXT = "the standup moves to 10:30 tomorrow"

T = TypeVar("T")


class FakeClassifier:
    """Keyword rules behind the Classifier protocol; thread-safe; counts its calls."""

    def __init__(
        self,
        task: str,
        labels: Sequence[str],
        rules: Mapping[str, str],
        default: str,
        *,
        version: str = "3",
        confidence: float = 0.97,
        max_tokens: int = 64,
    ) -> None:
        self._task = task
        self._labels = tuple(labels)
        self._rules = dict(rules)
        self._default = default
        self._version = version
        self._confidence = confidence
        self._max_tokens = max_tokens
        self._lock = threading.Lock()
        self.calls = 0
        self.explained: list[str] = []  # texts explained ("Why?"), in order
        self.batch_sizes: list[int] = []
        self.delay_s = 0.0  # per call, like a real model's fixed cost

    @property
    def task(self) -> str:
        return self._task

    @property
    def version(self) -> str:
        return self._version

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    def predict(self, texts: Sequence[str]) -> list[ModelPrediction]:
        with self._lock:
            self.calls += 1
            self.batch_sizes.append(len(texts))
        if self.delay_s:
            time.sleep(self.delay_s)
        return [self._one(text) for text in texts]

    def explain(self, text: str, options: ExplainOptions) -> Explanation:
        """Each rule keyword pushes its label; the other words nothing."""
        with self._lock:
            self.explained.append(text)
        prediction = self._one(text)
        words = tuple(
            WordAttribution(word, 0.4 if self._rules.get(word.lower()) == prediction.label else 0.0)
            for word in text.split()
        )
        return Explanation(
            task=self._task,
            model_version=self._version,
            label=prediction.label,
            probability=prediction.confidence,
            words=words,
            top=top_words(words, options.top_words),
            neighbours=tuple(
                Neighbour(f"labelled example {i} <!channel>", prediction.label, 0.9 - i / 10)
                for i in range(options.neighbours)
            ),
            baseline_probability=0.5,
            log_odds=3.5,
            baseline_log_odds=0.0,
            completeness_gap=0.0,
            steps=options.steps,
            truncated=prediction.truncated,
        )

    def _one(self, text: str) -> ModelPrediction:
        words = text.lower().split()
        label = next((lbl for kw, lbl in self._rules.items() if kw in words), self._default)
        rest = (1.0 - self._confidence) / (len(self._labels) - 1)
        probabilities = {lbl: (self._confidence if lbl == label else rest) for lbl in self._labels}
        num_tokens = len(words) + 2
        return ModelPrediction(
            label=label,
            probabilities=probabilities,
            model_version=self._version,
            latency_ms=0.1,
            num_tokens=num_tokens,
            truncated=num_tokens > self._max_tokens,
        )


class FakeModels:
    """``ProductionModels``' ``get(task)`` over a dict."""

    def __init__(self, models: Mapping[str, FakeClassifier]) -> None:
        self.models = dict(models)

    def get(self, task: str) -> FakeClassifier | None:
        return self.models.get(task)


def fake_models() -> FakeModels:
    return FakeModels(
        {
            "spam": FakeClassifier(
                "spam", ("ham", "spam"), {"free": "spam", "win": "spam", "prize": "spam"}, "ham"
            ),
            "sentiment": FakeClassifier(
                "sentiment",
                ("negative", "neutral", "positive"),
                {"love": "positive", "great": "positive", "hate": "negative", "awful": "negative"},
                "neutral",
                version="5",
            ),
        }
    )


class TrackingExecutor(ThreadPoolExecutor):
    """The listeners' executor, able to wait until every submitted listener finished."""

    def __init__(self, workers: int) -> None:
        super().__init__(workers, thread_name_prefix="test-listener")
        self._pending = 0
        self._idle = threading.Condition()

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Future[Any]:
        with self._idle:
            self._pending += 1
        future = super().submit(fn, *args, **kwargs)
        future.add_done_callback(self._done)
        return future

    def _done(self, _future: Future[Any]) -> None:
        with self._idle:
            self._pending -= 1
            self._idle.notify_all()

    def wait_idle(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        with self._idle:
            while self._pending:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{self._pending} listener(s) still running")
                self._idle.wait(left)


@dataclass
class Bot:
    """A served bot and everything around it."""

    fake: FakeSlack
    sender: SlackSender
    server: BotHttpServer
    services: BotServices
    database: Database
    models: FakeModels
    executor: TrackingExecutor

    def settle(self, timeout: float = 10.0) -> None:
        """Wait until every listener started so far has finished."""
        self.executor.wait_idle(timeout)

    def count(self, model: Any) -> int:
        with self.database.begin() as session:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)

    def counts(self) -> dict[str, int]:
        return {
            "events": self.count(SlackEvent),
            "messages": self.count(Message),
            "predictions": self.count(Prediction),
            "annotations": self.count(Annotation),
            "audit": self.count(AuditEntry),
        }


def eventually(check: Callable[[], T], timeout: float = 5.0, interval: float = 0.02) -> T:
    """Retry ``check`` until it returns a truthy value (or raise its last assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            result = check()
            if result:
                return result
        except AssertionError:
            if time.monotonic() > deadline:
                raise
        if time.monotonic() > deadline:
            raise AssertionError(f"condition not met within {timeout}s (last: {result!r})")
        time.sleep(interval)


@pytest.fixture(scope="session")
def migrated_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One SQLite file migrated to head; each test copies it (migrations run once)."""
    path = tmp_path_factory.mktemp("bot-template") / "template.db"
    database = Database.connect(f"sqlite:///{path}")
    schema.upgrade(database)
    database.dispose()  # closing the last connection checkpoints the WAL into the file
    assert not path.with_name(path.name + "-wal").exists()
    return path


@pytest.fixture
def database(migrated_template: Path, tmp_path: Path) -> Iterator[Database]:
    path = tmp_path / "bot.db"
    shutil.copyfile(migrated_template, path)
    db = Database.connect(f"sqlite:///{path}")
    yield db
    db.dispose()


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    with FakeSlack(bot_token=BOT_TOKEN, users={MODERATOR: "mo", ADMIN: "ad", MEMBER: "me"}) as fake:
        yield fake


@pytest.fixture
def tasks() -> dict[str, TaskSpec]:
    return {"spam": BUILTIN_TASKS["spam"], "sentiment": BUILTIN_TASKS["sentiment"]}


@pytest.fixture
def alert_policy() -> AlertPolicy:
    return AlertPolicy(channel="moderators", threshold=0.8, reaction=None)


@pytest.fixture
def models() -> FakeModels:
    return fake_models()


@pytest.fixture
def bot(
    database: Database,
    fake_slack: FakeSlack,
    tasks: dict[str, TaskSpec],
    alert_policy: AlertPolicy,
    models: FakeModels,
) -> Iterator[Bot]:
    services = BotServices(
        database,
        models,
        tasks,
        Roles.of(admins=[ADMIN], moderators=[MODERATOR]),
        alerts=alert_policy,
    )
    client = make_client(BOT_TOKEN, base_url=fake_slack.api_url)
    executor = TrackingExecutor(8)
    app = create_app(BotConfig(signing_secret=SIGNING_SECRET), services, client, executor=executor)
    server = BotHttpServer(app, host="127.0.0.1", port=0, threads=8).start()
    sender = SlackSender(server.events_url, SIGNING_SECRET, fake=fake_slack)
    try:
        yield Bot(fake_slack, sender, server, services, database, models, executor)
    finally:
        server.close()
        executor.wait_idle()
        executor.shutdown(wait=True)
        services.close()
