"""A user without the role cannot label, retrain, promote or roll back by any route.

For every route that changes labels or models, the test builds the real signed request of
someone who may use it (a moderator's click, an admin's command, ...) without sending it,
then sends forged copies first:

* the same payload with the user swapped to a member (and, for admin-only routes, to a
  moderator) and signed again, as someone holding a valid signature would try;
* the swapped payload with the original signature (a replay that edits the body): 401.

None of them may change anything: annotations, audit entries, the production alias,
training runs and leases stay as they were, no retrain starts and no admin dialog opens.
Then the genuine request is sent and must work, which proves the forged copies were
refused for the role and not for a broken payload.

Routes: the label button and "Relabel as" select of a ``/classify`` result, an alert's
label button, the App Home queue's label button, select, "Skip" and "Not sure", the "Label
with bertbot" shortcut's modal submission, ``/retrain``, the result card's "Promote anyway" and
"Roll back" buttons and their reason modal's submission.
"""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from bot.emulator.inbound import Delivery, SlackSender
from bot.emulator.outbound import iter_elements
from bot.services.retrain_requests import PROMOTE, MoveRequest
from bot.ui import label_modal
from bot.ui import retrain as admin_blocks
from bot.ui.home import (
    HOME_LABEL_ACTION_PREFIX,
    HOME_NOT_SURE_ACTION,
    HOME_RELABEL_ACTION,
    HOME_SKIP_ACTION,
)
from bot.ui.retrain import CardRef
from storage import registry
from storage.db import Database
from storage.enums import VersionStatus
from storage.models import (
    Alias,
    Annotation,
    AuditEntry,
    Lease,
    ModelVersion,
    ReviewSkip,
    TrainingRun,
)
from tests.artifacts import write_fake_artifact
from tests.bot import surfaces
from tests.bot.conftest import ADMIN, GENERAL, MEMBER, MODERATOR, SPAM_TEXT
from tests.reliability.conftest import BotFactory, FullBot, Report

FORM = "application/x-www-form-urlencoded"


@dataclass(frozen=True)
class Signed:
    """A request built and signed as Slack would send it, not sent yet."""

    body: bytes
    content_type: str
    headers: dict[str, str]
    response_url: str | None


