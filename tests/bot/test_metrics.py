"""Prometheus metrics: ``GET /metrics`` beside ``/slack/events``, fed by real requests.

The bot is served as ``bertbot serve --http`` serves it (waitress, the fake Slack, signed
requests), with a fresh :class:`bot.observability.BotMetrics` per test; the metrics are
read back by scraping, over HTTP, and parsing the text format.
"""

from __future__ import annotations

import logging
import urllib.error
import urllib.request
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import pytest
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import text

from bot.app import BotConfig, create_app, make_client
from bot.emulator.inbound import SlackSender
from bot.emulator.outbound import FakeSlack
from bot.observability import BotMetrics, MetricsServer, SchedulerMetrics
from bot.services import BotServices
from bot.services.alert_outbox import AlertPolicy
from bot.services.predictor import Predictor
from bot.services.roles import Roles
from bot.transport.http import BotHttpServer
from storage import alerts, inbox, messages
from storage.db import Database
from storage.errors import StorageError
from storage.records import InboxStats
from tests.bot.conftest import (
    ADMIN,
    BOT_TOKEN,
    HAM_TEXT,
    MEMBER,
    MODERATOR,
    SIGNING_SECRET,
    SPAM_TEXT,
    FakeModels,
    TrackingExecutor,
)
from trainer.serving import Prediction
from trainer.tasks import TaskSpec

# The names the README documents.
METRIC_NAMES = (
    "bertbot_http_request_seconds",
    "bertbot_ack_seconds",
    "bertbot_batch_size",
    "bertbot_batch_wait_seconds",
    "bertbot_predictions_total",
    "bertbot_production_version_info",
    "bertbot_alert_outbox_depth",
    "bertbot_inbox_depth",
    "bertbot_retrain_runs_total",
    "bertbot_retrain_seconds",
)


@dataclass
class MeteredBot:
    sender: SlackSender
    server: BotHttpServer
    metrics: BotMetrics
    database: Database
    executor: TrackingExecutor

    @property
    def metrics_url(self) -> str:
        return self.server.url + "/metrics"

    def scrape(self) -> Scrape:
        with urllib.request.urlopen(self.metrics_url, timeout=10) as response:
            assert response.status == 200
            return Scrape(response.headers["Content-Type"], response.read().decode())


@dataclass(frozen=True)
class Scrape:
    content_type: str
    text: str

    def value(self, name: str, **labels: str) -> float:
        """The sample ``name`` whose labels include ``labels`` (0 when there is none)."""
        found = [
            sample.value
            for family in text_string_to_metric_families(self.text)
            for sample in family.samples
            if sample.name == name and labels.items() <= sample.labels.items()
        ]
        assert len(found) <= 1, f"{name}{labels} matches {len(found)} samples"
        return found[0] if found else 0.0

    def has(self, name: str, **labels: str) -> bool:
        return any(
            sample.name == name and labels.items() <= sample.labels.items()
            for family in text_string_to_metric_families(self.text)
            for sample in family.samples
        )


class VersionedModels(FakeModels):
    """The fake models, with ``ProductionModels.versions``."""

    def versions(self) -> dict[str, str]:
        return {task: model.version for task, model in self.models.items()}


@pytest.fixture
def metered(
    database: Database,
    fake_slack: FakeSlack,
    tasks: dict[str, TaskSpec],
    alert_policy: AlertPolicy,
    models: FakeModels,
) -> Iterator[MeteredBot]:
    """conftest's ``bot``, wired to metrics the way ``bertbot serve`` wires them."""
    metrics = BotMetrics()
    services = BotServices(
        database,
        models,
        tasks,
        Roles.of(admins=[ADMIN], moderators=[MODERATOR]),
        alerts=alert_policy,
        observer=metrics,
    )
    metrics.watch_production(VersionedModels(models.models).versions)
    metrics.watch_queues(inbox=services.inbox.stats, alert_outbox=services.outbox.depth)
    client = make_client(BOT_TOKEN, base_url=fake_slack.api_url)
    executor = TrackingExecutor(8)
    app = create_app(BotConfig(signing_secret=SIGNING_SECRET), services, client, executor=executor)
    server = BotHttpServer(app, host="127.0.0.1", port=0, threads=8, metrics=metrics).start()
    sender = SlackSender(server.events_url, SIGNING_SECRET, fake=fake_slack)
    try:
        yield MeteredBot(sender, server, metrics, database, executor)
    finally:
        server.close()
        executor.wait_idle()
        executor.shutdown(wait=True)
        services.close()


