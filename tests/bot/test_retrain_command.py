"""``/retrain`` over real HTTP: signed commands in, the worker's progress and result card out.

The learning loop is a fake runner behind :class:`bot.services.retraining.RetrainRunner` that writes
real rows (lease, run, version, alias, audit) with the storage repositories and a real gate
decision (:func:`trainer.gate.decide` on synthetic predictions), so the card is checked
against the registry. No TensorFlow here; the real trainer behind ``/retrain`` is tested in
``tests/trainer/test_retrain_slack.py``.
"""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from bot.app import BotConfig, create_app, make_client
from bot.emulator.inbound import Delivery, SlackSender
from bot.emulator.outbound import FakeMessage, FakeSlack
from bot.services import BotServices
from bot.services.errors import BotError
from bot.services.retrain_card import SlackRetrainCard
from bot.services.retrain_requests import JobInfo, RetrainPlan, RetrainRequest, parse_retrain
from bot.services.retraining import WORKER_THREAD_PREFIX, RetrainService
from bot.services.roles import Roles
from bot.transport.http import BotHttpServer
from bot.ui import retrain as admin_blocks
from storage import audit, registry, runs
from storage.annotations import NewAnnotation, add_annotation, add_annotations
from storage.db import Database
from storage.enums import AnnotationSource, RunStatus, RunTrigger, VersionStatus, utcnow
from storage.records import ModelVersionRecord
from tests.artifacts import write_fake_artifact
from tests.bot.conftest import (
    ADMIN,
    BOT_TOKEN,
    GENERAL,
    MEMBER,
    MODERATOR,
    SIGNING_SECRET,
    FakeModels,
    TrackingExecutor,
    eventually,
)
from trainer.decisions import RetrainProgress
from trainer.gate import GateConfig, decide
from trainer.pipeline import next_version
from trainer.retrain import AlreadyRunningError, RetrainError, RetrainOptions, RetrainOutcome
from trainer.tasks import TaskSpec

ADMIN2 = "U0ADMIN02"
OTHER_PROCESS_USER = "U0OTHER01"
SLACK_ACK_LIMIT_S = 3.0
SEED_EXAMPLES = 24
CORRECTIONS = 4


# A fake learning loop that writes what trainer.retrain writes --------------------------


@dataclass
class RunnerCall:
    task: str
    requested_by: str
    trigger: RunTrigger
    force: bool
    thread: str


@dataclass
class FakeRunner:
    """Stands in for trainer.retrain.retrain: same lease, run, registry and audit rows."""

    promote: bool = True
    steps: int = 3
    error: BaseException | None = None
    hold: threading.Event | None = None
    calls: list[RunnerCall] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)

    def release(self) -> None:
        if self.hold is not None:
            self.hold.set()

    def __call__(
        self,
        database: Database,
        spec: TaskSpec,
        options: RetrainOptions,
        *,
        trigger: RunTrigger,
        requested_by: str,
        force: bool = False,
        progress: Callable[[dict[str, Any]], None] | None = None,
    ) -> RetrainOutcome:
        self.calls.append(
            RunnerCall(spec.name, requested_by, trigger, force, threading.current_thread().name)
        )
        lease, holder = f"retrain:{spec.name}", f"fake:{uuid.uuid4().hex[:8]}"
        with database.begin() as session:
            if (
                runs.acquire_lease(
                    session=session, name=lease, holder=holder, ttl=options.lease_ttl
                )
                is None
            ):
                raise AlreadyRunningError(f"{spec.name} is held by another process")
            run = runs.create_run(
                session=session, task=spec.name, trigger=trigger, requested_by=requested_by
            )
            runs.acquire_lease(
                session=session, name=lease, holder=holder, ttl=options.lease_ttl, run_id=run.id
            )
            run = runs.start_run(session=session, run_id=run.id)
        self.started.set()
        try:
            for step in range(1, self.steps + 1):
                if progress is not None:
                    progress(
                        RetrainProgress(
                            "train",
                            step=step,
                            total_steps=self.steps,
                            eta_s=60.0 * (self.steps - step),
                        )
                    )
            if self.hold is not None:
                self.hold.wait(15)
            if self.error is not None:
                raise self.error
            return self._finish(database, spec, options, run.id, requested_by)
        except BaseException as exc:
            with database.begin() as session:
                runs.finish_run(
                    session=session, run_id=run.id, status=RunStatus.FAILED, error=str(exc)
                )
            raise
        finally:
            with database.begin() as session:
                runs.release_lease(session=session, name=lease, holder=holder)

    def _finish(
        self,
        database: Database,
        spec: TaskSpec,
        options: RetrainOptions,
        run_id: int,
        requested_by: str,
    ) -> RetrainOutcome:
        version = next_version(database, spec.name)
        with database.begin() as session:
            production = registry.get_alias(session=session, task=spec.name)
        decision = synthetic_decision(spec, self.promote, production is not None, options.gate)
        sha256 = write_fake_artifact(options.home / "models" / spec.name / version, version)
        with database.begin() as session:
            record = registry.add_model_version(
                session=session,
                task=spec.name,
                version=version,
                status=VersionStatus.ACCEPTED if decision.promote else VersionStatus.REJECTED,
                artifact_uri=f"models/{spec.name}/{version}",
                sha256=sha256,
                base_encoder="fake",
                hyperparameters={},
                data_snapshot={"taken_at": "2024-01-01T00:00:00+00:00"},
                metrics={"eval": decision.candidate},
                created_by=requested_by,
            )
            details = {"reason": decision.reason, "run": run_id}
            if decision.promote:
                current = registry.lock_alias(session=session, task=spec.name)
                assert registry.compare_and_set_alias(
                    session=session,
                    task=spec.name,
                    version_id=record.id,
                    expected_version_id=current.id if current else None,
                    updated_by=requested_by,
                )
                details["previous"] = current.version if current else None
            audit.record_audit(
                session=session,
                actor=requested_by,
                action="promote" if decision.promote else "reject",
                subject=f"{spec.name}/{version}",
                details=details,
            )
            status = RunStatus.SUCCEEDED if decision.promote else RunStatus.REJECTED
            finished = runs.finish_run(
                session=session,
                run_id=run_id,
                status=status,
                candidate_version_id=record.id,
                gate_decision=decision.to_json(),
            )
        return RetrainOutcome(finished, status, decision.reason, record, decision)


