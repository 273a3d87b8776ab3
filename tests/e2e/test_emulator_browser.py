"""The local Slack emulator in a real browser: headless Debian chromium driven by Playwright.

The bot is bertbot's own app served over HTTP exactly as ``bertbot serve --emulator`` serves
it (keyword-rule fake classifiers, a migrated SQLite database, a fake retrain runner that
writes real registry rows); every click in the page becomes a signed Slack request to it.
Screenshots of each step go to ``$BERTBOT_TEST_ARTIFACTS/emulator`` (default
``test-artifacts/emulator``, git-ignored).

Needs ``/usr/bin/chromium`` (``apt-get install -y chromium``; never ``playwright install``).
Without it the tests skip, except in CI (``CI=true``), where they fail.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect, sync_playwright

from bot.app import BotConfig, create_app, make_client
from bot.emulator import Emulator, EmulatorWebServer
from bot.emulator.inbound import LOCAL_SIGNING_SECRET
from bot.emulator.outbound import LOCAL_BOT_TOKEN
from bot.services import BotServices
from bot.services.alert_outbox import AlertPolicy
from bot.services.retraining import RetrainService
from bot.services.roles import Roles
from bot.services.status import StatusService
from bot.transport.http import BotHttpServer
from storage import annotations, registry, schema
from storage.db import Database
from storage.enums import AnnotationSource
from storage.records import AnnotationRecord
from tests.bot.conftest import SPAM_TEXT, TrackingExecutor, fake_models
from tests.bot.test_retrain_command import FakeRunner
from tests.ci import running_in_ci
from trainer.gate import GateConfig
from trainer.retrain import RetrainOptions
from trainer.tasks import BUILTIN_TASKS

pytestmark = pytest.mark.browser

CHROMIUM = Path("/usr/bin/chromium")
ROOT = Path(__file__).resolve().parents[2]
MEMBER, MODERATOR, ADMIN = "U0EMUMEMBER", "U0EMUMODERATOR", "U0EMUADMIN"
WAIT_MS = 15_000


def _require_chromium() -> None:
    if CHROMIUM.exists():
        return
    message = f"the browser tests need {CHROMIUM}: apt-get install -y chromium"
    if running_in_ci():
        pytest.fail(f"{message} (CI=true: failing instead of skipping)")
    pytest.skip(message)


@pytest.fixture(scope="module")
def artifacts() -> Path:
    base = Path(os.environ.get("BERTBOT_TEST_ARTIFACTS") or ROOT / "test-artifacts")
    path = base / "emulator"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    _require_chromium()
    args = ["--no-sandbox"] if os.geteuid() == 0 else []  # chromium refuses root otherwise
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(CHROMIUM), headless=True, args=args
        )
        yield launched
        launched.close()


@dataclass
class LocalSlack:
    url: str
    emulator: Emulator
    database: Database
    runner: FakeRunner
    retraining: RetrainService


@pytest.fixture
def local_slack(tmp_path: Path) -> Iterator[LocalSlack]:
    """bertbot behind the emulator, wired as ``bertbot serve --emulator`` wires it."""
    database = Database.connect(f"sqlite:///{tmp_path / 'bot.db'}")
    schema.upgrade(database)
    tasks = {name: BUILTIN_TASKS[name] for name in ("spam", "sentiment")}
    models = fake_models()
    emulator = Emulator().start()
    roles = Roles.of(
        admins=emulator.ids_with_role("admin"), moderators=emulator.ids_with_role("moderator")
    )
    services = BotServices(
        database, models, tasks, roles, alerts=AlertPolicy(channel="moderators", threshold=0.8)
    )
    runner = FakeRunner()
    retraining = RetrainService(
        database,
        tasks,
        RetrainOptions(
            home=tmp_path / "home",
            encoder_dir=tmp_path / "encoder",
            base_encoder="fake",
            gate=GateConfig(min_eval=20, bootstrap_resamples=200),
            lease_ttl=timedelta(seconds=30),
        ),
        roles,
        runner=runner,
        progress_interval_s=0.0,
    )
    executor = TrackingExecutor(4)
    app = create_app(
        BotConfig(signing_secret=LOCAL_SIGNING_SECRET),
        services,
        make_client(LOCAL_BOT_TOKEN, base_url=emulator.api_url),
        executor=executor,
        status=StatusService(database, models, tasks, roles),
        retraining=retraining,
    )
    server = BotHttpServer(app, port=0, threads=4).start()
    emulator.connect(server.events_url)
    page_server = EmulatorWebServer(emulator, port=0).start()
    try:
        yield LocalSlack(page_server.url, emulator, database, runner, retraining)
    finally:
        page_server.stop()
        server.close()
        executor.wait_idle()
        executor.shutdown()
        retraining.shutdown(wait=True)
        emulator.stop()
        database.dispose()


@pytest.fixture
def page(browser: Browser, local_slack: LocalSlack) -> Iterator[Page]:
    context = browser.new_context(viewport={"width": 1280, "height": 860})
    opened = context.new_page()
    problems: list[str] = []
    opened.on("pageerror", lambda error: problems.append(f"page error: {error}"))
    opened.on(
        "console",
        lambda message: (
            problems.append(f"console: {message.text}") if message.type == "error" else None
        ),
    )
    opened.goto(local_slack.url)
    expect(opened.locator("#user-select option")).to_have_count(3)
    yield opened
    context.close()
    assert problems == []  # no script errors, no Content-Security-Policy violations


def act_as(page: Page, user_id: str) -> None:
    page.select_option("#user-select", user_id)
    expect(page.locator("#user-role")).to_contain_text(user_id)


def open_channel(page: Page, name: str) -> None:
    page.locator("a.channel-item", has_text=f"# {name}").click()
    expect(page.locator("#main-title")).to_have_text(f"# {name}")


def type_and_send(page: Page, text: str) -> None:
    page.fill("#composer-input", text)
    page.press("#composer-input", "Enter")


def corrections(database: Database) -> list[AnnotationRecord]:
    with database.begin() as session:
        return annotations.list_annotations(session=session, source=AnnotationSource.CORRECTION)


def test_a_member_classifies_privately(
    page: Page, local_slack: LocalSlack, artifacts: Path
) -> None:
    act_as(page, MEMBER)
    open_channel(page, "general")
    type_and_send(page, "/classify I love this!")
    answer = page.locator(".message.ephemeral", has_text="/classify")
    expect(answer).to_contain_text("sentiment: Positive", timeout=WAIT_MS)
    expect(answer.locator(".ephemeral-note")).to_have_text("Only visible to you")
    expect(answer.locator("b", has_text="Positive")).to_be_visible()
    page.screenshot(path=str(artifacts / "01-member-classify.png"))

    act_as(page, MODERATOR)  # an ephemeral answer is nobody else's business
    expect(page.locator(".message")).to_have_count(0)


def test_a_moderator_gets_the_spam_alert_and_corrects_it(
    page: Page, local_slack: LocalSlack, artifacts: Path
) -> None:
    act_as(page, MEMBER)
    open_channel(page, "general")
    type_and_send(page, SPAM_TEXT)
    expect(page.locator(".message", has_text=SPAM_TEXT)).to_have_count(1, timeout=WAIT_MS)

    act_as(page, MODERATOR)
    expect(page.locator("a.channel-item.unread", has_text="moderators")).to_be_visible(
        timeout=WAIT_MS
    )
    open_channel(page, "moderators")
    alert = page.locator(".message", has_text="Possible spam")
    expect(alert).to_contain_text(SPAM_TEXT, timeout=WAIT_MS)
    expect(alert.locator(".mention")).to_have_text("@mia")
    page.screenshot(path=str(artifacts / "02-moderator-alert.png"))

    alert.get_by_role("button", name="Not spam").click()
    expect(alert).to_contain_text("Labelled Not spam by @mo", timeout=WAIT_MS)
    expect(alert.locator(".edited")).to_be_visible()
    [stored] = corrections(local_slack.database)
    assert (stored.task, stored.label, stored.annotator) == ("spam", "ham", MODERATOR)
    assert (stored.predicted_label, stored.text) == ("spam", SPAM_TEXT)
    page.screenshot(path=str(artifacts / "03-moderator-labelled.png"))

    # The same message through the "Label with bertbot" shortcut and its modal.
    alert.locator("a.permalink").click()  # "View message" jumps back to #general
    expect(page.locator("#main-title")).to_have_text("# general")
    message = page.locator(".message", has_text=SPAM_TEXT)
    message.hover()
    message.locator("button.more-actions").click()
    page.locator("#shortcut-menu button", has_text="Label with bertbot").click()
    modal = page.locator("#modal")
    expect(modal).to_be_visible(timeout=WAIT_MS)
    expect(page.locator("#modal-title")).to_have_text("Label with bertbot")
    page.click("#modal-submit")  # nothing chosen: the bot answers response_action=errors
    expect(page.locator("#modal-body .input-error").first).to_have_text(
        "Choose a label for at least one task.", timeout=WAIT_MS
    )
    modal.locator(".input", has_text="sentiment label").locator("select").select_option("negative")
    page.screenshot(path=str(artifacts / "04-moderator-label-modal.png"))
    page.click("#modal-submit")
    expect(modal).to_be_hidden(timeout=WAIT_MS)
    expect(page.locator(".message.ephemeral", has_text="Labelled Negative by")).to_be_visible(
        timeout=WAIT_MS
    )
    labels = {(c.task, c.label) for c in corrections(local_slack.database)}
    assert labels == {("spam", "ham"), ("sentiment", "negative")}


def test_an_admin_retrains_and_gets_the_result_card(
    page: Page, local_slack: LocalSlack, artifacts: Path
) -> None:
    act_as(page, ADMIN)
    open_channel(page, "general")
    type_and_send(page, "/retrain spam")
    card = page.locator(".message:not(.ephemeral)", has_text="spam v")
    expect(card).to_contain_text(re.compile(r"spam v\S+ promoted"), timeout=WAIT_MS)
    expect(card.get_by_role("button", name=re.compile("Roll back"))).to_be_visible()
    with local_slack.database.begin() as session:
        production = registry.get_alias(session=session, task="spam")
    assert production is not None and f"spam v{production.version} promoted" in card.inner_text()
    assert [call.requested_by for call in local_slack.runner.calls] == [ADMIN]
    page.screenshot(path=str(artifacts / "05-admin-retrain-card.png"))

    page.click("#home-link")  # App Home: published on app_home_opened
    expect(page.locator("#home-content")).not_to_be_empty(timeout=WAIT_MS)
    expect(page.locator("#home-content .block").first).to_be_visible()
    page.screenshot(path=str(artifacts / "06-admin-home.png"))