def test_metrics_are_served_beside_slack_events_with_every_documented_name(
    metered: MeteredBot,
) -> None:
    scrape = metered.scrape()
    assert scrape.content_type.startswith("text/plain; version=")
    for name in METRIC_NAMES:
        assert f"# TYPE {name} " in scrape.text, name
    assert "process_cpu_seconds_total" in scrape.text  # the standard process series
    # Read from the models at scrape time.
    assert scrape.value("bertbot_production_version_info", task="spam", version="3") == 1
    assert scrape.value("bertbot_production_version_info", task="sentiment", version="5") == 1
    # Health checks still answer, and are timed too.
    with urllib.request.urlopen(metered.server.url + "/healthz", timeout=5) as response:
        assert response.read() == b"ok\n"
    after = metered.scrape()
    assert after.value("bertbot_http_request_seconds_count", route="/healthz", status="200") == 1
    assert after.value("bertbot_http_request_seconds_count", route="/metrics", status="200") == 1


def test_a_post_to_metrics_is_not_found(
    metered: MeteredBot,
) -> None:
    request = urllib.request.Request(metered.metrics_url, data=b"", method="POST")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(request, timeout=5)
    assert refused.value.code == 404
    scrape = metered.scrape()
    assert scrape.value("bertbot_http_request_seconds_count", route="/metrics", status="404") == 1


def test_a_classify_command_is_timed_once_and_its_predictions_counted(
    metered: MeteredBot,
) -> None:
    before = metered.scrape()
    command = {"route": "/slack/events:command", "status": "200"}
    assert before.value("bertbot_http_request_seconds_count", **command) == 0

    delivery = metered.sender.command(SPAM_TEXT, user_id=MEMBER)
    assert delivery.status == 200
    metered.executor.wait_idle()  # the predictions are stored after the ack
    after = metered.scrape()
    assert after.value("bertbot_http_request_seconds_count", **command) == 1
    assert after.value("bertbot_ack_seconds_count", kind="command") == 1
    spam = {"task": "spam", "label": "spam", "model_version": "3"}
    neutral = {"task": "sentiment", "label": "neutral", "model_version": "5"}
    assert after.value("bertbot_predictions_total", **spam) == 1
    assert after.value("bertbot_predictions_total", **neutral) == 1
    assert not after.has("bertbot_predictions_total", task="spam", label="ham")
    # Only the command was acknowledged: scrapes are requests, not acks.
    assert after.value("bertbot_ack_seconds_count") == 1
    # Its text went through the batcher: one batch of one text per task.
    for task in ("spam", "sentiment"):
        assert after.value("bertbot_batch_size_count", task=task) == 1
        assert after.value("bertbot_batch_size_sum", task=task) == 1
        assert after.value("bertbot_batch_wait_seconds_count", task=task) == 1


def test_events_unsigned_requests_and_stray_paths_get_their_own_routes(
    metered: MeteredBot,
) -> None:
    sender = metered.sender
    assert sender.event(sender.message_event(HAM_TEXT, user_id=MEMBER)).status == 200
    assert sender.command("x", user_id=MEMBER, bad_signature=True).status == 401
    with pytest.raises(urllib.error.HTTPError):
        urllib.request.urlopen(metered.server.url + "/wp-login.php", timeout=5)
    metered.executor.wait_idle()
    scrape = metered.scrape()
    count = "bertbot_http_request_seconds_count"
    assert scrape.value(count, route="/slack/events:event", status="200") == 1
    assert scrape.value(count, route="/slack/events", status="401") == 1  # refused before Bolt
    assert scrape.value(count, route="other", status="404") == 1
    assert scrape.value("bertbot_ack_seconds_count", kind="event") == 1
    assert scrape.value("bertbot_ack_seconds_count") == 1  # a refused request is no ack
    # The channel message was classified by both tasks.
    assert scrape.value("bertbot_predictions_total", task="spam", label="ham") == 1


