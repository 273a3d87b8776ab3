"""How many TensorFlow threads each entry point gives its training.

Alone (``bertbot retrain``, ``train``, ``scheduler``) a run gets every core (threads None);
inside ``bertbot serve`` a retrain gets ``BERTBOT_RETRAIN__THREADS``; ``--threads N`` wins
wherever it exists. Each command runs in-process up to the point where it would train.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from bertbot.cli import main
from bertbot.doctor import encoder_present
from bertbot.services import retrain_options
from bertbot.settings import load_settings


class Stop(Exception):
    """Raised by a stand-in once it has seen what the entry point passes."""


@pytest.fixture
def home(clean_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A migrated home with (dummy) encoder files and BERTBOT_RETRAIN__THREADS=3."""
    home = clean_home
    monkeypatch.setenv("BERTBOT_RETRAIN__THREADS", "3")
    encoder = home / "encoders" / "all-MiniLM-L6-v2"
    for name in encoder_present(encoder):
        (encoder / name).parent.mkdir(parents=True, exist_ok=True)
        (encoder / name).write_bytes(b"x")
    assert main(["db", "upgrade"]) == 0
    return home


def test_retrain_options_give_every_core_unless_beside_serving(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)  # no stray .env
    monkeypatch.delenv("BERTBOT_RETRAIN__THREADS", raising=False)
    assert load_settings().retrain.threads == 1  # the documented default
    monkeypatch.setenv("BERTBOT_RETRAIN__THREADS", "3")
    settings = load_settings()
    assert retrain_options(settings, beside_serving=False).threads is None
    assert retrain_options(settings, beside_serving=True).threads == 3
    assert retrain_options(settings, beside_serving=False, threads=2).threads == 2
    assert retrain_options(settings, beside_serving=True, threads=2).threads == 2


@pytest.mark.parametrize(("argv", "expected"), [([], None), (["--threads", "2"], 2)])
def test_bertbot_retrain_uses_every_core_unless_told(
    home: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], expected: int | None
) -> None:
    import trainer.retrain
    from trainer.retrain import RetrainError

    seen: list[Any] = []

    def fake_retrain(_database: Any, _spec: Any, options: Any, **_kwargs: Any) -> Any:
        seen.append(options)
        raise RetrainError("stop here")

    monkeypatch.setattr(trainer.retrain, "retrain", fake_retrain)
    assert main(["retrain", "--task", "spam", *argv]) == 1
    assert [options.threads for options in seen] == [expected]


@pytest.mark.parametrize(("argv", "expected"), [([], None), (["--threads", "2"], 2)])
def test_bertbot_scheduler_uses_every_core_unless_told(
    home: Path, monkeypatch: pytest.MonkeyPatch, argv: list[str], expected: int | None
) -> None:
    import bertbot.scheduler

    seen: list[Any] = []

    def fake_build_scheduler(_settings: Any, _database: Any, options: Any, **_kwargs: Any) -> Any:
        seen.append(options)
        raise Stop

    monkeypatch.setattr(bertbot.scheduler, "build_scheduler", fake_build_scheduler)
    with pytest.raises(Stop):
        main(["scheduler", *argv])
    assert [options.threads for options in seen] == [expected]


@pytest.mark.parametrize(("argv", "expected"), [([], None), (["--threads", "2"], 2)])
def test_bertbot_train_uses_every_core_unless_told(
    home: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    argv: list[str],
    expected: int | None,
) -> None:
    import trainer.train
    from trainer.train import TrainingError

    data = tmp_path / "spam.csv"
    data.write_text("text,label\n" + "".join(f"hello {i},ham\nwin {i},spam\n" for i in range(20)))
    seen: list[Any] = []

    def fake_train(_examples: Any, config: Any, _out_dir: Any, **_kwargs: Any) -> Any:
        seen.append(config)
        raise TrainingError("stop here")

    monkeypatch.setattr(trainer.train, "train", fake_train)
    assert main(["train", "--task", "spam", "--data", str(data), "--no-register", *argv]) == 1
    assert [config.threads for config in seen] == [expected]


def test_a_retrain_inside_bertbot_serve_uses_the_setting(
    home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import bot.services.retraining

    seen: list[Any] = []

    class FakeRetrainService:
        def __init__(self, _database: Any, _specs: Any, options: Any, *_a: Any, **_k: Any):
            seen.append(options)
            raise Stop

    monkeypatch.setattr(bot.services.retraining, "RetrainService", FakeRetrainService)
    # No Slack credentials: serving a fake Slack on this machine is allowed.
    monkeypatch.setenv("BERTBOT_SLACK_API_URL", "http://127.0.0.1:9/api/")
    with pytest.raises(Stop):
        main(["serve", "--http", "--port", "0", "--with-scheduler"])
    assert [options.threads for options in seen] == [3]


def test_a_bad_thread_count_stops_the_scheduler_with_a_message(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["scheduler", "--threads", "0"]) == 1
    assert "--threads: threads must be >= 1" in capsys.readouterr().err