class DrySender(SlackSender):
    """Builds and signs requests exactly like :class:`SlackSender`, but keeps them."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.kept: list[Signed] = []

    def post(
        self,
        body: bytes,
        content_type: str,
        *,
        response_url: str | None = None,
        **_: Any,
    ) -> Delivery:
        self.kept.append(Signed(body, content_type, self.sign(body), response_url))
        return Delivery(0, b"", {}, 0.0, response_url)

    def take(self) -> Signed:
        return self.kept.pop()


def _with_user(signed: Signed, user_id: str) -> bytes:
    """The same request, made by ``user_id`` (every field naming the user swapped)."""
    fields = dict(urllib.parse.parse_qsl(signed.body.decode(), keep_blank_values=True))
    if "payload" in fields:
        payload = json.loads(fields["payload"])
        payload["user"] = {
            **payload["user"],
            "id": user_id,
            "username": user_id.lower(),
            "name": user_id.lower(),
        }
        fields["payload"] = json.dumps(payload)
    else:
        fields |= {"user_id": user_id, "user_name": user_id.lower()}
    return urllib.parse.urlencode(fields).encode()


def _protected(bot: FullBot) -> dict[str, Any]:
    """Everything a role protects."""
    with bot.database.begin() as session:

        def count(model: Any) -> int:
            return int(session.scalar(select(func.count()).select_from(model)) or 0)

        aliases = sorted(session.execute(select(Alias.task, Alias.model_version_id)).all())
        return {
            "annotations": count(Annotation),
            "review_skips": count(ReviewSkip),
            "audit": count(AuditEntry),
            "aliases": [tuple(row) for row in aliases],
            "training_runs": count(TrainingRun),
            "leases": count(Lease),
            "model_versions": count(ModelVersion),
            "retrains_started": len(bot.runner.calls),
            "admin_dialogs_opened": sum(
                1
                for call in bot.fake.calls("views.open")
                if (call.params.get("view") or {}).get("callback_id") == admin_blocks.MOVE_CALLBACK
            ),
        }


def _settle(bot: FullBot) -> None:
    bot.settle()
    bot.retraining.drain(20)
    bot.settle()


def _said_since(bot: FullBot, calls_before: int, delivery: Delivery) -> str:
    """Everything the bot told anyone since then: answers, ephemerals, views."""
    said = [json.dumps(call.params) for call in bot.fake.calls()[calls_before:]]
    return delivery.text + "\n".join(said)


@dataclass
class Route:
    name: str
    allowed: tuple[str, ...]  # who may use it
    build: Callable[[FullBot, DrySender], Signed]
    worked: Callable[[dict[str, Any], dict[str, Any]], bool]  # (before, after) of genuine


def _annotated(before: dict[str, Any], after: dict[str, Any]) -> bool:
    return bool(after["annotations"] > before["annotations"])


# Building the genuine requests ------------------------------------------------------------


def _classify_blocks(bot: FullBot) -> list[dict[str, Any]]:
    delivery = bot.sender.command(SPAM_TEXT + " love it", user_id=MODERATOR)
    key = delivery.response_url.rsplit("/", 1)[-1]  # type: ignore[union-attr]
    [call] = bot.fake.wait_for("response_url", where=lambda c: c.path.endswith(key))
    bot.settle()
    return list(call.params["blocks"])


def _classify_button(bot: FullBot, dry: DrySender) -> Signed:
    blocks = _classify_blocks(bot)
    label_ids = [e["action_id"] for _, e in iter_elements(blocks) if e["type"] == "button"]
    dry.click(
        user_id=MODERATOR, blocks=blocks, action_id=label_ids[0], channel_id=GENERAL, ephemeral=True
    )
    return dry.take()


def _classify_select(bot: FullBot, dry: DrySender) -> Signed:
    blocks = _classify_blocks(bot)
    [*_, (_, select_)] = [(b, e) for b, e in iter_elements(blocks) if e["type"] == "static_select"]
    value = select_["options"][0]["value"]
    dry.click(
        user_id=MODERATOR,
        blocks=blocks,
        action_id=select_["action_id"],
        value=value,
        channel_id=GENERAL,
        ephemeral=True,
    )
    return dry.take()


def _alert_button(bot: FullBot, dry: DrySender) -> Signed:
    before = len(bot.fake.calls("chat.postMessage"))
    event = bot.sender.message_event(SPAM_TEXT, user_id=MEMBER)
    assert bot.sender.event(event).status == 200
    [*_, call] = bot.fake.wait_for("chat.postMessage", before + 1)
    bot.settle()
    alert = bot.fake.message(call.params["channel"], call.response["ts"])
    assert alert is not None
    dry.click(
        user_id=MODERATOR,
        blocks=alert.blocks,
        action_id="bertbot_label:ham",
        channel_id=alert.channel,
        message={"type": "message", "ts": alert.ts, "text": alert.text, "blocks": alert.blocks},
    )
    return dry.take()


def _home_view(bot: FullBot) -> dict[str, Any]:
    for i in range(2):  # fresh messages, so the queue has predictions nobody labelled
        event = bot.sender.message_event(f"home queue message {i}", user_id=MEMBER)
        assert bot.sender.event(event).status == 200
    bot.settle()
    before = len(bot.fake.calls("views.publish"))
    assert surfaces.home_opened(bot.sender, MODERATOR).status == 200
    [*_, call] = bot.fake.wait_for("views.publish", before + 1)
    bot.settle()
    return dict(call.params["view"])


def _unlabelled(bot: FullBot, view: dict[str, Any], kind: str) -> tuple[str, Mapping[str, Any]]:
    with bot.database.begin() as session:
        labelled = {f"label:{p}" for p in session.scalars(select(Annotation.prediction_id))}
    for block_id, element in iter_elements(view["blocks"]):
        if element["type"] == kind and block_id not in labelled:
            action_id = str(element["action_id"])
            if action_id.startswith(HOME_LABEL_ACTION_PREFIX) or action_id == HOME_RELABEL_ACTION:
                return str(block_id), element
    raise AssertionError(f"no unlabelled {kind} in the Home queue")


def _home_button(bot: FullBot, dry: DrySender) -> Signed:
    view = _home_view(bot)
    _, element = _unlabelled(bot, view, "button")
    surfaces.view_click(
        dry, user_id=MODERATOR, view=view, action_id=element["action_id"], value=element["value"]
    )
    return dry.take()


def _home_select(bot: FullBot, dry: DrySender) -> Signed:
    """The queue's select, as Home renders it for a task of more than five labels."""
    view = _home_view(bot)
    block_id, button = _unlabelled(bot, view, "button")
    select_ = {
        "type": "static_select",
        "action_id": HOME_RELABEL_ACTION,
        "options": [
            {"text": {"type": "plain_text", "text": button["value"]}, "value": button["value"]}
        ],
    }
    view = json.loads(json.dumps(view))
    for block in view["blocks"]:
        if block.get("block_id") == block_id:
            block["elements"] = [select_]
    surfaces.view_click(
        dry, user_id=MODERATOR, view=view, action_id=HOME_RELABEL_ACTION, value=button["value"]
    )
    return dry.take()