def synthetic_decision(spec: TaskSpec, promote: bool, has_production: bool, config: GateConfig):  # type: ignore[no-untyped-def]
    """A real gate decision on made-up predictions: a clearly better or worse candidate."""
    labels = list(spec.labels)
    truth = [labels[i % len(labels)] for i in range(60)]

    def noisy(rate: float, seed: int) -> list[str]:
        rng = random.Random(seed)
        return [
            y if rng.random() >= rate else rng.choice([x for x in labels if x != y]) for y in truth
        ]

    candidate = noisy(0.02 if promote else 0.6, 2)
    return decide(truth, candidate, noisy(0.3, 1) if has_production else None, labels, config)


# The served bot with a retrain worker ---------------------------------------------------


@dataclass
class RetrainBot:
    fake: FakeSlack
    sender: SlackSender
    service: RetrainService
    database: Database
    runner: FakeRunner
    reloads: list[str]
    executor: TrackingExecutor
    home: Path
    finished: list[tuple[str, str]] = field(default_factory=list)

    def retrain(self, text: str = "", *, user_id: str = ADMIN, **kwargs: Any) -> Delivery:
        return self.sender.command(text, command="/retrain", user_id=user_id, **kwargs)

    def answer(self, delivery: Delivery, timeout: float = 5.0) -> str:
        """The private answer posted to the command's response_url."""
        assert delivery.response_url is not None
        key = delivery.response_url.rsplit("/", 1)[-1]
        call = self.fake.wait_for(
            "response_url", where=lambda c: c.path.endswith(key), timeout=timeout
        )[0]
        return str(call.params["text"])

    def drain(self, timeout: float = 20.0) -> None:
        """Wait for the listeners (which queue jobs), then the jobs, then the reloads."""
        self.executor.wait_idle(timeout)
        self.service.drain(timeout)
        self.executor.wait_idle(timeout)

    def card(self, channel: str = GENERAL) -> FakeMessage:
        [message] = self.fake.messages(channel)
        return message

    def production(self, task: str = "spam") -> ModelVersionRecord | None:
        with self.database.begin() as session:
            return registry.get_alias(session=session, task=task)

    def audit_count(self) -> int:
        with self.database.begin() as session:
            return len(audit.list_audit(session=session, limit=10_000))


@pytest.fixture
def runner() -> FakeRunner:
    return FakeRunner()


