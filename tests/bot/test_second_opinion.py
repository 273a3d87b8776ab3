"""Second opinions and disputes over real HTTP: the Home tab's sections and buttons, with
signed clicks and a fake Slack Web API.

Moderators label from the Home tab's queue (the path every correction takes); a routed
correction appears to the other moderator, blind; the same label agrees, another makes a
dispute that holds the text out of training until an admin decides.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from bot.emulator.outbound import LOCAL_TEAM_ID, FakeSlack, RecordedCall
from bot.second_opinion_policy import SecondOpinionPolicy
from bot.services.alert_outbox import AlertPolicy
from bot.services.roles import Roles
from storage import annotations, audit, messages
from storage import second_opinion as opinions
from storage.db import Database
from storage.enums import AnnotationSource, SecondOpinionStatus
from storage.models import SecondOpinion
from storage.texts import text_hash
from tests.bot.conftest import ADMIN, BOT_TOKEN, GENERAL, MEMBER, MODERATOR, FakeModels
from tests.bot.surfaces import SurfaceBot, all_text, block_ids, home_opened, serve_bot, view_click
from trainer.tasks import TaskSpec

MODERATOR2 = "U0MODERATOR2"
HOME_LABEL = "bertbot_home_label:"
OPINION = "bertbot_opinion:"
DISPUTE = "bertbot_dispute:"
SURE_TEXT = "free pizza in the kitchen at noon"  # the model: spam, 98%
UNSURE_TEXT = "leaning one way"  # the model: ham, 70%


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    users = {MODERATOR: "mo", MODERATOR2: "mo2", ADMIN: "ad", MEMBER: "me"}
    with FakeSlack(bot_token=BOT_TOKEN, users=users) as fake:
        yield fake


def _serve(
    database: Database,
    fake_slack: FakeSlack,
    tasks: dict[str, TaskSpec],
    alert_policy: AlertPolicy,
    models: FakeModels,
    share: float,
) -> Iterator[SurfaceBot]:
    roles = Roles.of(admins=[ADMIN], moderators=[MODERATOR, MODERATOR2])
    policy = SecondOpinionPolicy(share=share, confidence=0.95)
    with serve_bot(
        database, fake_slack, tasks, alert_policy, models, roles=roles, second_opinion=policy
    ) as bot:
        yield bot


@pytest.fixture
def opinion_bot(
    database: Database,
    fake_slack: FakeSlack,
    tasks: dict[str, TaskSpec],
    alert_policy: AlertPolicy,
    models: FakeModels,
) -> Iterator[SurfaceBot]:
    """Nothing sampled: only confident contradictions are routed."""
    yield from _serve(database, fake_slack, tasks, alert_policy, models, share=0.0)


@pytest.fixture
def sampling_bot(
    database: Database,
    fake_slack: FakeSlack,
    tasks: dict[str, TaskSpec],
    alert_policy: AlertPolicy,
    models: FakeModels,
) -> Iterator[SurfaceBot]:
    """Every correction sampled."""
    yield from _serve(database, fake_slack, tasks, alert_policy, models, share=1.0)


def _seed(database: Database) -> dict[str, int]:
    """Two channel messages with spam predictions; prediction ids by name."""
    ids = {}
    with database.begin() as session:
        for ts, name, text, spam in (
            ("1700000001.000100", "sure", SURE_TEXT, 0.98),
            ("1700000002.000100", "unsure", UNSURE_TEXT, 0.30),
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
                scores={"ham": round(1.0 - spam, 2), "spam": spam},
                latency_ms=1.0,
                message_id=message.id,
            ).id
    return ids


def _home(bot: SurfaceBot, user_id: str) -> dict[str, Any]:
    before = len(bot.fake.calls("views.publish"))
    assert home_opened(bot.sender, user_id).status == 200
    call = bot.fake.wait_for("views.publish", before + 1)[-1]
    bot.settle()
    return dict(call.response["view"])


def _click(
    bot: SurfaceBot, user_id: str, view: dict[str, Any], action_id: str, value: str | None = None
) -> RecordedCall:
    before = len(bot.fake.calls("views.publish"))
    delivery = view_click(bot.sender, user_id=user_id, view=view, action_id=action_id, value=value)
    assert delivery.status == 200
    call = bot.fake.wait_for("views.publish", before + 1)[-1]
    bot.settle()
    assert call.params["user_id"] == user_id
    return call


def _notice(call: RecordedCall) -> str:
    return all_text(call.params["view"]["blocks"][:1])


def _label_from_queue(bot: SurfaceBot, user_id: str, prediction_id: int, label: str) -> None:
    view = _home(bot, user_id)
    block_id = f"label:{prediction_id}"
    (block,) = [b for b in view["blocks"] if b.get("block_id") == block_id]
    assert any(e.get("value") == label for e in block["elements"])
    # find_element takes the first matching action: narrow the view to this item's block
    _click(bot, user_id, {**view, "blocks": [block]}, HOME_LABEL + label, label)


def _requests(bot: SurfaceBot) -> list[opinions.SecondOpinionView]:
    with bot.database.begin() as session:
        ids = session.scalars(select(SecondOpinion.id).order_by(SecondOpinion.id)).all()
        return [opinions.get_request(session=session, request_id=i) for i in ids]


def _held_out(bot: SurfaceBot) -> set[str]:
    with bot.database.begin() as session:
        return opinions.held_out_hashes(session=session, task="spam")


def _audit(bot: SurfaceBot, request_id: int) -> list[Any]:
    with bot.database.begin() as session:
        return audit.list_audit(session=session, subject_prefix=f"second_opinion/{request_id}")


def _dispute(bot: SurfaceBot, ids: dict[str, int]) -> tuple[int, dict[str, Any]]:
    """MODERATOR says the confident spam is ham; MODERATOR2 says spam: a dispute."""
    _label_from_queue(bot, MODERATOR, ids["sure"], "ham")
    (request,) = _requests(bot)
    view = _home(bot, MODERATOR2)
    call = _click(bot, MODERATOR2, view, OPINION + "spam", f"{request.request.id}:spam")
    assert "an admin will decide" in _notice(call)
    return request.request.id, view


# Routing --------------------------------------------------------------------------------


def test_only_a_confident_contradiction_is_routed_when_nothing_is_sampled(
    opinion_bot: SurfaceBot,
) -> None:
    ids = _seed(opinion_bot.database)
    _label_from_queue(opinion_bot, MODERATOR, ids["unsure"], "spam")  # contradicts 70%: no
    assert _requests(opinion_bot) == []
    _label_from_queue(opinion_bot, MODERATOR, ids["sure"], "ham")  # contradicts 98%: yes

    (request,) = _requests(opinion_bot)
    assert request.request.reason == "contradicts a 0.98 prediction"
    assert request.request.status is SecondOpinionStatus.OPEN
    assert (request.request.first_annotator, request.first_label) == (MODERATOR, "ham")
    assert request.request.prediction_id == ids["sure"]
    assert request.request.text_hash == text_hash(SURE_TEXT)


def test_every_moderator_correction_is_routed_at_share_one_but_no_admin_label(
    sampling_bot: SurfaceBot,
) -> None:
    ids = _seed(sampling_bot.database)
    _label_from_queue(sampling_bot, ADMIN, ids["sure"], "ham")  # an admin's: never routed
    assert _requests(sampling_bot) == []
    _label_from_queue(sampling_bot, MODERATOR, ids["unsure"], "ham")  # agrees with the model

    (request,) = _requests(sampling_bot)
    assert request.request.reason == "sampled" and request.request.prediction_id == ids["unsure"]


# Asking -----------------------------------------------------------------------------------


def test_the_other_moderator_sees_the_request_blind_and_the_first_does_not(
    opinion_bot: SurfaceBot,
) -> None:
    ids = _seed(opinion_bot.database)
    _label_from_queue(opinion_bot, MODERATOR, ids["sure"], "ham")
    (request,) = _requests(opinion_bot)
    rid = request.request.id

    first = _home(opinion_bot, MODERATOR)
    assert "Second opinion wanted" not in all_text(first["blocks"])
    assert block_ids(first["blocks"], "opinion:") == []

    blocks = _home(opinion_bot, MODERATOR2)["blocks"]
    text = all_text(blocks)
    assert text.index("Second opinion wanted") < text.index("Needs review")
    assert block_ids(blocks, "opinion:") == [f"opinion:{rid}"]
    shown = all_text([b for b in blocks if b.get("block_id") == f"opinion_text:{rid}"])
    assert SURE_TEXT in shown and "said *Spam* (98%)" in shown
    assert "Not spam" not in shown and MODERATOR not in shown  # blind: no first label or labeller
    controls = next(b for b in blocks if b.get("block_id") == f"opinion:{rid}")
    assert [(e["action_id"], e["value"]) for e in controls["elements"]] == [
        (OPINION + "ham", f"{rid}:ham"),
        (OPINION + "spam", f"{rid}:spam"),
    ]
    for user_id in (MEMBER, ADMIN):  # neither a moderator: nothing to answer
        assert block_ids(_home(opinion_bot, user_id)["blocks"], "opinion:") == []


def test_the_same_label_agrees_and_closes_the_request_once(opinion_bot: SurfaceBot) -> None:
    ids = _seed(opinion_bot.database)
    _label_from_queue(opinion_bot, MODERATOR, ids["sure"], "ham")
    (request,) = _requests(opinion_bot)
    rid = request.request.id
    view = _home(opinion_bot, MODERATOR2)

    call = _click(opinion_bot, MODERATOR2, view, OPINION + "ham", f"{rid}:ham")

    assert "you agreed with the first moderator" in _notice(call)
    assert block_ids(call.params["view"]["blocks"], "opinion:") == []
    (request,) = _requests(opinion_bot)
    assert request.request.status is SecondOpinionStatus.AGREED
    assert (request.request.second_annotator, request.second_label) == (MODERATOR2, "ham")
    with opinion_bot.database.begin() as session:
        answer = annotations.list_annotations(session=session, source=AnnotationSource.CORRECTION)[
            -1
        ]
    assert (answer.annotator, answer.label, answer.prediction_id) == (
        MODERATOR2,
        "ham",
        ids["sure"],
    )
    assert (answer.predicted_label, answer.predicted_model_version) == ("spam", "3")
    assert answer.id == request.request.second_annotation_id
    assert _held_out(opinion_bot) == set()
    (entry,) = _audit(opinion_bot, rid)
    assert (entry.actor, entry.action) == (MODERATOR2, "second_opinion.answer")
    assert entry.details["status"] == "agreed" and entry.details["role"] == "moderator"

    before = opinion_bot.counts()
    again = _click(opinion_bot, MODERATOR2, view, OPINION + "ham", f"{rid}:ham")  # a retry

    assert opinion_bot.counts() == before
    assert "already stored" in _notice(again)


def test_another_label_disputes_and_holds_the_text_out_until_an_admin_decides(
    opinion_bot: SurfaceBot,
) -> None:
    ids = _seed(opinion_bot.database)
    rid, _ = _dispute(opinion_bot, ids)

    assert _held_out(opinion_bot) == {text_hash(SURE_TEXT)}
    (request,) = _requests(opinion_bot)
    assert request.request.status is SecondOpinionStatus.DISPUTED
    # Moderators do not see disputes; admins do, with both labels and who gave them.
    assert "Disputes" not in all_text(_home(opinion_bot, MODERATOR)["blocks"])
    admin_view = _home(opinion_bot, ADMIN)
    shown = all_text(
        [b for b in admin_view["blocks"] if b.get("block_id") == f"dispute_text:{rid}"]
    )
    assert f"<@{MODERATOR}> said *Not spam*" in shown and f"<@{MODERATOR2}> said *Spam*" in shown
    assert "contradicts a 0.98 prediction" in shown and SURE_TEXT in shown
    text = all_text(admin_view["blocks"])
    assert text.index("Disputes") < text.index("Needs review")

    call = _click(opinion_bot, ADMIN, admin_view, DISPUTE + "ham", f"{rid}:ham")

    assert f"Dispute {rid} decided" in _notice(call)
    assert block_ids(call.params["view"]["blocks"], "dispute:") == []
    (request,) = _requests(opinion_bot)
    assert request.request.status is SecondOpinionStatus.DECIDED
    assert (request.request.decided_by, request.decided_label) == (ADMIN, "ham")
    assert request.request.decided_at is not None
    assert _held_out(opinion_bot) == set()
    with opinion_bot.database.begin() as session:
        (effective,) = [
            e
            for e in annotations.effective_labels(session=session, task="spam")
            if e.text_hash == text_hash(SURE_TEXT)
        ]
    assert (effective.label, effective.source, effective.annotator) == (
        "ham",
        AnnotationSource.ADMIN,
        ADMIN,
    )
    assert effective.annotation_id == request.request.decision_annotation_id
    entries = _audit(opinion_bot, rid)
    assert [e.action for e in entries] == ["second_opinion.decide", "second_opinion.answer"]
    assert (
        entries[0].details["first_label"] == "ham" and entries[0].details["second_label"] == "spam"
    )
    assert entries[0].details["role"] == "admin"

    before = opinion_bot.counts()
    again = _click(opinion_bot, ADMIN, admin_view, DISPUTE + "ham", f"{rid}:ham")  # a retry

    assert opinion_bot.counts() == before and "already stored" in _notice(again)
    other = _click(opinion_bot, ADMIN, admin_view, DISPUTE + "spam", f"{rid}:spam")
    assert "decided this already" in _notice(other) and opinion_bot.counts() == before


# Roles ------------------------------------------------------------------------------------


def test_only_another_moderator_answers(opinion_bot: SurfaceBot) -> None:
    ids = _seed(opinion_bot.database)
    _label_from_queue(opinion_bot, MODERATOR, ids["sure"], "ham")
    (request,) = _requests(opinion_bot)
    rid = request.request.id
    view = _home(opinion_bot, MODERATOR2)  # replayed by others
    before = opinion_bot.counts()

    refusals = {
        MEMBER: "Only moderators give second opinions",
        ADMIN: "Only moderators give second opinions",
        MODERATOR: "You gave the first label",
    }
    for user_id, refusal in refusals.items():
        call = _click(opinion_bot, user_id, view, OPINION + "spam", f"{rid}:spam")
        assert refusal in _notice(call), user_id

    assert opinion_bot.counts() == before
    (request,) = _requests(opinion_bot)
    assert request.request.status is SecondOpinionStatus.OPEN


def test_only_admins_decide_disputes(opinion_bot: SurfaceBot) -> None:
    ids = _seed(opinion_bot.database)
    rid, _ = _dispute(opinion_bot, ids)
    admin_view = _home(opinion_bot, ADMIN)
    before = opinion_bot.counts()

    for user_id in (MEMBER, MODERATOR, MODERATOR2):
        call = _click(opinion_bot, user_id, admin_view, DISPUTE + "ham", f"{rid}:ham")
        assert "Only admins decide disputes" in _notice(call), user_id

    assert opinion_bot.counts() == before
    assert _held_out(opinion_bot) == {text_hash(SURE_TEXT)}


def test_a_second_answer_to_an_answered_request_is_refused(opinion_bot: SurfaceBot) -> None:
    ids = _seed(opinion_bot.database)
    rid, view = _dispute(opinion_bot, ids)
    before = opinion_bot.counts()

    changed = _click(opinion_bot, MODERATOR2, view, OPINION + "ham", f"{rid}:ham")

    assert "answered this already" in _notice(changed)
    assert opinion_bot.counts() == before
