"""A policy change and an appeal in the local Slack emulator, in a real browser.

As ``test_emulator_browser.py``: bertbot's own app served over HTTP behind the emulator
(keyword-rule fake classifiers, a migrated SQLite database), headless Debian chromium driven
by Playwright, screenshots of each step in ``$BERTBOT_TEST_ARTIFACTS/emulator``. The bot has
the emulator's admin user token, so ``remove`` deletes (as ``bertbot serve --emulator``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from bot.app import BotConfig, create_app, make_client
from bot.emulator import Emulator, EmulatorWebServer
from bot.emulator.inbound import LOCAL_SIGNING_SECRET
from bot.emulator.outbound import LOCAL_ADMIN_USER_TOKEN, LOCAL_BOT_TOKEN
from bot.services import BotServices
from bot.services.alert_outbox import AlertPolicy
from bot.services.roles import Roles
from bot.services.status import StatusService
from bot.transport.http import BotHttpServer
from storage import annotations, audit, schema
from storage.db import Database
from storage.enums import AnnotationSource, PolicyAction
from storage.records import AnnotationRecord
from tests.bot.conftest import SPAM_TEXT, TrackingExecutor, fake_models
from tests.e2e.test_emulator_browser import (  # noqa: F401 - fixtures
    ADMIN,
    MEMBER,
    MODERATOR,
    WAIT_MS,
    act_as,
    artifacts,
    browser,
    open_channel,
    type_and_send,
)
from trainer.tasks import BUILTIN_TASKS

pytestmark = pytest.mark.browser

GENERAL = "C0GENERAL"
NOTE = "This is our bakery's weekly offer, posted where offers belong"


@pytest.fixture
def local_slack(tmp_path: Path) -> Iterator[tuple[str, Database, BotServices]]:
    database = Database.connect(f"sqlite:///{tmp_path / 'bot.db'}")
    schema.upgrade(database)
    tasks = {name: BUILTIN_TASKS[name] for name in ("spam", "sentiment")}
    models = fake_models()
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
        status=StatusService(
            database, models, tasks, roles, open_appeals=services.appeals.open_items
        ),
    )
    server = BotHttpServer(app, port=0, threads=4).start()
    emulator.connect(server.events_url)
    page_server = EmulatorWebServer(emulator, port=0).start()
    try:
        yield page_server.url, database, services
    finally:
        page_server.stop()
        server.close()
        executor.wait_idle()
        executor.shutdown()
        services.close()
        emulator.stop()
        database.dispose()


@pytest.fixture
def page(browser: Browser, local_slack: tuple[str, Database, BotServices]) -> Iterator[Page]:  # noqa: F811
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    opened.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}") if message.type == "error" else None
        ),
    )
    opened.goto(local_slack[0])
    expect(opened.locator("#user-select option")).to_have_count(3)
    yield opened
    context.close()
    assert problems == []


def test_an_admin_sets_remove_and_the_author_appeals_and_is_restored(
    page: Page,
    local_slack: tuple[str, Database, BotServices],
    artifacts: Path,  # noqa: F811
) -> None:
    _, database, services = local_slack
    shots = artifacts

    # The admin's policy modal: every channel the bot is in, with its policy.
    act_as(page, ADMIN)
    open_channel(page, "general")
    type_and_send(page, "/bertbot policy")
    modal = page.locator("#modal")
    expect(page.locator("#modal-title")).to_have_text("Moderation policy", timeout=WAIT_MS)
    expect(modal).to_contain_text("workspace default")
    modal.locator('select[name="policy_channel/value"]').select_option(GENERAL)
    modal.locator('select[name="policy_task/value"]').select_option("spam")
    modal.locator('select[name="policy_action/value"]').select_option("remove")
    modal.locator('input[name="policy_threshold/value"]').fill("0.9")
    page.screenshot(path=str(shots / "10-admin-policy-modal.png"))
    page.click("#modal-submit")
    expect(modal).to_contain_text("now: spam: watched · threshold 0.90 · remove", timeout=WAIT_MS)
    page.screenshot(path=str(shots / "11-admin-policy-saved.png"))
    assert services.policies.for_channel(GENERAL)["spam"].action is PolicyAction.REMOVE
    with database.begin() as session:
        [entry] = audit.list_audit(session=session, subject_prefix="policy/")
    assert (entry.actor, entry.action) == (ADMIN, "policy.set")
    page.click("#modal-close")
    expect(modal).to_be_hidden(timeout=WAIT_MS)

    # The member's spam is removed; bertbot tells them privately, with an Appeal button.
    act_as(page, MEMBER)
    open_channel(page, "general")
    type_and_send(page, SPAM_TEXT)
    expect(page.locator(".message", has_text="This message was removed")).to_be_visible(
        timeout=WAIT_MS
    )
    expect(page.locator(".message", has_text=SPAM_TEXT)).to_have_count(0)
    page.screenshot(path=str(shots / "12-member-message-removed.png"))
    page.click("#dm-link")
    expect(page.locator("#main-title")).to_have_text("bertbot · Messages")
    notice = page.locator(".message", has_text="was removed as possible spam")
    expect(notice).to_contain_text("97% confidence", timeout=WAIT_MS)
    page.screenshot(path=str(shots / "13-member-notice-with-appeal.png"))

    # The appeal: a note for the moderators.
    notice.get_by_role("button", name="Appeal").click()
    expect(page.locator("#modal-title")).to_have_text("Appeal", timeout=WAIT_MS)
    modal.locator("textarea").fill(NOTE)
    page.screenshot(path=str(shots / "14-member-appeal-modal.png"))
    page.click("#modal-submit")
    expect(modal).to_be_hidden(timeout=WAIT_MS)
    expect(page.locator(".message", has_text="sent to the moderators")).to_be_visible(
        timeout=WAIT_MS
    )

    # The moderator: the appeal in #moderators and at the top of the Home tab's queue.
    act_as(page, MODERATOR)
    page.click("#home-link")
    expect(page.locator("#home-content")).to_contain_text(NOTE, timeout=WAIT_MS)
    page.screenshot(path=str(shots / "15-moderator-home-queue.png"))
    open_channel(page, "moderators")
    item = page.locator(".message", has_text="Their note")
    expect(item).to_contain_text(NOTE, timeout=WAIT_MS)
    page.screenshot(path=str(shots / "16-moderator-appeal-item.png"))
    item.get_by_role("button", name="Uphold: Not spam").click()
    expect(item).to_contain_text("Appeal upheld by", timeout=WAIT_MS)
    [label] = _appeal_labels(database)
    assert (label.label, label.annotator, label.text) == ("ham", MODERATOR, SPAM_TEXT)

    # The message is back in #general, on the author's behalf; the author is answered.
    open_channel(page, "general")
    expect(page.locator(".message", has_text="Restored after review")).to_contain_text(
        SPAM_TEXT, timeout=WAIT_MS
    )
    page.screenshot(path=str(shots / "17-restored-after-review.png"))
    act_as(page, MEMBER)
    page.click("#dm-link")
    expect(page.locator(".message", has_text="Your appeal was upheld")).to_be_visible(
        timeout=WAIT_MS
    )
    page.screenshot(path=str(shots / "18-member-appeal-answered.png"))


def _appeal_labels(database: Database) -> list[AnnotationRecord]:
    with database.begin() as session:
        return annotations.list_annotations(session=session, source=AnnotationSource.APPEAL)