@dataclass
class RecordingRetrains:
    """The service's observer: how each retrain ended (the metrics count these)."""

    finished: list[tuple[str, str]]

    def retrain_finished(self, task: str, outcome: str, seconds: float) -> None:
        assert seconds >= 0
        self.finished.append((task, outcome))


@pytest.fixture
def retrain_bot(
    database: Database,
    fake_slack: FakeSlack,
    tasks: dict[str, TaskSpec],
    models: FakeModels,
    runner: FakeRunner,
    tmp_path: Path,
) -> Iterator[RetrainBot]:
    roles = Roles.of(admins=[ADMIN, ADMIN2], moderators=[MODERATOR])
    services = BotServices(database, models, tasks, roles)
    reloads: list[str] = []
    finished: list[tuple[str, str]] = []
    options = RetrainOptions(
        home=tmp_path / "home",
        encoder_dir=tmp_path / "encoder",
        base_encoder="fake",
        gate=GateConfig(min_eval=20, bootstrap_resamples=200),
        min_new_labels=3,
        lease_ttl=timedelta(seconds=30),
    )
    service = RetrainService(
        database,
        tasks,
        options,
        roles,
        runner=runner,
        on_alias_moved=reloads.append,
        progress_interval_s=0.0,
        observer=RecordingRetrains(finished),
    )
    client = make_client(BOT_TOKEN, base_url=fake_slack.api_url)
    executor = TrackingExecutor(8)
    app = create_app(
        BotConfig(signing_secret=SIGNING_SECRET),
        services,
        client,
        executor=executor,
        retraining=service,
    )
    server = BotHttpServer(app, host="127.0.0.1", port=0, threads=8).start()
    sender = SlackSender(server.events_url, SIGNING_SECRET, fake=fake_slack)
    try:
        yield RetrainBot(
            fake_slack, sender, service, database, runner, reloads, executor, options.home, finished
        )
    finally:
        runner.release()
        server.close()
        executor.wait_idle()
        executor.shutdown(wait=True)
        service.shutdown(wait=True)


def seed(
    database: Database,
    task: str = "spam",
    *,
    production: bool = True,
    corrections: int = CORRECTIONS,
    home: Path | None = None,
) -> None:
    """Seed labels, production v1 (snapshot taken now), then ``corrections`` corrections.

    With ``home``, v1 has artifact files there (a rollback to it verifies them).
    """
    labels = ("ham", "spam") if task == "spam" else ("negative", "neutral", "positive")
    with database.begin() as session:
        add_annotations(
            session=session,
            task=task,
            items=[
                NewAnnotation(f"{task} seed text {i}", labels[i % len(labels)])
                for i in range(SEED_EXAMPLES)
            ],
            annotator="seed",
            source=AnnotationSource.SEED,
        )
    if production:
        with database.begin() as session:
            first = registry.add_model_version(
                session=session,
                task=task,
                version="1",
                status=VersionStatus.ACCEPTED,
                artifact_uri=f"models/{task}/1",
                sha256=(
                    write_fake_artifact(home / "models" / task / "1", "1") if home else "1" * 64
                ),
                base_encoder="fake",
                hyperparameters={},
                data_snapshot={"taken_at": utcnow().isoformat()},
                metrics={},
                created_by="cli",
            )
            registry.compare_and_set_alias(
                session=session,
                task=task,
                version_id=first.id,
                expected_version_id=None,
                updated_by="cli",
            )
            audit.record_audit(
                session=session,
                actor="cli",
                action="promote",
                subject=f"{task}/1",
                details={"reason": "first model", "previous": None},
            )
    time.sleep(0.01)  # corrections come strictly after the snapshot
    with database.begin() as session:
        for i in range(corrections):
            add_annotation(
                session=session,
                task=task,
                text=f"{task} corrected text {i}",
                label=labels[0],
                annotator=MODERATOR,
                source=AnnotationSource.CORRECTION,
            )


def text_of(blocks: list[dict[str, Any]]) -> str:
    parts: list[str] = []
    for block in blocks:
        if isinstance(block.get("text"), dict):
            parts.append(block["text"]["text"])
        for item in block.get("fields", []):
            parts.append(item["text"])
        for element in block.get("elements", []):
            if element.get("type") == "mrkdwn":
                parts.append(element["text"])
    return "\n".join(parts)


def buttons(blocks: list[dict[str, Any]]) -> list[str]:
    return [
        element["action_id"]
        for block in blocks
        if block["type"] == "actions"
        for element in block["elements"]
    ]


