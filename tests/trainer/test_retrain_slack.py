"""``/retrain`` behind the bot with the REAL learning loop on the tiny BERT.

The fast tests of the command (tests/bot/test_retrain_command.py) use a fake runner; this
one sends a signed ``/retrain`` over HTTP and lets :func:`trainer.retrain.retrain` snapshot,
fine-tune, gate and promote on the bot's worker thread, then checks the result card against
the registry and that this process hot-reloaded the new production model.
"""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.app import BotConfig, create_app, make_client
from bot.emulator.inbound import SlackSender
from bot.emulator.outbound import FakeSlack
from bot.services import BotServices
from bot.services.retraining import RetrainService
from bot.services.roles import Roles
from bot.transport.http import BotHttpServer
from storage import registry, runs, schema
from storage.db import Database
from storage.enums import RunStatus, RunTrigger
from tests.trainer.test_retrain import FAST, TOY, seed
from trainer.gate import GateConfig
from trainer.retrain import RetrainOptions
from trainer.serving import ProductionModels, registry_resolver

TOKEN = "xoxb-retrain-e2e"
SECRET = "retrain-e2e-signing-secret"
ADMIN = "U0ADMIN01"
CHANNEL = "C0GENERAL"


@pytest.mark.slow
def test_slash_retrain_runs_the_real_loop_and_its_card_matches_the_registry(
    tmp_path: Path, tiny_encoder_dir: Path
) -> None:
    database = Database.connect(f"sqlite:///{tmp_path / 'bot.db'}")
    schema.upgrade(database)
    seed(database, count=300)
    home = tmp_path / "home"
    options = RetrainOptions(
        home=home,
        encoder_dir=tiny_encoder_dir,
        base_encoder="tiny-bert",
        gate=GateConfig(min_eval=20, bootstrap_resamples=300),
        max_minutes=2,
        min_new_labels=5,
        lease_ttl=timedelta(seconds=30),
        train_overrides=FAST,
    )
    roles = Roles.of(admins=[ADMIN])
    models = ProductionModels([TOY.name], registry_resolver(database, home))
    service = RetrainService(
        database,
        {TOY.name: TOY},
        options,
        roles,
        on_alias_moved=models.notify,
        progress_interval_s=0.0,
    )
    services = BotServices(database, models, {TOY.name: TOY}, roles)
    with FakeSlack(bot_token=TOKEN) as fake:
        app = create_app(
            BotConfig(signing_secret=SECRET),
            services,
            make_client(TOKEN, base_url=fake.api_url),
            retraining=service,
        )
        server = BotHttpServer(app, host="127.0.0.1", port=0, threads=4).start()
        try:
            sender = SlackSender(server.events_url, SECRET, fake=fake)
            delivery = sender.command("toy", command="/retrain", user_id=ADMIN, channel_id=CHANNEL)
            assert delivery.status == 200 and delivery.elapsed_s < 3.0
            [answer] = fake.wait_for("response_url", timeout=10)
            assert answer.params["text"].startswith("Training the first *toy* model on 300 ")
            [final] = fake.wait_for(
                "chat.update",
                where=lambda c: str(c.params.get("text", "")).startswith("toy retrain:"),
                timeout=240,
            )
            service.drain(60)
        finally:
            server.close()
            service.shutdown()
            models.stop()

        with database.begin() as session:
            [run] = runs.list_runs(session=session, task=TOY.name)
            production = registry.get_alias(session=session, task=TOY.name)
        assert run.trigger == RunTrigger.ADMIN and run.requested_by == ADMIN
        assert run.status == RunStatus.SUCCEEDED, run.error
        assert production is not None and production.id == run.candidate_version_id
        decision = run.gate_decision or {}
        [card] = fake.messages(CHANNEL)
        assert card.blocks == final.params["blocks"]
        text = "\n".join(
            [b["text"]["text"] for b in card.blocks if "text" in b]
            + [f["text"] for b in card.blocks for f in b.get("fields", [])]
        )
        assert "*toy v1 promoted: it is production now* (the task's first model)" in text
        assert f"*Candidate macro-F1*\n{decision['candidate']['macro_f1']:.4f}" in text
        progress = [c.params["text"] for c in fake.calls("chat.update")]
        assert any("Training: step" in line for line in progress)
        loaded = models.get(TOY.name)
        assert loaded is not None and loaded.version == "1"  # hot-reloaded on promotion
    database.dispose()
