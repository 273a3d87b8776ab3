"""Alerts read calibrated probabilities: one trained model served at two temperatures.

A real (tiny) model is trained once and re-exported at two temperatures: at one it serves
P(pos) = 0.9 for a text, enough to alert moderators; at the other it serves 0.7 for the same
text, under the threshold, and nobody is alerted. Over signed HTTP; the stored prediction
carries the probability the threshold was compared with.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from bot.services.alert_outbox import AlertPolicy
from storage import messages
from storage.models import Alert
from tests.bot.conftest import MEMBER, Bot, eventually
from tests.trainer.conftest import tiny_encoder_dir, tiny_hf_checkpoint  # noqa: F401 - fixtures
from tests.trainer.test_train import toy_examples
from trainer.serving import SavedModelClassifier
from trainer.tasks import TaskSpec

TOY = TaskSpec("toy", ("neg", "pos"), alert_label="pos")
THRESHOLD = 0.8
SURE_P = 0.9  # what the first export's temperature makes of the text: above the threshold
CALIBRATED_P = 0.7  # and the second's: the same model, the same text, under it


class Models:
    def __init__(self, model: SavedModelClassifier) -> None:
        self.models = {TOY.name: model}

    def get(self, task: str) -> SavedModelClassifier | None:
        return self.models.get(task)


@pytest.fixture(scope="module")
def exports(tiny_encoder_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:  # noqa: F811
    from trainer.export import reexport
    from trainer.train import TrainConfig, train

    root = tmp_path_factory.mktemp("calibrated-alerts")
    config = TrainConfig(
        labels=TOY.labels,
        encoder_dir=str(tiny_encoder_dir),
        epochs=10,
        learning_rate=5e-3,
        batch_size=16,
        warmup_fraction=0.0,
        dropout=0.0,
        patience=100,
    )
    result = train(toy_examples(240), config, root / "trained", task="toy", version="1")
    trained = SavedModelClassifier.load(result.artifact_dir)
    candidates = [e.text for e in toy_examples(30, seed=5) if e.label == "pos"]
    logits = trained.logits(candidates)
    margins = logits[:, 1] - logits[:, 0]
    best = int(np.argmax(margins))
    assert margins[best] > 0.5, "the toy model predicts none of the texts as pos"

    def temperature_for(p_pos: float) -> float:
        # For two classes P(pos) = sigmoid(margin / T): this T makes it exactly p_pos.
        return float(margins[best] / math.log(p_pos / (1 - p_pos)))

    temperatures = {"sure": temperature_for(SURE_P), "calibrated": temperature_for(CALIBRATED_P)}
    for name, temperature in temperatures.items():
        reexport(
            result.artifact_dir, root / name, serving_precision="float32", temperature=temperature
        )
    return {"text": candidates[best], "root": root, "temperatures": temperatures}


@pytest.fixture
def tasks() -> dict[str, TaskSpec]:
    return {TOY.name: TOY}


@pytest.fixture
def alert_policy() -> AlertPolicy:
    return AlertPolicy(channel="moderators", threshold=THRESHOLD, reaction=None)


@pytest.fixture(params=["sure", "calibrated"])
def models(request: pytest.FixtureRequest, exports: dict[str, Any]) -> Models:
    return Models(SavedModelClassifier.load(exports["root"] / request.param))


def test_the_alert_threshold_is_compared_with_the_served_calibrated_probability(
    bot: Bot, exports: dict[str, Any]
) -> None:
    model = bot.models.models[TOY.name]
    event = bot.sender.message_event(exports["text"], user_id=MEMBER)
    assert bot.sender.event(event).status == 200
    bot.settle()

    def stored() -> Any:
        with bot.database.begin() as session:
            message = messages.find_message(
                session=session,
                team_id=bot.sender.team_id,
                channel_id=event["channel"],
                ts=event["ts"],
            )
            assert message is not None
            return messages.predictions_for_message(session=session, message_id=message.id)

    [prediction] = eventually(stored, timeout=20)
    p_pos = prediction.scores["pos"]
    expected = SURE_P if model.path.name == "sure" else CALIBRATED_P
    assert model.temperature == pytest.approx(exports["temperatures"][model.path.name])
    assert p_pos == pytest.approx(expected, abs=0.01)  # the stored score is the calibrated one
    if p_pos >= THRESHOLD:
        [alert] = bot.fake.wait_for("chat.postMessage", timeout=20)
        assert alert.params["channel"] == "moderators"
    else:
        assert bot.count(Alert) == 0  # none queued with the prediction, so none to post
        bot.settle()
        assert [c for c in bot.fake.calls("chat.postMessage") if c.ok] == []