def as_message(card: FakeMessage) -> dict[str, Any]:
    return {"type": "message", "ts": card.ts, "text": card.text, "blocks": card.blocks}


def click(bot: RetrainBot, card: FakeMessage, action_id: str, user_id: str) -> Delivery:
    return bot.sender.click(
        user_id=user_id,
        blocks=card.blocks,
        action_id=action_id,
        channel_id=card.channel,
        message=as_message(card),
        message_ts=card.ts,
    )


def submit_view(
    sender: SlackSender, *, user_id: str, view: Mapping[str, Any], reason: str
) -> Delivery:
    """Submit a modal the way Slack does: a ``view_submission`` with the input's state."""
    values = {
        admin_blocks.REASON_BLOCK: {
            admin_blocks.REASON_ACTION: {"type": "plain_text_input", "value": reason}
        }
    }
    payload = {
        "type": "view_submission",
        "team": {"id": sender.team_id, "domain": sender.team_domain},
        "user": {"id": user_id, "username": user_id.lower(), "team_id": sender.team_id},
        "api_app_id": sender.api_app_id,
        "token": "verification-token-unused",
        "trigger_id": f"{int(time.time())}.1.{uuid.uuid4().hex[:16]}",
        "view": {**view, "id": "V0MODAL01", "team_id": sender.team_id, "state": {"values": values}},
        "response_urls": [],
        "is_enterprise_install": False,
        "enterprise": None,
    }
    body = urllib.parse.urlencode({"payload": json.dumps(payload)}).encode()
    return sender.post(body, "application/x-www-form-urlencoded")


def finished_card(bot: RetrainBot, delivery: Delivery) -> FakeMessage:
    bot.answer(delivery)
    bot.drain()
    return bot.card()


# Who may retrain ----------------------------------------------------------------------


def test_a_non_admin_is_refused_privately_and_nothing_starts(retrain_bot: RetrainBot) -> None:
    seed(retrain_bot.database)
    for user in (MEMBER, MODERATOR):
        delivery = retrain_bot.retrain("spam", user_id=user)
        assert delivery.status == 200
        assert delivery.json() == {
            "text": admin_blocks.NOT_ADMIN_RETRAIN,
            "response_type": "ephemeral",
        }
    retrain_bot.drain()
    assert retrain_bot.runner.calls == []
    with retrain_bot.database.begin() as session:
        assert runs.list_runs(session=session) == []
    assert retrain_bot.fake.calls("chat.postMessage") == []


def test_unknown_task_lists_the_active_tasks_and_help_shows_usage(
    retrain_bot: RetrainBot,
) -> None:
    answer = retrain_bot.retrain("toxicity").json()
    assert answer["response_type"] == "ephemeral"
    assert answer["text"].startswith("Unknown task 'toxicity'. Active tasks: spam, sentiment.")
    assert "Usage: `/retrain [task] [--force]`" in retrain_bot.retrain("help").json()["text"]
    retrain_bot.drain()
    assert retrain_bot.runner.calls == []


def test_parse_retrain_reads_tasks_and_force() -> None:
    names = ("spam", "sentiment")
    assert parse_retrain("", names) == RetrainRequest(("spam", "sentiment"), False)
    assert parse_retrain(" Spam --force", names) == RetrainRequest(("spam",), True)
    assert parse_retrain("sentiment, spam spam", names) == RetrainRequest(
        ("sentiment", "spam"), False
    )
    assert parse_retrain("help", names) is None
    with pytest.raises(BotError, match="Active tasks: spam, sentiment"):
        parse_retrain("spam toxic", names)


# The job, its progress and its card ---------------------------------------------------