def test_queue_depths_reflect_the_stored_rows(metered: MeteredBot) -> None:
    with metered.database.begin() as session:
        ids = [
            inbox.add_delivery(
                session=session,
                event_id=f"Ev{n}",
                event_type="message",
                team_id="T1",
                payload="{}",
            )
            for n in range(4)
        ]
        assert all(record is not None for record in ids)
        dead = ids[0]
        assert dead is not None
        inbox.mark_failed(session=session, item_id=dead.id, error="boom", retry_at=None)
        for n in range(3):
            message = messages.add_message(
                session=session,
                team_id="T1",
                channel_id="C1",
                ts=f"1.00000{n}",
                text="x",
                user_id="U1",
            )
            prediction = messages.add_prediction(
                session=session,
                task="spam",
                model_version="3",
                label="spam",
                scores={"ham": 0.1, "spam": 0.9},
                latency_ms=1.0,
                message_id=message.id,
            )
            alerts.add_alert(
                session=session, prediction_id=prediction.id, label="spam", channel="mods"
            )
    scrape = metered.scrape()
    assert scrape.value("bertbot_inbox_depth", status="pending") == 3
    assert scrape.value("bertbot_inbox_depth", status="working") == 0
    assert scrape.value("bertbot_inbox_depth", status="dead") == 1
    assert not scrape.has("bertbot_inbox_depth", status="done")
    assert scrape.value("bertbot_alert_outbox_depth") == 3


def test_a_database_failure_during_a_scrape_leaves_out_only_what_it_could_not_read(
    metered: MeteredBot, caplog: pytest.LogCaptureFixture
) -> None:
    with metered.database.begin() as session:
        session.execute(text("DROP TABLE inbox"))
    with caplog.at_level(logging.WARNING, logger="bot.observability.collectors"):
        scrape = metered.scrape()
    assert "# TYPE bertbot_inbox_depth gauge" in scrape.text
    assert not scrape.has("bertbot_inbox_depth")
    assert scrape.value("bertbot_alert_outbox_depth") == 0  # still read
    assert scrape.value("bertbot_production_version_info", task="spam", version="3") == 1
    [warning] = [r for r in caplog.records if r.name == "bot.observability.collectors"]
    assert "cannot read the inbox" in warning.getMessage()


# Without HTTP -----------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def _stats(pending: int) -> InboxStats:
    return InboxStats(pending=pending, working=0, dead=0, done=0, oldest_waiting_at=None)


def _value(metrics: BotMetrics | SchedulerMetrics, name: str, **labels: str) -> float | None:
    return metrics.registry.get_sample_value(name, labels)


def _scrape(metrics: BotMetrics) -> Scrape:
    return Scrape("", generate_latest(metrics.registry).decode())


def test_queue_depths_are_read_at_most_once_per_interval_and_failures_too() -> None:
    clock = Clock()
    reads: list[str] = []
    failing = {"inbox": False}

    def inbox_stats() -> InboxStats:
        reads.append("inbox")
        if failing["inbox"]:
            raise StorageError("database error: gone")
        return _stats(len(reads))

    def outbox_depth() -> int:
        reads.append("outbox")
        return 7

    metrics = BotMetrics(process=False)
    metrics.watch_queues(inbox=inbox_stats, alert_outbox=outbox_depth, max_age_s=5.0, clock=clock)
    assert reads == []  # registering reads nothing
    assert _scrape(metrics).value("bertbot_inbox_depth", status="pending") == 1
    clock.now += 4.9
    assert _scrape(metrics).value("bertbot_inbox_depth", status="pending") == 1  # reused
    assert reads == ["inbox", "outbox"]
    clock.now += 0.2
    failing["inbox"] = True
    scrape = _scrape(metrics)
    assert not scrape.has("bertbot_inbox_depth")
    assert scrape.value("bertbot_alert_outbox_depth") == 7
    clock.now += 1.0
    assert not _scrape(metrics).has("bertbot_inbox_depth")
    assert reads == ["inbox", "outbox", "inbox", "outbox"]  # the failure is not retried at once
    failing["inbox"] = False
    clock.now += 5.0
    assert _scrape(metrics).value("bertbot_inbox_depth", status="pending") == 5


