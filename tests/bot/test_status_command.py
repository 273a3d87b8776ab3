"""``/bertbot status`` and ``/bertbot help`` over real HTTP, checked against the database."""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from bot.emulator.outbound import FakeSlack
from bot.inbox_policy import InboxPolicy
from bot.services.alert_outbox import AlertPolicy
from bot.services.inbox import Inbox
from storage import annotations, registry
from storage.annotations import NewAnnotation
from storage.db import Database
from storage.enums import AnnotationSource, VersionStatus, utcnow
from storage.models import Annotation
from tests.bot.conftest import ADMIN, MEMBER, MODERATOR, FakeModels
from tests.bot.surfaces import SurfaceBot, all_text, serve_bot
from trainer.tasks import TaskSpec

NEXT_RETRAIN = datetime(2030, 1, 2, 3, 0, tzinfo=UTC)


@pytest.fixture
def asked() -> list[datetime]:
    return []


@pytest.fixture
def status_bot(
    database: Database,
    fake_slack: FakeSlack,
    tasks: dict[str, TaskSpec],
    alert_policy: AlertPolicy,
    models: FakeModels,
    asked: list[datetime],
) -> Iterator[SurfaceBot]:
    def next_retrain(now: datetime) -> datetime:
        asked.append(now)
        return NEXT_RETRAIN

    with serve_bot(
        database, fake_slack, tasks, alert_policy, models, next_retrain=next_retrain
    ) as bot:
        yield bot


def _seed_spam(database: Database) -> None:
    """Seed labels, production v3 trained on a snapshot an hour ago, corrections around it."""
    taken = utcnow() - timedelta(hours=1)
    with database.begin() as session:
        annotations.add_annotations(
            session=session,
            task="spam",
            items=[NewAnnotation(f"hello {i}", "ham") for i in range(3)]
            + [NewAnnotation("cheap pills", "spam")],
            annotator="seed",
            source=AnnotationSource.SEED,
        )
        version = registry.add_model_version(
            session=session,
            task="spam",
            version="3",
            status=VersionStatus.ACCEPTED,
            artifact_uri="models/spam/3",
            sha256="0" * 64,
            base_encoder="all-MiniLM-L6-v2",
            hyperparameters={},
            data_snapshot={"taken_at": taken.isoformat()},
            metrics={
                "eval": {"macro_f1": 0.91234, "accuracy": 0.95},
                "validation": {"macro_f1": 0.5, "accuracy": 0.5},
            },
            created_by="scheduler",
        )
        registry.compare_and_set_alias(
            session=session,
            task="spam",
            version_id=version.id,
            expected_version_id=None,
            updated_by=ADMIN,
        )
        stored = {}
        for text, label in (("old one", "spam"), ("new one", "spam"), ("hello 0", "ham")):
            stored[text], _ = annotations.add_annotation(
                session=session,
                task="spam",
                text=text,
                label=label,
                annotator=MODERATOR,
                source=AnnotationSource.CORRECTION,
            )
        session.execute(  # made before the snapshot: already in v3's training data
            update(Annotation)
            .where(Annotation.id == stored["old one"].id)
            .values(created_at=taken - timedelta(hours=1))
        )


def _status_reply(bot: SurfaceBot, user_id: str = MEMBER) -> dict[str, Any]:
    delivery = bot.sender.command("status", command="/bertbot", user_id=user_id)
    assert delivery.status == 200
    key = delivery.response_url.rsplit("/", 1)[-1]  # type: ignore[union-attr]
    return bot.fake.wait_for("response_url", where=lambda c: c.path.endswith(key))[0].params


def test_status_shows_models_labels_and_corrections_as_stored(
    status_bot: SurfaceBot, asked: list[datetime]
) -> None:
    _seed_spam(status_bot.database)
    reply = _status_reply(status_bot)

    assert reply["response_type"] == "ephemeral"
    blocks = {b.get("block_id"): all_text([b]) for b in reply["blocks"]}
    spam = blocks["task:spam"]
    assert "production *v3* · macro-F1 0.912 · accuracy 0.950" in spam
    assert "(validation)" not in spam and f"by <@{ADMIN}>" in spam and "<!date^" in spam
    # Effective labels by source: seed "hello 0" was corrected to ham, so it counts once.
    assert blocks["data:spam"] == (
        "Labels: Not spam 3 (correction 1, seed 2) · Spam 3 (correction 2, seed 1)\n"
        "2 corrections since v3's training data"
    )
    assert "no production model yet" in blocks["task:sentiment"]
    assert blocks["data:sentiment"] == (
        "Labels: Negative 0 · Neutral 0 · Positive 0\n0 corrections so far"
    )
    stamp = int(NEXT_RETRAIN.timestamp())
    assert f"<!date^{stamp}^" in blocks["next_retrain"]
    assert "|2030-01-02 03:00 UTC>" in blocks["next_retrain"]
    # The schedule was asked about the time of the request.
    assert len(asked) == 1 and abs((utcnow() - asked[0]).total_seconds()) < 10
    assert reply["text"].startswith("bertbot status: spam: v3 macro-F1 0.912")
    assert blocks["inbox"].startswith(":inbox_tray: Events inbox: 0 waiting, 0 dead letter(s)")