def _home_pass(action_id: str) -> Callable[[FullBot, DrySender], Signed]:
    """The queue's "Skip" or "Not sure" button on a message nobody passed on yet."""

    def build(bot: FullBot, dry: DrySender) -> Signed:
        view = _home_view(bot)
        with bot.database.begin() as session:
            passed = {f"spam:{m}" for m in session.scalars(select(ReviewSkip.message_id))}
        value = next(
            str(element["value"])
            for _, element in iter_elements(view["blocks"])
            if element.get("action_id") == action_id and element.get("value") not in passed
        )
        surfaces.view_click(dry, user_id=MODERATOR, view=view, action_id=action_id, value=value)
        return dry.take()

    return build


def _passed(before: dict[str, Any], after: dict[str, Any]) -> bool:
    return bool(after["review_skips"] > before["review_skips"])


def _shortcut_submission(bot: FullBot, dry: DrySender) -> Signed:
    message = surfaces.user_message(bot.sender, "shortcut WIN a FREE prize", user_id=MEMBER)
    before = len(bot.fake.calls("views.open"))
    assert (
        surfaces.message_shortcut(
            bot.sender, user_id=MODERATOR, channel_id=GENERAL, message=message
        ).status
        == 200
    )
    [*_, call] = bot.fake.wait_for("views.open", before + 1)
    bot.settle()
    view = call.response["view"]
    assert view["callback_id"] == label_modal.MODAL_CALLBACK
    inputs = [b for b in view["blocks"] if b.get("type") == "input"]
    choices = {inputs[0]["block_id"]: inputs[0]["element"]["options"][0]["value"]}
    surfaces.view_submission(dry, user_id=MODERATOR, view=view, choices=choices)
    return dry.take()


def _retrain(bot: FullBot, dry: DrySender) -> Signed:
    dry.command("spam --force", command="/retrain", user_id=ADMIN)
    return dry.take()


def _seed_registry(database: Database, home: Path) -> None:
    """spam v1 in production and a rejected v2: what a card's buttons act on."""
    with database.begin() as session:
        if registry.list_model_versions(session=session, task="spam"):
            return
        for version, status in (("1", VersionStatus.ACCEPTED), ("2", VersionStatus.REJECTED)):
            record = registry.add_model_version(
                session=session,
                task="spam",
                version=version,
                status=status,
                artifact_uri=f"models/spam/{version}",
                sha256=write_fake_artifact(home / "models" / "spam" / version, version),
                base_encoder="fake",
                hyperparameters={},
                data_snapshot={},
                metrics={},
                created_by="seed",
            )
            if version == "1":
                registry.compare_and_set_alias(
                    session=session,
                    task="spam",
                    version_id=record.id,
                    expected_version_id=None,
                    updated_by="seed",
                )


def _card_button(action_id: str, version: str) -> Callable[[FullBot, DrySender], Signed]:
    def build(bot: FullBot, dry: DrySender) -> Signed:
        _seed_registry(bot.database, bot.home)
        value = json.dumps({"task": "spam", "version": version, "run": None})
        button = {"type": "button", "action_id": action_id, "value": value, "text": {}}
        card = [{"type": "actions", "block_id": "retrain_card:1", "elements": [button]}]
        ts = bot.sender.new_ts()
        dry.click(
            user_id=ADMIN,
            blocks=card,
            action_id=action_id,
            channel_id=GENERAL,
            message={"type": "message", "ts": ts, "text": "card", "blocks": card},
        )
        return dry.take()

    return build