@pytest.mark.parametrize("promote", [True, False], ids=["promoted", "rejected"])
def test_admin_retrain_acks_trains_on_the_worker_and_posts_a_card_matching_the_registry(
    retrain_bot: RetrainBot, promote: bool
) -> None:
    bot = retrain_bot
    bot.runner.promote = promote
    seed(bot.database)
    delivery = bot.retrain("spam")
    assert delivery.status == 200
    assert delivery.elapsed_s < SLACK_ACK_LIMIT_S
    answer = bot.answer(delivery)
    assert answer.startswith(
        f"Retraining *spam* on {SEED_EXAMPLES + CORRECTIONS} examples, {CORRECTIONS} new "
        "corrections (since production v1)."
    )
    bot.drain()

    [call] = bot.runner.calls
    assert call.thread.startswith(WORKER_THREAD_PREFIX)
    assert "listener" not in call.thread
    assert (call.task, call.requested_by, call.trigger, call.force) == (
        "spam",
        ADMIN,
        RunTrigger.ADMIN,
        False,
    )

    # One message: posted when the job started, updated with progress, then the card.
    [posted] = bot.fake.calls("chat.postMessage")
    assert posted.params["channel"] == GENERAL
    assert "Retraining spam" in posted.params["blocks"][0]["text"]["text"]
    updates = bot.fake.calls("chat.update")
    progress = [u.params["text"] for u in updates[:-1]]
    assert "Retraining spam: Training: step 2 of 3 (67%) · about 1 min left" in progress
    card = bot.card()
    assert card.ts == posted.response["ts"] and card.blocks == updates[-1].params["blocks"]

    with bot.database.begin() as session:
        [run] = runs.list_runs(session=session, task="spam")
        production = registry.get_alias(session=session, task="spam")
        assert run.candidate_version_id is not None
        candidate = registry.get_model_version_by_id(
            session=session, version_id=run.candidate_version_id
        )
    assert production is not None
    decision = run.gate_decision or {}
    assert (production.id == candidate.id) is promote is decision["promote"]
    text = text_of(card.blocks)
    assert bot.finished == [("spam", "succeeded" if promote else "rejected")]
    if promote:
        assert "*spam v2 promoted: it is production now* (was v1)" in text
        assert buttons(card.blocks) == [admin_blocks.ROLLBACK_ACTION]
        assert bot.reloads == ["spam"]
    else:
        assert "*spam v2 not promoted*: production stays v1" in text
        assert buttons(card.blocks) == [admin_blocks.PROMOTE_ACTION]
        assert bot.reloads == []
    assert f"*Decision*\n{'promoted' if promote else 'not promoted'}" in text
    assert f"*Candidate macro-F1*\n{decision['candidate']['macro_f1']:.4f}" in text
    assert f"*Production macro-F1*\n{decision['production']['macro_f1']:.4f}" in text
    assert f"*P(Δ &gt; 0)*\n{decision['p_improvement']:.3f}" in text
    assert f"*Why:* {decision['reason'][:40]}" in text
    for label in ("ham", "spam"):
        row = decision["candidate"]["per_class"][label]["f1"]
        assert f"{label}{' ' * 8}" in text and f"{row:.4f}" in text


def test_retrain_without_a_task_queues_every_task_on_the_one_worker(
    retrain_bot: RetrainBot,
) -> None:
    bot = retrain_bot
    seed(bot.database, "spam")
    seed(bot.database, "sentiment", production=False)
    answer = bot.answer(bot.retrain(""))
    assert "Retraining *spam* on 28 examples" in answer
    assert "Training the first *sentiment* model on 28 examples" in answer
    bot.drain()
    assert [c.task for c in bot.runner.calls] == ["spam", "sentiment"]
    assert len({c.thread for c in bot.runner.calls}) == 1
    cards = bot.fake.messages(GENERAL)
    assert len(cards) == 2
    assert "*sentiment v1 promoted: it is production now* (the task's first model)" in text_of(
        cards[1].blocks
    )


def test_too_few_new_corrections_start_nothing_unless_forced(retrain_bot: RetrainBot) -> None:
    bot = retrain_bot
    seed(bot.database, corrections=1)
    answer = bot.answer(bot.retrain("spam"))
    assert "*spam* was not retrained: 1 new correction(s) since production v1's snapshot, " in (
        answer
    )
    assert "fewer than 3. `/retrain spam --force` retrains anyway." in answer
    bot.drain()
    assert bot.runner.calls == []

    assert "Retraining *spam* on 25 examples" in bot.answer(bot.retrain("spam --force"))
    bot.drain()
    assert [c.force for c in bot.runner.calls] == [True]


# A second /retrain -------------------------------------------------------------------


def test_a_second_retrain_while_one_runs_says_who_started_it_and_when(
    retrain_bot: RetrainBot,
) -> None:
    bot = retrain_bot
    bot.runner.hold = threading.Event()
    seed(bot.database)
    bot.answer(bot.retrain("spam"))
    assert bot.runner.started.wait(10)

    answer = bot.answer(bot.retrain("spam", user_id=ADMIN2))
    assert answer.startswith(f"*spam* is already being retrained: started by <@{ADMIN}> <!date^")
    assert ", run 1. Nothing new was started." in answer

    bot.runner.release()
    bot.drain()
    assert len(bot.runner.calls) == 1


