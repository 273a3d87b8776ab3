"""The App Home tab over real HTTP: what is published, and labelling from its queue."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.emulator.outbound import LOCAL_TEAM_ID, FakeSlack, RecordedCall
from bot.services.alert_outbox import AlertPolicy
from storage import annotations, audit, messages, registry, runs
from storage.db import Database
from storage.enums import AnnotationSource, RunStatus, RunTrigger, VersionStatus
from tests.bot.conftest import ADMIN, GENERAL, MEMBER, MODERATOR, FakeModels
from tests.bot.surfaces import SurfaceBot, all_text, block_ids, home_opened, serve_bot, view_click
from trainer.tasks import TaskSpec

LABEL = "bertbot_home_label:"
COIN_TEXT = "coin toss <!channel> & <https://evil.example|click>"


@pytest.fixture
def home_bot(
    database: Database,
    fake_slack: FakeSlack,
    tasks: dict[str, TaskSpec],
    alert_policy: AlertPolicy,
    models: FakeModels,
) -> Iterator[SurfaceBot]:
    with serve_bot(database, fake_slack, tasks, alert_policy, models) as bot:
        yield bot


def _seed(database: Database) -> dict[str, int]:
    """Two training runs and three stored messages; returns prediction ids by name."""
    ids = {}
    with database.begin() as session:
        rejected = runs.create_run(
            session=session, task="spam", trigger=RunTrigger.SCHEDULE, requested_by="scheduler"
        )
        runs.finish_run(
            session=session,
            run_id=rejected.id,
            status=RunStatus.REJECTED,
            gate_decision={"promote": False, "reason": "macro-F1 +0.001 < 0.005 <b>"},
        )
        version = registry.add_model_version(
            session=session,
            task="sentiment",
            version="6",
            status=VersionStatus.ACCEPTED,
            artifact_uri="models/sentiment/6",
            sha256="0" * 64,
            base_encoder="enc",
            hyperparameters={},
            data_snapshot={},
            metrics={},
            created_by=ADMIN,
        )
        promoted = runs.create_run(
            session=session, task="sentiment", trigger=RunTrigger.ADMIN, requested_by=ADMIN
        )
        runs.finish_run(
            session=session,
            run_id=promoted.id,
            status=RunStatus.SUCCEEDED,
            candidate_version_id=version.id,
            gate_decision={"promote": True, "reason": "macro-F1 +0.03, P=0.99"},
        )
        ids["rejected_run"], ids["promoted_run"] = rejected.id, promoted.id
        for ts, name, text, spam in (
            ("1700000001.000100", "sure", "a very clear message", 0.98),
            ("1700000002.000100", "coin", COIN_TEXT, 0.51),
            ("1700000003.000100", "leaning", "leaning one way", 0.30),
        ):
            message = messages.add_message(
                session=session,
                team_id=LOCAL_TEAM_ID,
                channel_id=GENERAL,
                ts=ts,
                text=text,
                user_id=MEMBER,
            )
            ids[name] = messages.add_prediction(
                session=session,
                task="spam",
                model_version="3",
                label="spam" if spam >= 0.5 else "ham",
                scores={"ham": 1.0 - spam, "spam": spam},
                latency_ms=1.0,
                message_id=message.id,
            ).id
    return ids


def _open_home(bot: SurfaceBot, user_id: str) -> RecordedCall:
    before = len(bot.fake.calls("views.publish"))
    assert home_opened(bot.sender, user_id).status == 200
    call = bot.fake.wait_for("views.publish", before + 1)[-1]
    bot.settle()
    return call


def _click(bot: SurfaceBot, user_id: str, view: dict[str, Any], label: str) -> RecordedCall:
    before = len(bot.fake.calls("views.publish"))
    delivery = view_click(bot.sender, user_id=user_id, view=view, action_id=LABEL + label)
    assert delivery.status == 200
    call = bot.fake.wait_for("views.publish", before + 1)[-1]
    bot.settle()
    return call


def _corrections(bot: SurfaceBot) -> list[Any]:
    with bot.database.begin() as session:
        return annotations.list_annotations(session=session, source=AnnotationSource.CORRECTION)


def test_a_moderators_home_has_status_runs_and_the_queue_least_sure_first(
    home_bot: SurfaceBot,
) -> None:
    ids = _seed(home_bot.database)
    call = _open_home(home_bot, MODERATOR)

    assert call.ok and call.params["user_id"] == MODERATOR
    view = call.params["view"]
    assert view["type"] == "home"
    blocks = view["blocks"]
    assert block_ids(blocks, "task:") == ["task:spam", "task:sentiment"]
    # Runs, newest first, with who, the trigger and the gate's reason (escaped).
    assert block_ids(blocks, "run:") == [f"run:{ids['promoted_run']}", f"run:{ids['rejected_run']}"]
    runs_text = {
        b["block_id"]: all_text([b]) for b in blocks if b.get("block_id", "")[:4] == "run:"
    }
    promoted = runs_text[f"run:{ids['promoted_run']}"]
    assert "succeeded" in promoted and f"admin by <@{ADMIN}>" in promoted
    assert "candidate v6 promoted" in promoted and "macro-F1 +0.03, P=0.99" in promoted
    rejected = runs_text[f"run:{ids['rejected_run']}"]
    assert "rejected" in rejected and "schedule by scheduler" in rejected
    assert "macro-F1 +0.001 &lt; 0.005 &lt;b&gt;" in rejected
    # The queue: least sure (smallest margin) first, with one button per label.
    assert block_ids(blocks, "label:") == [
        f"label:{ids['coin']}",
        f"label:{ids['leaning']}",
        f"label:{ids['sure']}",
    ]
    controls = next(b for b in blocks if b.get("block_id") == f"label:{ids['coin']}")
    assert [e["action_id"] for e in controls["elements"]] == [
        LABEL + "ham",
        LABEL + "spam",
        "bertbot_why",
        "bertbot_home_skip",
        "bertbot_home_not_sure",
    ]
    coin = all_text([b for b in blocks if b.get("block_id") == f"review:{ids['coin']}"])
    assert "said *Spam* (51%, margin 2%)" in coin
    assert "&lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in coin
    assert "<!channel>" not in all_text(blocks) and "<https://evil" not in all_text(blocks)


def test_a_member_sees_status_and_runs_but_not_the_queue(home_bot: SurfaceBot) -> None:
    _seed(home_bot.database)
    view = _open_home(home_bot, MEMBER).params["view"]
    text = all_text(view["blocks"])
    assert block_ids(view["blocks"], "run:") and block_ids(view["blocks"], "task:")
    assert block_ids(view["blocks"], "label:") == [] and block_ids(view["blocks"], "review:") == []
    assert "The review queue is for moderators and admins." in text
    assert "coin toss" not in text and "leaning one way" not in text


def test_the_messages_tab_publishes_nothing(home_bot: SurfaceBot) -> None:
    assert home_opened(home_bot.sender, MODERATOR, tab="messages").status == 200
    home_bot.settle()
    assert home_bot.fake.calls("views.publish") == []


def test_a_moderator_click_stores_one_correction_and_republishes(home_bot: SurfaceBot) -> None:
    ids = _seed(home_bot.database)
    opened = _open_home(home_bot, MODERATOR)
    view = opened.response["view"]  # as published, with its id

    after = _click(home_bot, MODERATOR, view, "ham")  # the first queued item: the coin toss

    [stored] = _corrections(home_bot)
    assert (stored.task, stored.label, stored.annotator) == ("spam", "ham", MODERATOR)
    assert (stored.prediction_id, stored.predicted_label, stored.predicted_model_version) == (
        ids["coin"],
        "spam",
        "3",
    )
    assert stored.text == COIN_TEXT and stored.message_id is not None
    with home_bot.database.begin() as session:
        [entry] = audit.list_audit(session=session, subject_prefix=f"prediction/{ids['coin']}")
    assert (entry.actor, entry.details["role"]) == (MODERATOR, "moderator")
    assert after.params["user_id"] == MODERATOR
    republished = after.params["view"]["blocks"]
    assert all_text(republished[:1]).startswith(
        f":white_check_mark: Labelled *Not spam* by <@{MODERATOR}>"
    )
    # Labelled by a moderator: it leaves the queue.
    assert block_ids(republished, "label:") == [f"label:{ids['leaning']}", f"label:{ids['sure']}"]

    again = _click(home_bot, MODERATOR, view, "ham")  # the same click from the old view

    assert len(_corrections(home_bot)) == 1
    assert "already" in all_text(again.params["view"]["blocks"][:1])
    assert home_bot.counts()["audit"] == 1


def test_a_member_click_is_refused_and_stores_nothing(home_bot: SurfaceBot) -> None:
    _seed(home_bot.database)
    moderators_view = _open_home(home_bot, MODERATOR).response["view"]
    before = home_bot.counts()

    after = _click(home_bot, MEMBER, moderators_view, "spam")  # a replayed moderator's view

    assert home_bot.counts() == before
    assert _corrections(home_bot) == []
    assert after.params["user_id"] == MEMBER
    notice = all_text(after.params["view"]["blocks"][:1])
    assert "Only moderators and admins can label" in notice
    assert block_ids(after.params["view"]["blocks"], "label:") == []


def test_messages_flagged_by_drift_watch_come_first_with_their_reason(
    home_bot: SurfaceBot,
) -> None:
    from storage import drift

    ids = _seed(home_bot.database)
    with home_bot.database.begin() as session:
        sure = messages.get_prediction(session=session, prediction_id=ids["sure"])
        assert sure.message_id is not None
        drift.flag_for_review(session=session, task="spam", scores=[(sure.message_id, 0.2)])
    blocks = _open_home(home_bot, MODERATOR).params["view"]["blocks"]

    # The model was sure about it, but drift watch flagged it: it leads the queue, once.
    assert block_ids(blocks, "label:") == [
        f"label:{ids['sure']}",
        f"label:{ids['coin']}",
        f"label:{ids['leaning']}",
    ]
    flagged = all_text([b for b in blocks if b.get("block_id") == f"review:{ids['sure']}"])
    assert "flagged by drift watch" in flagged and "said *Spam* (98%" in flagged
    coin = all_text([b for b in blocks if b.get("block_id") == f"review:{ids['coin']}"])
    assert "drift" not in coin


def test_only_admins_see_held_out_labels_on_home(home_bot: SurfaceBot) -> None:
    from tests.bot.test_status_command import _hold_out_some

    _hold_out_some(home_bot.database)
    admin = _open_home(home_bot, ADMIN).params["view"]["blocks"]
    assert block_ids(admin, "quality:") == ["quality:spam", "quality:sentiment"]
    assert "<@U0ROGUE>" in all_text(admin)
    moderator = _open_home(home_bot, MODERATOR).params["view"]["blocks"]
    assert block_ids(moderator, "quality:") == []