def test_observe_batch_counts_one_batch_and_each_callers_wait() -> None:
    metrics = BotMetrics(process=False)
    metrics.observe_batch("spam", 3, [0.001, 0.004, 0.02])
    metrics.observe_batch("spam", 1, [0.0])
    assert _value(metrics, "bertbot_batch_size_count", task="spam") == 2
    assert _value(metrics, "bertbot_batch_size_sum", task="spam") == 4
    assert _value(metrics, "bertbot_batch_size_bucket", task="spam", le="2.0") == 1
    assert _value(metrics, "bertbot_batch_wait_seconds_count", task="spam") == 4
    assert _value(metrics, "bertbot_batch_wait_seconds_bucket", task="spam", le="0.005") == 3


class RecordingObserver:
    def __init__(self) -> None:
        self.stored: list[tuple[str, str, str]] = []

    def prediction_stored(self, task: str, label: str, model_version: str) -> None:
        self.stored.append((task, label, model_version))

    def observe_batch(self, task: str, size: int, waits_s: Sequence[float]) -> None:
        raise AssertionError("no batches here")


def test_a_prediction_is_counted_only_once_its_unit_of_work_commits(
    database: Database, tasks: dict[str, TaskSpec], models: FakeModels
) -> None:
    observer = RecordingObserver()
    predictor = Predictor(models, tasks, observer=observer)
    spec = tasks["spam"]
    prediction = Prediction(
        label="spam",
        probabilities={"ham": 0.1, "spam": 0.9},
        model_version="3",
        latency_ms=1.0,
        num_tokens=5,
        truncated=False,
    )
    with pytest.raises(RuntimeError), database.begin() as session:
        predictor.store(session, spec, prediction, text="rolled back")
        raise RuntimeError("the unit of work fails after the prediction")
    assert observer.stored == []
    with database.begin() as session:
        predictor.store(session, spec, prediction, text="kept")
        predictor.store(session, spec, None, text="no model: nothing stored")
        assert observer.stored == []  # not before the commit
    assert observer.stored == [("spam", "spam", "3")]


def test_retrains_are_counted_and_timed_by_task_and_outcome() -> None:
    metrics = SchedulerMetrics(process=False)
    metrics.retrain_finished("spam", "succeeded", 120.0)
    metrics.retrain_finished("spam", "failed", 3.0)
    metrics.retrain_finished("spam", "failed", 4.0)
    assert _value(metrics, "bertbot_retrain_runs_total", task="spam", outcome="failed") == 2
    assert _value(metrics, "bertbot_retrain_runs_total", task="spam", outcome="succeeded") == 1
    assert _value(metrics, "bertbot_retrain_seconds_sum", task="spam", outcome="failed") == 7.0


@pytest.mark.parametrize("make", [BotMetrics, SchedulerMetrics], ids=["serve", "scheduler"])
def test_a_metrics_port_of_its_own_serves_the_registry_until_closed(
    make: type[BotMetrics] | type[SchedulerMetrics],
) -> None:
    metrics = make()
    metrics.retrain_finished("spam", "rejected", 60.0)
    server = MetricsServer(metrics.registry, host="127.0.0.1", port=0).start()
    url = server.url
    try:
        assert url.startswith("http://127.0.0.1:") and url.endswith("/metrics")
        assert server.port != 0
        with urllib.request.urlopen(url, timeout=5) as response:
            body = response.read().decode()
            assert response.headers["Content-Type"].startswith("text/plain; version=")
        scrape = Scrape("", body)
        assert scrape.value("bertbot_retrain_runs_total", task="spam", outcome="rejected") == 1
        assert "process_cpu_seconds_total" in body
    finally:
        server.close()
    server.close()  # twice is fine
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=2)


def test_a_taken_metrics_port_is_refused_clearly() -> None:
    from bertbot.commands import CommandError
    from bertbot.commands.common import start_metrics_server

    metrics = SchedulerMetrics(process=False)
    with MetricsServer(metrics.registry, port=0) as taken:
        with pytest.raises(CommandError, match=f"cannot serve metrics on 127.0.0.1:{taken.port}"):
            start_metrics_server(metrics.registry, "127.0.0.1", taken.port)
    assert start_metrics_server(metrics.registry, "127.0.0.1", 0) is None
    with pytest.raises(CommandError, match="between 1 and 65535"):
        start_metrics_server(metrics.registry, "127.0.0.1", 70000)