def test_a_retrain_running_in_another_process_is_found_through_its_lease(
    retrain_bot: RetrainBot,
) -> None:
    bot = retrain_bot
    seed(bot.database)
    with bot.database.begin() as session:
        run = runs.create_run(
            session=session,
            task="spam",
            trigger=RunTrigger.SCHEDULE,
            requested_by=OTHER_PROCESS_USER,
        )
        runs.start_run(session=session, run_id=run.id)
        runs.acquire_lease(
            session=session,
            name="retrain:spam",
            holder="other-host:4242:abcd",
            ttl=timedelta(minutes=5),
            run_id=run.id,
        )
    answer = bot.answer(bot.retrain("spam"))
    assert answer.startswith(
        f"*spam* is already being retrained: started by <@{OTHER_PROCESS_USER}> via schedule "
        "<!date^"
    )
    assert f", run {run.id}. Nothing new was started." in answer
    bot.drain()
    assert bot.runner.calls == []


# The card's buttons ------------------------------------------------------------------


def test_promote_anyway_by_an_admin_moves_production_audits_and_updates_the_card(
    retrain_bot: RetrainBot,
) -> None:
    bot = retrain_bot
    bot.runner.promote = False
    seed(bot.database)
    card = finished_card(bot, bot.retrain("spam"))
    assert bot.production().version == "1"  # type: ignore[union-attr]

    assert click(bot, card, admin_blocks.PROMOTE_ACTION, ADMIN).status == 200
    [opened] = bot.fake.wait_for("views.open")
    view = opened.params["view"]
    assert view["callback_id"] == admin_blocks.MOVE_CALLBACK
    reply = submit_view(bot.sender, user_id=ADMIN, view=view, reason="eval set is stale")
    assert reply.status == 200 and not reply.body.strip()  # the modal closes

    eventually(lambda: bot.production().version == "2")  # type: ignore[union-attr]
    bot.drain()
    with bot.database.begin() as session:
        entries = audit.list_audit(session=session, subject_prefix="spam/2")
    assert [(e.action, e.actor) for e in entries] == [("promote", ADMIN), ("reject", ADMIN)]
    entry = entries[0]
    assert entry.details["reason"] == "eval set is stale"
    assert entry.details["via"] == "slack" and entry.details["run"] == 1
    assert entry.details["previous"] == "1" and entry.details["gate_status"] == "rejected"

    updated = bot.fake.message(GENERAL, card.ts)
    assert updated is not None
    text = text_of(updated.blocks)
    assert "*spam v2 promoted: it is production now*" in text
    assert f"Promoted anyway by <@{ADMIN}>: production v1 → v2 · “eval set is stale”" in text
    assert buttons(updated.blocks) == [admin_blocks.ROLLBACK_ACTION]
    assert bot.reloads == ["spam"]


def test_roll_back_by_an_admin_restores_the_previous_production_and_audits_it(
    retrain_bot: RetrainBot,
) -> None:
    bot = retrain_bot
    seed(bot.database, home=bot.home)
    card = finished_card(bot, bot.retrain("spam"))
    assert bot.production().version == "2"  # type: ignore[union-attr]

    click(bot, card, admin_blocks.ROLLBACK_ACTION, ADMIN2)
    [opened] = bot.fake.wait_for("views.open")
    submit_view(bot.sender, user_id=ADMIN2, view=opened.params["view"], reason="users complain")

    eventually(lambda: bot.production().version == "1")  # type: ignore[union-attr]
    bot.drain()
    with bot.database.begin() as session:
        entry = audit.list_audit(session=session, subject_prefix="spam/")[0]
    assert (entry.action, entry.actor, entry.subject) == ("rollback", ADMIN2, "spam/1")
    assert entry.details["reason"] == "users complain" and entry.details["previous"] == "2"
    updated = bot.fake.message(GENERAL, card.ts)
    assert updated is not None
    text = text_of(updated.blocks)
    assert "*spam v2 not promoted*: production stays v1" in text
    assert f"Rolled back by <@{ADMIN2}>: production v2 → v1" in text
    assert buttons(updated.blocks) == [admin_blocks.PROMOTE_ACTION]
    assert bot.reloads == ["spam", "spam"]  # after the promotion, after the rollback


