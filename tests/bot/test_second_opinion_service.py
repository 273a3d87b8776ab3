"""The second-opinion service on SQLite and PostgreSQL: answers and decisions are stored once
even when the same click arrives twice at the same moment (a Slack retry)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from bot.second_opinion_policy import SecondOpinionPolicy
from bot.services.roles import Roles
from bot.services.second_opinion import SecondOpinionService, route_correction
from storage import annotations, messages
from storage import second_opinion as opinions
from storage.db import Database
from storage.enums import AnnotationSource, SecondOpinionStatus
from trainer.tasks import BUILTIN_TASKS

ADMIN, MOD1, MOD2 = "U0ADMIN01", "U0MOD1", "U0MOD2"


def _request(database: Database) -> int:
    with database.begin() as session:
        message = messages.add_message(
            session=session, team_id="T", channel_id="C", ts="1.1", text="prize draw", user_id="U9"
        )
        prediction = messages.add_prediction(
            session=session,
            task="spam",
            model_version="3",
            label="ham",
            scores={"ham": 0.6, "spam": 0.4},
            latency_ms=1.0,
            message_id=message.id,
        )
        first, _ = annotations.add_annotation(
            session=session,
            task="spam",
            text=message.text,
            label="spam",
            annotator=MOD1,
            source=AnnotationSource.CORRECTION,
            message_id=message.id,
            prediction_id=prediction.id,
        )
        request = route_correction(
            session=session,
            annotation=first,
            prediction=prediction,
            policy=SecondOpinionPolicy(share=1.0),
        )
    assert request is not None and request.reason == "sampled"
    return request.id


def _annotation_count(database: Database) -> int:
    with database.begin() as session:
        return len(annotations.list_annotations(session=session, task="spam"))


def test_the_same_answer_and_decision_at_once_are_stored_once(fresh_database: Database) -> None:
    service = SecondOpinionService(
        fresh_database,
        {"spam": BUILTIN_TASKS["spam"]},
        Roles.of(admins=[ADMIN], moderators=[MOD1, MOD2]),
    )
    request_id = _request(fresh_database)
    with ThreadPoolExecutor(2) as pool:
        answers = list(
            pool.map(
                lambda _: service.answer(user_id=MOD2, request_id=request_id, label="ham"), range(2)
            )
        )
    assert sorted(a.created for a in answers) == [False, True]
    assert {a.status for a in answers} == {SecondOpinionStatus.DISPUTED}
    assert len({a.annotation_id for a in answers}) == 1
    assert _annotation_count(fresh_database) == 2
    with ThreadPoolExecutor(2) as pool:
        decisions = list(
            pool.map(
                lambda _: service.decide(user_id=ADMIN, request_id=request_id, label="ham"),
                range(2),
            )
        )
    assert sorted(d.created for d in decisions) == [False, True]
    assert {d.status for d in decisions} == {SecondOpinionStatus.DECIDED}
    assert _annotation_count(fresh_database) == 3
    with fresh_database.begin() as session:
        assert opinions.held_out_hashes(session=session, task="spam") == set()
