"""Two workspaces served by one bot over real HTTP: neither sees the other's data, and a
role stored in one gives nothing in the other (Home, buttons, slash commands)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.app import make_client
from bot.emulator.inbound import SlackSender
from bot.emulator.outbound import LOCAL_TEAM_ID, FakeSlack, RecordedCall
from bot.services.alert_outbox import AlertPolicy
from bot.services.roles import Roles
from storage import alerts, annotations, appeals, audit, messages, workspace_roles
from storage import second_opinion as opinions
from storage.db import Database
from storage.enums import AnnotationSource, SecondOpinionStatus
from tests.bot.conftest import (
    ADMIN,
    BOT_TOKEN,
    GENERAL,
    MEMBER,
    MODERATOR,
    SIGNING_SECRET,
    FakeModels,
)
from tests.bot.surfaces import SurfaceBot, all_text, home_opened, serve_bot, view_click
from trainer.tasks import TaskSpec

TEAM_A, TEAM_B = LOCAL_TEAM_ID, "T0OTHER00"
MOD_A, ADMIN_A = "U0MODA0001", "U0ADMA0001"
MOD_B, ADMIN_B = "U0MODB0001", "U0ADMB0001"
SECOND_A = "U0MODA0002"  # a second moderator of A (second opinions)
LABEL = "bertbot_home_label:"


@pytest.fixture
def two_teams(
    database: Database,
    fake_slack: FakeSlack,
    tasks: dict[str, TaskSpec],
    alert_policy: AlertPolicy,
    models: FakeModels,
) -> Iterator[tuple[SurfaceBot, SlackSender]]:
    with database.begin() as session:
        for team, user, role in (
            (TEAM_A, MOD_A, "moderator"),
            (TEAM_A, SECOND_A, "moderator"),
            (TEAM_A, ADMIN_A, "admin"),
            (TEAM_B, MOD_B, "moderator"),
            (TEAM_B, ADMIN_B, "admin"),
        ):
            workspace_roles.grant_role(
                session=session, team_id=team, user_id=user, role=role, granted_by="cli"
            )
    roles = Roles.from_database(database, admins=[ADMIN], moderators=[MODERATOR])
    with serve_bot(database, fake_slack, tasks, alert_policy, models, roles=roles) as bot:
        other = SlackSender(bot.server.events_url, SIGNING_SECRET, fake=fake_slack, team_id=TEAM_B)
        yield bot, other


def _seed(database: Database) -> dict[str, int]:
    """Per team: a channel message with an unsure prediction, an appealed alert, an open
    second opinion and a dispute. Returns prediction ids by name."""
    ids: dict[str, int] = {}
    with database.begin() as session:
        for team, tag, first, second in (
            (TEAM_A, "alpha", MOD_A, SECOND_A),
            (TEAM_B, "bravo", MOD_B, "U0MODB0002"),
        ):
            for i, name in enumerate(("queue", "appealed", "wanted", "disputed")):
                message = messages.add_message(
                    session=session,
                    team_id=team,
                    channel_id=GENERAL,
                    ts=f"17000000{i}.{tag}",
                    text=f"{tag} {name} text",
                    user_id=MEMBER,
                )
                prediction = messages.add_prediction(
                    session=session,
                    task="spam",
                    model_version="3",
                    label="spam",
                    scores={"ham": 0.45, "spam": 0.55},
                    latency_ms=1.0,
                    message_id=message.id,
                )
                ids[f"{tag}-{name}"] = prediction.id
                if name == "appealed":
                    alert = alerts.add_alert(
                        session=session, prediction_id=prediction.id, label="spam", channel="C0M"
                    )
                    appeals.add_appeal(
                        session=session, alert_id=alert.id, author_id=MEMBER, note=f"{tag} note"
                    )
                if name in ("wanted", "disputed"):
                    first_label, _ = annotations.add_annotation(
                        session=session,
                        task="spam",
                        text=message.text,
                        label="ham",
                        annotator=first,
                        source=AnnotationSource.CORRECTION,
                        message_id=message.id,
                        prediction_id=prediction.id,
                    )
                    request = opinions.open_request(
                        session=session, annotation=first_label, reason="sampled"
                    )
                    assert request is not None
                    if name == "disputed":
                        answer, _ = annotations.add_annotation(
                            session=session,
                            task="spam",
                            text=message.text,
                            label="spam",
                            annotator=second,
                            source=AnnotationSource.CORRECTION,
                            message_id=message.id,
                        )
                        opinions.answer(
                            session=session,
                            request_id=request.id,
                            annotation_id=answer.id,
                            annotator=second,
                            agreed=False,
                        )
    return ids


def _home(bot: SurfaceBot, sender: SlackSender, user_id: str) -> dict[str, Any]:
    before = len(bot.fake.calls("views.publish"))
    assert home_opened(sender, user_id).status == 200
    call = bot.fake.wait_for("views.publish", before + 1)[-1]
    bot.settle()
    assert call.params["user_id"] == user_id
    return dict(call.params["view"])


def _command(bot: SurfaceBot, sender: SlackSender, text: str, user_id: str) -> dict[str, Any]:
    delivery = sender.command(text, command="/bertbot", user_id=user_id)
    assert delivery.status == 200
    key = delivery.response_url.rsplit("/", 1)[-1]  # type: ignore[union-attr]
    found = bot.fake.wait_for("response_url", where=lambda c: c.path.endswith(key))
    return dict(found[0].params)


def test_each_workspaces_home_shows_only_its_own_queue_appeals_opinions_and_disputes(
    two_teams: tuple[SurfaceBot, SlackSender],
) -> None:
    bot, other = two_teams
    _seed(bot.database)
    moderator_a = all_text(_home(bot, bot.sender, MOD_A)["blocks"])
    admin_b = all_text(_home(bot, other, ADMIN_B)["blocks"])
    second_a = all_text(_home(bot, bot.sender, SECOND_A)["blocks"])

    assert "alpha queue text" in moderator_a and "alpha note" in moderator_a
    assert "bravo" not in moderator_a  # no queue item, appeal or opinion of B
    assert "alpha wanted text" in second_a  # a second opinion asked of A's other moderator
    assert "bravo" not in second_a
    assert "bravo queue text" in admin_b and "bravo note" in admin_b
    assert "bravo disputed text" in admin_b  # B's dispute, for B's admin
    assert "alpha" not in admin_b


def test_a_role_in_one_workspace_gives_nothing_in_the_other(
    two_teams: tuple[SurfaceBot, SlackSender],
) -> None:
    bot, other = two_teams
    _seed(bot.database)
    # A's moderator opens Home in B: no queue, no appeals, no opinions.
    seen = all_text(_home(bot, other, MOD_A)["blocks"])
    assert "queue text" not in seen and "note" not in seen and "wanted" not in seen
    # The environment's admin and moderator do not apply where roles are stored.
    for user in (ADMIN, MODERATOR):
        assert "queue text" not in all_text(_home(bot, bot.sender, user)["blocks"])
    # /bertbot roles in B by A's admin is refused; /retrain too.
    refused = _command(bot, other, "roles add <@U0NEW00001|new> moderator", ADMIN_A)
    assert "Only this workspace's admins" in refused["text"]
    retrain = other.command("spam", command="/retrain", user_id=ADMIN_A).json()
    assert "admin" in retrain["text"].lower()
    with bot.database.begin() as session:
        assert workspace_roles.team_roles(session=session, team_id=TEAM_B).moderators == {MOD_B}


def test_a_label_button_from_another_workspace_is_refused_and_stores_nothing(
    two_teams: tuple[SurfaceBot, SlackSender],
) -> None:
    bot, other = two_teams
    ids = _seed(bot.database)
    view = _home(bot, bot.sender, MOD_A)
    # B's moderator replays A's Home button in B: their role holds in B, the message is A's.
    before = len(bot.fake.calls("views.publish"))
    delivery = view_click(
        other,
        user_id=MOD_B,
        view=view,
        action_id=LABEL + "ham",
        value=None,
    )
    assert delivery.status == 200
    call: RecordedCall = bot.fake.wait_for("views.publish", before + 1)[-1]
    bot.settle()
    assert "not in this workspace" in all_text(call.params["view"]["blocks"])
    with bot.database.begin() as session:
        labelled = annotations.list_annotations(session=session)
    alpha = {pid for name, pid in ids.items() if name.startswith("alpha")}
    assert [a for a in labelled if a.annotator == MOD_B and a.prediction_id in alpha] == []
    # The same click in A stores A's label, with A's team.
    before = len(bot.fake.calls("views.publish"))
    assert view_click(bot.sender, user_id=MOD_A, view=view, action_id=LABEL + "ham").status == 200
    bot.fake.wait_for("views.publish", before + 1)
    bot.settle()
    with bot.database.begin() as session:
        stored = [
            a
            for a in annotations.list_annotations(session=session, team_id=TEAM_A)
            if a.annotator == MOD_A and a.prediction_id in ids.values()
        ]
    assert stored and {a.team_id for a in stored} == {TEAM_A}


def test_status_counts_each_workspaces_corrections_and_seed_labels_for_both(
    two_teams: tuple[SurfaceBot, SlackSender],
) -> None:
    bot, other = two_teams
    _seed(bot.database)
    with bot.database.begin() as session:
        annotations.add_annotation(
            session=session,
            task="spam",
            text="shared seed",
            label="ham",
            annotator="seed",
            source=AnnotationSource.SEED,
        )
        annotations.add_annotation(  # one more correction in A
            session=session,
            task="spam",
            text="only alpha",
            label="spam",
            annotator=MOD_A,
            source=AnnotationSource.CORRECTION,
            team_id=TEAM_A,
        )
    data_a = _data_line(_command(bot, bot.sender, "status", MOD_A))
    data_b = _data_line(_command(bot, other, "status", MOD_B))
    # A: its 4 corrections (2 first labels, 1 answer, 1 more) and the seed; B: 3 and the seed.
    assert "4 corrections so far" in data_a and "seed 1" in data_a
    assert "3 corrections so far" in data_b and "seed 1" in data_b


def _data_line(reply: dict[str, Any]) -> str:
    blocks = {b.get("block_id"): all_text([b]) for b in reply["blocks"]}
    return str(blocks["data:spam"])


def test_bertbot_roles_in_slack_lists_adds_and_removes_for_that_workspace_audited(
    two_teams: tuple[SurfaceBot, SlackSender],
) -> None:
    bot, other = two_teams
    listed = _command(bot, bot.sender, "roles list", ADMIN_A)["text"]
    assert f"admins: <@{ADMIN_A}>" in listed and f"<@{MOD_A}>" in listed
    assert MOD_B not in listed
    added = _command(bot, bot.sender, "roles add <@U0NEW00001|new> moderator", ADMIN_A)
    assert "<@U0NEW00001> is now a moderator" in added["text"]
    again = _command(bot, bot.sender, "roles add <@U0NEW00001> moderator", ADMIN_A)
    assert "already a moderator" in again["text"]
    removed = _command(bot, bot.sender, "roles remove <@U0NEW00001> moderator", ADMIN_A)
    assert "no longer a moderator" in removed["text"]
    # Bad input: a bare name, an unknown role, a missing word; a moderator may not manage.
    assert "not a Slack user" in _command(bot, bot.sender, "roles add @bob admin", ADMIN_A)["text"]
    assert "unknown role" in _command(bot, bot.sender, f"roles add {MOD_A} owner", ADMIN_A)["text"]
    assert "Usage" in _command(bot, bot.sender, "roles add", ADMIN_A)["text"]
    assert "Only this workspace's admins" in _command(bot, bot.sender, "roles list", MOD_A)["text"]
    # The last stored admin cannot be removed from Slack.
    last = _command(bot, bot.sender, f"roles remove <@{ADMIN_A}> admin", ADMIN_A)
    assert "last admin" in last["text"]
    with bot.database.begin() as session:
        entries = audit.list_audit(session=session, subject_prefix=f"roles/{TEAM_A}/")
        b_roles = workspace_roles.team_roles(session=session, team_id=TEAM_B)
    assert [(e.action, e.actor, e.details["via"]) for e in reversed(entries)] == [
        ("roles.add", ADMIN_A, "slack"),
        ("roles.remove", ADMIN_A, "slack"),
    ]
    assert b_roles.admins == {ADMIN_B}
    del other


def test_an_environment_admin_starting_stored_roles_stays_admin(
    database: Database,
    fake_slack: FakeSlack,
    tasks: dict[str, TaskSpec],
    alert_policy: AlertPolicy,
    models: FakeModels,
) -> None:
    roles = Roles.from_database(database, admins=[ADMIN], moderators=[MODERATOR])
    with serve_bot(database, fake_slack, tasks, alert_policy, models, roles=roles) as bot:
        listed = _command(bot, bot.sender, "roles list", ADMIN)["text"]
        assert "come from the environment" in listed and f"<@{MODERATOR}>" in listed
        added = _command(bot, bot.sender, "roles add <@U0NEW00001> moderator", ADMIN)["text"]
        assert "first stored roles" in added
        with database.begin() as session:
            stored = workspace_roles.team_roles(session=session, team_id=TEAM_A)
        assert stored.admins == {ADMIN} and stored.moderators == {"U0NEW00001"}
        assert roles.is_admin(ADMIN, TEAM_A) and not roles.can_label(MODERATOR, TEAM_A)
        assert roles.can_label(MODERATOR, "T0ELSEWHERE")  # no stored roles there


def test_disputes_answered_from_another_workspace_are_refused(
    two_teams: tuple[SurfaceBot, SlackSender],
) -> None:
    bot, _ = two_teams
    _seed(bot.database)
    with bot.database.begin() as session:
        disputed = opinions.disputes(session=session, team_id=TEAM_A)
    assert [view.text for view in disputed] == ["alpha disputed text"]
    service = bot.services.second_opinions
    with pytest.raises(Exception, match="no second opinion dispute"):
        service.decide(
            user_id=ADMIN_B, request_id=disputed[0].request.id, label="ham", team_id=TEAM_B
        )
    decided = service.decide(
        user_id=ADMIN_A, request_id=disputed[0].request.id, label="ham", team_id=TEAM_A
    )
    assert decided.created and decided.request_id == disputed[0].request.id
    with bot.database.begin() as session:
        view = opinions.get_request(session=session, request_id=disputed[0].request.id)
    assert view.request.status is SecondOpinionStatus.DECIDED


def test_the_digest_goes_to_each_workspaces_moderators_with_its_own_count(
    two_teams: tuple[SurfaceBot, SlackSender],
) -> None:
    from dataclasses import replace

    from bot.services.review_digest import ReviewDigest

    bot, _ = two_teams
    _seed(bot.database)
    with bot.database.begin() as session:
        for i in range(3):  # B waits for more than A
            message = messages.add_message(
                session=session,
                team_id=TEAM_B,
                channel_id=GENERAL,
                ts=f"9.{i}",
                text=f"b{i}",
                user_id=MEMBER,
            )
            messages.add_prediction(
                session=session,
                task="spam",
                model_version="3",
                label="spam",
                scores={"ham": 0.4, "spam": 0.6},
                latency_ms=1.0,
                message_id=message.id,
            )
    review = bot.services.review
    review.options = replace(review.options, digest_min_items=2)
    client = make_client(BOT_TOKEN, base_url=bot.fake.api_url)
    digest = ReviewDigest(bot.database, client, review, [MODERATOR], roles=bot.services.roles)
    assert digest.recipients() == [
        (TEAM_A, MOD_A),
        (TEAM_A, SECOND_A),
        (TEAM_B, MOD_B),
    ]
    outcomes = {(o.team_id, o.user_id): o for o in digest.send_due()}
    # A: its queue item and the appealed/wanted/disputed messages' predictions that no
    # moderator of A labelled; B likewise plus three more. Never the other team's.
    assert outcomes[(TEAM_B, MOD_B)].waiting == outcomes[(TEAM_A, MOD_A)].waiting + 3
    # (The fake Slack knows only its own users, so these DMs fail and are given back.)
    assert {o.outcome for o in outcomes.values()} == {"failed"}