def test_a_non_admin_click_or_submission_is_refused_and_nothing_changes(
    retrain_bot: RetrainBot,
) -> None:
    bot = retrain_bot
    bot.runner.promote = False
    seed(bot.database)
    card = finished_card(bot, bot.retrain("spam"))
    audited = bot.audit_count()

    delivery = click(bot, card, admin_blocks.PROMOTE_ACTION, MODERATOR)
    [refusal] = bot.fake.wait_for(
        "response_url",
        where=lambda c: c.path.endswith(delivery.response_url.rsplit("/", 1)[-1]),  # type: ignore[union-attr]
    )
    assert refusal.params["text"] == admin_blocks.NOT_ADMIN_MOVE
    assert refusal.params["response_type"] == "ephemeral"

    # A modal submitted by someone who is not an admin (roles may change in between).
    request = admin_blocks.parse_move_value(
        admin_blocks.PROMOTE_ACTION, '{"task":"spam","version":"2","run":1}'
    )
    assert request is not None
    view = admin_blocks.move_modal(request, admin_blocks.CardRef(GENERAL, card.ts, None))
    reply = submit_view(bot.sender, user_id=MEMBER, view=view, reason="let me")
    assert reply.json() == {
        "response_action": "errors",
        "errors": {admin_blocks.REASON_BLOCK: admin_blocks.NOT_ADMIN_MOVE},
    }
    bot.drain()
    assert bot.fake.calls("views.open") == []
    assert bot.production().version == "1"  # type: ignore[union-attr]
    assert bot.audit_count() == audited
    assert bot.fake.message(GENERAL, card.ts).edits == len(bot.fake.calls("chat.update"))  # type: ignore[union-attr]
    assert bot.reloads == []


@pytest.mark.parametrize(
    ("how", "named"),
    [
        ("changed", "variables/variables.data is corrupt"),
        ("missing", "is missing saved_model.pb"),
        ("extra", "does not list: variables/notes.txt"),
    ],
)
def test_promote_anyway_refuses_a_tampered_candidate_naming_the_file(
    retrain_bot: RetrainBot, tmp_path: Path, how: str, named: str
) -> None:
    bot = retrain_bot
    bot.runner.promote = False
    seed(bot.database)
    card = finished_card(bot, bot.retrain("spam"))
    assert bot.production().version == "1"  # type: ignore[union-attr]
    candidate = tmp_path / "home" / "models" / "spam" / "2"
    if how == "changed":
        (candidate / "variables" / "variables.data").write_bytes(b"swapped after training")
    elif how == "missing":
        (candidate / "saved_model.pb").unlink()
    else:
        (candidate / "variables" / "notes.txt").write_text("dropped here\n")
    audited = bot.audit_count()

    assert click(bot, card, admin_blocks.PROMOTE_ACTION, ADMIN).status == 200
    [opened] = bot.fake.wait_for("views.open")
    reply = submit_view(bot.sender, user_id=ADMIN, view=opened.params["view"], reason="trust me")
    assert reply.status == 200
    [note] = bot.fake.wait_for("chat.postEphemeral")
    assert named in note.params["text"]
    assert "Spam v2 is refused" in note.params["text"]
    bot.drain()
    assert bot.production().version == "1"  # type: ignore[union-attr]
    assert bot.audit_count() == audited
    assert bot.reloads == [], "serving is not told to load anything"
    updated = bot.fake.message(GENERAL, card.ts)
    assert updated is not None and buttons(updated.blocks) == [admin_blocks.PROMOTE_ACTION]


# Slack trouble and failures ----------------------------------------------------------


def test_rate_limited_post_and_update_are_retried_after_retry_after(
    retrain_bot: RetrainBot,
) -> None:
    bot = retrain_bot
    seed(bot.database)
    bot.fake.fail_next("chat.postMessage", retry_after=1)
    bot.fake.fail_next("chat.update", retry_after=1)
    finished_card(bot, bot.retrain("spam"))
    for method in ("chat.postMessage", "chat.update"):
        first, second = bot.fake.calls(method)[:2]
        assert (first.status, second.status) == (429, 200)
        assert second.at - first.at >= 0.95
    assert "promoted: it is production now" in text_of(bot.card().blocks)