def _move_submission(bot: FullBot, dry: DrySender) -> Signed:
    _seed_registry(bot.database, bot.home)
    view = admin_blocks.move_modal(
        MoveRequest(PROMOTE, "spam", "2", None, ""), CardRef(GENERAL, None, None)
    )
    values = {
        admin_blocks.REASON_BLOCK: {
            admin_blocks.REASON_ACTION: {"type": "plain_text_input", "value": "trust me"}
        }
    }
    payload = {
        "type": "view_submission",
        "team": {"id": dry.team_id, "domain": dry.team_domain},
        "user": {"id": ADMIN, "username": ADMIN.lower(), "team_id": dry.team_id},
        "api_app_id": dry.api_app_id,
        "trigger_id": "1.2.3",
        "view": {**view, "id": "V0MOVE", "state": {"values": values}},
        "response_urls": [],
    }
    dry.post(urllib.parse.urlencode({"payload": json.dumps(payload)}).encode(), FORM)
    return dry.take()


ROUTES = [
    Route("classify label button", ("moderator", "admin"), _classify_button, _annotated),
    Route("classify relabel select", ("moderator", "admin"), _classify_select, _annotated),
    Route("alert label button", ("moderator", "admin"), _alert_button, _annotated),
    Route("App Home label button", ("moderator", "admin"), _home_button, _annotated),
    Route("App Home relabel select", ("moderator", "admin"), _home_select, _annotated),
    Route("shortcut modal submission", ("moderator", "admin"), _shortcut_submission, _annotated),
    Route("App Home Skip button", ("moderator", "admin"), _home_pass(HOME_SKIP_ACTION), _passed),
    Route(
        "App Home Not sure button",
        ("moderator", "admin"),
        _home_pass(HOME_NOT_SURE_ACTION),
        _passed,
    ),
    Route(
        "/retrain",
        ("admin",),
        _retrain,
        lambda before, after: after["retrains_started"] > before["retrains_started"],
    ),
    Route(
        "Promote anyway button",
        ("admin",),
        _card_button(admin_blocks.PROMOTE_ACTION, "2"),
        lambda before, after: after["admin_dialogs_opened"] > before["admin_dialogs_opened"],
    ),
    Route(
        "Roll back button",
        ("admin",),
        _card_button(admin_blocks.ROLLBACK_ACTION, "1"),
        lambda before, after: after["admin_dialogs_opened"] > before["admin_dialogs_opened"],
    ),
    Route(
        "promote/roll back modal submission",
        ("admin",),
        _move_submission,
        lambda before, after: after["aliases"] != before["aliases"],
    ),
]


def test_no_route_lets_a_user_without_the_role_change_labels_or_models(
    sqlite_database: Database, serve_bot: BotFactory, report: Report
) -> None:
    bot = serve_bot(sqlite_database)
    dry = DrySender(bot.sender.events_url, bot.sender.signing_secret, fake=bot.fake)
    forged_sent = replays_sent = genuine_sent = 0
    refusals_seen = 0
    results: dict[str, str] = {}
    for route in ROUTES:
        genuine = route.build(bot, dry)
        _settle(bot)
        intruders = [MEMBER] + ([MODERATOR] if route.allowed == ("admin",) else [])
        for intruder in intruders:
            before = _protected(bot)
            calls_before = len(bot.fake.calls())
            forged = _with_user(genuine, intruder)
            delivery = bot.sender.post(forged, genuine.content_type)
            forged_sent += 1
            assert delivery.status == 200, (route.name, intruder, delivery.status, delivery.text)
            _settle(bot)
            assert _protected(bot) == before, f"{route.name}: {intruder} changed something"
            said = _said_since(bot, calls_before, delivery)
            refused = "Only " in said
            refusals_seen += refused
            assert refused, f"{route.name}: {intruder} was not told no: {said[:500]}"

            # The forged body under the genuine request's signature: not even parsed.
            replay = bot.sender.post(forged, genuine.content_type, headers=genuine.headers)
            replays_sent += 1
            assert replay.status == 401, (route.name, replay.status)
            _settle(bot)
            assert _protected(bot) == before

        before = _protected(bot)
        delivery = bot.sender.post(genuine.body, genuine.content_type)
        genuine_sent += 1
        assert delivery.status == 200, (route.name, delivery.status, delivery.text)
        _settle(bot)
        after = _protected(bot)
        assert route.worked(before, after), f"{route.name}: the genuine request did nothing"
        results[route.name] = "refused for " + "/".join(intruders) + "; genuine worked"

    report.add(
        routes=len(ROUTES),
        forged_requests_sent=forged_sent,
        edited_replays_sent=replays_sent,
        genuine_requests_sent=genuine_sent,
        refusals_seen=refusals_seen,
        changes_by_intruders=0,
        final_state=_protected(bot),
        results=results,
    )
    report.emit()
