"""The emulator shows what a channel's policy does: a reaction, a removed message, the
author's notice (in the app's Messages tab, to the author only) and the appeal item."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from bot.app import BotConfig, create_app, make_client
from bot.emulator import Emulator
from bot.emulator.directory import APP_DM
from bot.emulator.inbound import LOCAL_SIGNING_SECRET
from bot.emulator.outbound import LOCAL_ADMIN_USER_TOKEN, LOCAL_BOT_TOKEN, LOCAL_TEAM_ID
from bot.services import BotServices
from bot.services.alert_outbox import AlertPolicy
from bot.services.roles import Roles
from bot.transport.http import BotHttpServer
from storage import messages
from storage.db import Database
from tests.bot.conftest import SPAM_TEXT, FakeModels, TrackingExecutor, eventually
from trainer.tasks import TaskSpec

MEMBER, MODERATOR, ADMIN = "U0EMUMEMBER", "U0EMUMODERATOR", "U0EMUADMIN"
GENERAL = "C0GENERAL"


@pytest.fixture
def served(
    database: Database, tasks: dict[str, TaskSpec], models: FakeModels
) -> Iterator[tuple[Emulator, BotServices]]:
    emulator = Emulator().start()
    roles = Roles.of(
        admins=emulator.ids_with_role("admin"), moderators=emulator.ids_with_role("moderator")
    )
    services = BotServices(
        database,
        models,
        tasks,
        roles,
        alerts=AlertPolicy(channel="moderators", admin_token=LOCAL_ADMIN_USER_TOKEN),
    )
    executor = TrackingExecutor(4)
    app = create_app(
        BotConfig(signing_secret=LOCAL_SIGNING_SECRET),
        services,
        make_client(LOCAL_BOT_TOKEN, base_url=emulator.api_url),
        executor=executor,
    )
    with BotHttpServer(app, port=0, threads=4) as server:
        emulator.connect(server.events_url)
        try:
            yield emulator, services
        finally:
            executor.wait_idle()
    executor.shutdown()
    services.close()
    emulator.stop()


def _shown(emulator: Emulator, user: str, channel: str) -> list[dict[str, Any]]:
    return list(emulator.state(user)["channels"].get(channel, []))


def test_react_shows_an_emoji_on_the_message(served: tuple[Emulator, BotServices]) -> None:
    emulator, services = served
    services.policies.set(actor=ADMIN, channel_id=GENERAL, task="spam", action="react")
    assert emulator.send(MEMBER, "general", SPAM_TEXT).ok
    shown = eventually(lambda: [e for e in _shown(emulator, MEMBER, GENERAL) if e["reactions"]])
    assert shown[0]["reactions"] == ["⚠️"]
    assert _shown(emulator, MEMBER, APP_DM) == []  # react does not notify


def test_remove_shows_a_removed_message_and_the_notice_only_to_its_author(
    served: tuple[Emulator, BotServices], database: Database
) -> None:
    emulator, services = served
    services.policies.set(actor=ADMIN, channel_id=GENERAL, task="spam", action="remove")
    assert emulator.send(MEMBER, "general", SPAM_TEXT).ok
    removed = eventually(
        lambda: [e for e in _shown(emulator, MODERATOR, GENERAL) if "was removed" in e["html"]]
    )
    assert SPAM_TEXT not in removed[0]["html"]
    notice = eventually(lambda: _shown(emulator, MEMBER, APP_DM))[0]
    assert "was removed as possible spam" in notice["html"] and "Appeal" in notice["html"]
    assert _shown(emulator, MODERATOR, APP_DM) == []
    assert emulator.config()["app_dm"] == APP_DM

    # Like Slack, the deletion reaches the bot as a message_deleted event: marked deleted.
    def deleted() -> bool:
        with database.begin() as session:
            message = messages.find_message(
                session=session, team_id=LOCAL_TEAM_ID, channel_id=GENERAL, ts=removed[0]["ts"]
            )
            return message is not None and message.deleted_at is not None

    eventually(deleted)
