"""``bertbot serve`` with keyword-rule fake models, and a place to stall (test-only launcher).

Runs the real entry point (``bertbot.cli.main(["serve", ...])``) in its own process, with
two test hooks set from the environment so a test can SIGKILL the process at a known
point of a request:

* the production models are the keyword fakes of ``tests/bot`` (no TensorFlow, no
  registry): predictions are stored as with real models;
* ``BERTBOT_TEST_PREDICT_SECONDS`` makes each prediction take that long (a real model's
  time), so a test can kill the process while it works through a backlog;
* ``BERTBOT_TEST_STALL=<where>:<word>`` makes the process write ``BERTBOT_TEST_STALL_MARKER``
  and sleep when it handles a text containing ``<word>``, at ``<where>``:
  ``predict`` (the model call, after the delivery was stored in the inbox and acknowledged,
  before the message's unit of work), ``label`` (after the annotation was inserted, before commit)
  or ``alert`` (after the message was committed, before the alert is posted).

Usage: ``python tests/reliability/serve_fake_models.py serve --http --port 0 ...``
"""

from __future__ import annotations

import os
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

import bot.listeners.events.messages as message_events  # noqa: E402
import bot.services.corrections as services  # noqa: E402
import trainer.serving as serving  # noqa: E402
from bertbot.cli import main  # noqa: E402
from tests.bot.conftest import FakeClassifier, fake_models  # noqa: E402

STALL_ENV = "BERTBOT_TEST_STALL"
MARKER_ENV = "BERTBOT_TEST_STALL_MARKER"
DELAY_ENV = "BERTBOT_TEST_PREDICT_SECONDS"


def _stall(where: str, text: str) -> None:
    spec = os.environ.get(STALL_ENV, "")
    if not spec:
        return
    place, _, word = spec.partition(":")
    if place == where and word and word in text:
        Path(os.environ[MARKER_ENV]).write_text(where)
        time.sleep(3600)  # until the test kills this process


class StallingClassifier:
    def __init__(self, inner: FakeClassifier) -> None:
        self._inner = inner
        self.task, self.version, self.labels = inner.task, inner.version, inner.labels

    def predict(self, texts: Sequence[str]) -> list[Any]:
        for text in texts:
            _stall("predict", text)
        # A model call's time, so that a test can kill the process while it works.
        time.sleep(float(os.environ.get(DELAY_ENV) or 0) * len(texts))
        return self._inner.predict(texts)


class FakeProductionModels:
    """``ProductionModels``' interface over the keyword fakes."""

    def __init__(self, tasks: Sequence[str], _resolve: Callable[..., Any], **_: Any) -> None:
        fakes = fake_models().models
        self._models = {task: StallingClassifier(fakes[task]) for task in tasks if task in fakes}

    def get(self, task: str) -> StallingClassifier | None:
        return self._models.get(task)

    def versions(self) -> dict[str, str]:
        return {task: model.version for task, model in self._models.items()}

    def refresh(self, task: str | None = None) -> dict[str, str]:
        return {name: f"fake v{model.version}" for name, model in self._models.items()}

    def notify(self, task: str) -> None:
        pass

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass


def _install_hooks() -> None:
    serving.ProductionModels = FakeProductionModels  # type: ignore[misc,assignment]
    real_add_annotation = services.add_annotation

    def add_annotation(**kwargs: Any) -> Any:
        result = real_add_annotation(**kwargs)
        _stall("label", kwargs["text"])
        return result

    services.add_annotation = add_annotation
    real_post_alerts = message_events.post_alerts

    def post_alerts(client: Any, bot_services: Any, outcome: Any, logger: Any) -> None:
        if outcome.message is not None:
            _stall("alert", outcome.message.text)
        real_post_alerts(client, bot_services, outcome, logger)

    message_events.post_alerts = post_alerts  # type: ignore[assignment]


if __name__ == "__main__":
    _install_hooks()
    sys.exit(main(sys.argv[1:]))
