"""The learning loop's commands on the tiny BERT: retrain, models list/show/promote/rollback,
data export."""

from __future__ import annotations

import csv
import io
import json
import os
from pathlib import Path

import pytest

from bertbot.cli import main
from tests.trainer.test_retrain import new_domain
from tests.trainer.test_train import toy_examples


@pytest.fixture
def home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_encoder_dir: Path) -> Path:
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("BERTBOT_", "SLACK_")):
            monkeypatch.delenv(name)
    home = tmp_path / "home"
    (home / "encoders").mkdir(parents=True)
    (home / "encoders" / "tiny").symlink_to(tiny_encoder_dir)
    (tmp_path / "tasks.json").write_text(json.dumps({"toy": {"labels": ["neg", "pos"]}}))
    for name, value in {
        "BERTBOT_HOME": str(home),
        "BERTBOT_ENCODER": "tiny",
        "BERTBOT_TASKS": "toy",
        "BERTBOT_TASKS_FILE": str(tmp_path / "tasks.json"),
        "BERTBOT_GATE__MIN_EVAL": "20",
        "BERTBOT_GATE__MIN_NEW_LABELS": "5",
        "BERTBOT_RETRAIN__TRAIN_OVERRIDES": json.dumps(
            {"epochs": 3, "learning_rate": 2e-3, "batch_size": 16}
        ),
    }.items():
        monkeypatch.setenv(name, value)
    return home


def _csv(path: Path, rows: list[tuple[str, str]]) -> str:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return str(path)


def test_retrain_models_and_export(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    # The tiny model's calibration swings between retrains (a validation split it gets all
    # right keeps T = 1): this test is about the commands, the ECE rule has its own tests.
    monkeypatch.setenv("BERTBOT_GATE__MAX_ECE_INCREASE", "1")
    assert main(["db", "upgrade"]) == 0
    seed = _csv(tmp_path / "seed.csv", [(e.text, e.label) for e in toy_examples(260)])
    assert main(["data", "import", seed, "--task", "toy"]) == 0
    assert main(["retrain", "--task", "toy"]) == 0
    out = capsys.readouterr().out
    assert "succeeded: first model" in out

    assert main(["retrain", "--task", "toy"]) == 0
    assert "skipped: 0 new correction(s)" in capsys.readouterr().out

    fixes = new_domain(200, seed=7)
    assert (
        main(
            [
                "data",
                "import",
                _csv(tmp_path / "fix.csv", fixes),
                "--task",
                "toy",
                "--as-corrections",
                "--annotator",
                "U0MOD",
            ]
        )
        == 0
    )
    assert main(["retrain", "--task", "toy", "--actor", "U0ADMIN"]) == 0
    assert "run 3: succeeded: better:" in capsys.readouterr().out

    assert main(["models", "list", "--task", "toy", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [(v["version"], v["status"], v["production"]) for v in listed] == [
        ("1", "accepted", False),
        ("2", "accepted", True),
    ]
    assert listed[1]["data_snapshot"]["all"]["source"]["correction"] > 0
    assert "macro_f1" in listed[1]["metrics"]["eval"]

    assert main(["models", "rollback", "--task", "toy", "--reason", "too eager"]) == 0
    assert "production 2 -> 1" in capsys.readouterr().out
    assert main(["models", "show", "--task", "toy", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["version"] == "1"
    assert main(["models", "promote", "--task", "toy", "--version", "2", "--reason", "ok"]) == 0
    assert "production 1 -> 2" in capsys.readouterr().out
    assert main(["models", "promote", "--task", "toy", "--version", "2", "--reason", "x"]) == 1
    assert "production already" in capsys.readouterr().err

    assert main(["data", "export", "--task", "toy"]) == 0
    exported = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(exported) == 260 + 200
    corrected = [r for r in exported if r["source"] == "correction"]
    assert len(corrected) == 200 and {r["annotator"] for r in corrected} == {"U0MOD"}
    assert {r["split"] for r in exported} == {"train", "eval"}


def test_setup_trains_a_first_model_and_skips_what_is_done(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    seed = _csv(tmp_path / "seed.csv", [(e.text, e.label) for e in toy_examples(200)])
    assert main(["data", "import", seed, "--task", "toy"]) == 0
    assert main(["setup", "--fast"]) == 0
    err = capsys.readouterr().err
    assert "tiny already imported" in err and "toy: training the first model" in err
    assert main(["setup"]) == 0
    assert "toy: production is v1" in capsys.readouterr().err
    assert main(["doctor"]) == 0