def test_status_warns_about_dead_letters_in_the_events_inbox(status_bot: SurfaceBot) -> None:
    inbox = Inbox(status_bot.database, InboxPolicy(max_attempts=1))
    inbox.bind(lambda claim: (_ for _ in ()).throw(RuntimeError("model unavailable")))
    for event_id in ("EvDead1", "EvWaiting"):
        body = {"type": "event_callback", "event_id": event_id, "event": {"type": "message"}}
        claim = inbox.accept(body, json.dumps(body))
        if event_id == "EvDead1" and claim is not None:
            inbox.run(claim)
    blocks = {b.get("block_id"): all_text([b]) for b in _status_reply(status_bot)["blocks"]}
    assert blocks["inbox"].startswith(":warning: Events inbox: 1 waiting (oldest ")
    assert "1 dead letter(s)" in blocks["inbox"] and "bertbot inbox list --dead" in blocks["inbox"]


def test_help_and_empty_text_answer_with_usage_at_once(status_bot: SurfaceBot) -> None:
    for text in ("", "help"):
        delivery = status_bot.sender.command(text, command="/bertbot", user_id=MEMBER)
        answer = delivery.json()
        assert answer["response_type"] == "ephemeral"
        assert "`/bertbot status`" in answer["text"]
        assert "is not a /bertbot command" not in all_text(answer["blocks"])


def test_an_unknown_subcommand_gets_usage_and_is_echoed_escaped(status_bot: SurfaceBot) -> None:
    delivery = status_bot.sender.command("<!channel>&co", command="/bertbot", user_id=MEMBER)
    answer = delivery.json()
    text = all_text(answer["blocks"])
    assert "`&lt;!channel&gt;&amp;co` is not a /bertbot command." in text
    assert "<!channel>" not in text
    assert "`/bertbot status`" in text
    status_bot.settle()
    assert status_bot.fake.calls("response_url") == []


def _hold_out_some(database: Database) -> None:
    """A held suspect and a flagged annotator's two corrections of sentiment."""
    from storage import label_quality as quality_store

    with database.begin() as session:
        ids = [
            annotations.add_annotation(
                session=session,
                task="sentiment",
                text=f"rogue {i}",
                label="positive",
                annotator="U0ROGUE",
                source=AnnotationSource.CORRECTION,
            )[0].id
            for i in range(2)
        ]
        suspect, _ = annotations.add_annotation(
            session=session,
            task="sentiment",
            text="honest slip",
            label="negative",
            annotator=MODERATOR,
            source=AnnotationSource.CORRECTION,
        )
        quality_store.add_suspects(
            session=session,
            task="sentiment",
            run_id=None,
            items=[quality_store.NewSuspect(suspect.id, "confident learning", "positive", 0.1)],
        )
        quality_store.flag_annotator(
            session=session,
            task="sentiment",
            annotator="U0ROGUE",
            run_id=None,
            corrections=len(ids),
            suspects=2,
            peer_rate=0.05,
            p_value=0.001,
        )


def test_admins_see_held_out_labels_and_flagged_annotators(status_bot: SurfaceBot) -> None:
    _hold_out_some(status_bot.database)
    admin = {b.get("block_id"): all_text([b]) for b in _status_reply(status_bot, ADMIN)["blocks"]}
    line = admin["quality:sentiment"]
    assert "sentiment: 3 label(s) held out of retrains (1 suspect(s) to review" in line
    assert "flagged annotator(s): <@U0ROGUE>" in line
    assert "0 label(s) held out" in admin["quality:spam"]
    for user in (MODERATOR, MEMBER):
        blocks = _status_reply(status_bot, user)["blocks"]
        assert not [b for b in blocks if str(b.get("block_id", "")).startswith("quality:")]