def test_the_final_card_is_retried_when_slack_keeps_rate_limiting(
    retrain_bot: RetrainBot,
) -> None:
    bot = retrain_bot
    bot.runner.steps = 0  # the only chat.update is the card
    seed(bot.database)
    bot.fake.fail_next("chat.update", times=3, retry_after=1)  # the client's 2 retries fail
    card = finished_card(bot, bot.retrain("spam"))
    statuses = [c.status for c in bot.fake.calls("chat.update")]
    assert statuses == [429, 429, 429, 200]
    assert "promoted: it is production now" in text_of(card.blocks)


def test_without_access_to_the_channel_the_card_goes_to_the_response_url(
    retrain_bot: RetrainBot,
) -> None:
    bot = retrain_bot
    seed(bot.database)
    delivery = bot.retrain("spam", channel_id="nowhere", channel_name="nowhere")
    bot.answer(delivery)
    bot.drain()
    [refused] = bot.fake.calls("chat.postMessage")
    assert refused.response["error"] == "channel_not_found"
    assert delivery.response_url is not None
    answer, progress, card = bot.fake.responses(delivery.response_url)
    assert "Retraining *spam*" in answer["text"]
    assert "Retraining spam" in progress["text"]
    assert card["response_type"] == "ephemeral"
    assert "*spam v2 promoted: it is production now*" in text_of(card["blocks"])
    assert bot.fake.messages() == []


@pytest.mark.parametrize(
    ("error", "shown", "hidden"),
    [
        (
            RuntimeError("secret internals at /srv/bertbot"),
            "Retraining spam failed on bertbot's side (reference ",
            "secret internals",
        ),
        (
            RetrainError("spam has no eval examples to compare models on"),
            "Retraining spam failed: spam has no eval examples to compare models on",
            "Traceback",
        ),
    ],
    ids=["unexpected", "retrain-error"],
)
def test_a_failure_in_the_worker_posts_a_short_error_and_is_logged(
    retrain_bot: RetrainBot,
    caplog: pytest.LogCaptureFixture,
    error: Exception,
    shown: str,
    hidden: str,
) -> None:
    bot = retrain_bot
    bot.runner.error = error
    seed(bot.database)
    with caplog.at_level(logging.ERROR, logger="bot.services.retraining"):
        card = finished_card(bot, bot.retrain("spam"))
    text = text_of(card.blocks)
    assert ":warning: *spam: no new model*" in text
    assert shown in text and hidden not in text and "Traceback" not in text
    [record] = [r for r in caplog.records if r.name == "bot.services.retraining"]
    assert record.exc_info is not None and record.exc_info[1] is error
    assert bot.production().version == "1"  # type: ignore[union-attr]
    with bot.database.begin() as session:
        assert runs.list_runs(session=session)[0].status == RunStatus.FAILED
    assert bot.reloads == []
    assert bot.finished == [("spam", "failed")]
    assert bot.service.busy("spam") is None  # the failed job no longer blocks the task


# The card's throttle, without HTTP ---------------------------------------------------


class RecordingClient:
    def __init__(self) -> None:
        self.calls: list[tuple[str, str]] = []

    def chat_postMessage(self, **params: Any) -> dict[str, Any]:  # noqa: N802 - slack_sdk name
        self.calls.append(("post", params["text"]))
        return {"ok": True, "channel": params["channel"], "ts": "1.000001"}

    def chat_update(self, **params: Any) -> dict[str, Any]:
        self.calls.append(("update", params["text"]))
        return {"ok": True}


def test_progress_updates_at_most_every_interval() -> None:
    now = [0.0]
    client = RecordingClient()
    card = SlackRetrainCard(
        client,  # type: ignore[arg-type]
        channel_id=GENERAL,
        response_url=None,
        min_interval_s=10.0,
        clock=lambda: now[0],
    )
    plan = RetrainPlan(TaskSpec("spam", ("ham", "spam")), 10, 2, "1", 3, False)
    job = JobInfo(plan, ADMIN, utcnow())
    card.started(job)
    for at, step in ((1.0, 1), (9.9, 2), (10.0, 3), (15.0, 4), (21.0, 5)):
        now[0] = at
        card.progress(job, RetrainProgress("train", step=step, total_steps=5))
    card.failed(job, "stopped")
    assert [kind for kind, _ in client.calls] == ["post", "update", "update", "update"]
    assert "step 3 of 5" in client.calls[1][1] and "step 5 of 5" in client.calls[2][1]
    assert client.calls[3][1] == "stopped"
