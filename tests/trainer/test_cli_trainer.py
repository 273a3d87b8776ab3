"""The trainer's commands end to end on the tiny BERT: import, data import, train, classify,
evaluate — the path a user takes, in-process."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from bertbot.cli import main
from storage import annotations, audit, registry
from storage.db import Database
from tests.trainer.test_train import toy_examples


@pytest.fixture
def home(clean_home: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    home = clean_home
    monkeypatch.setenv("BERTBOT_ENCODER", "tiny")
    monkeypatch.setenv("BERTBOT_TASKS_FILE", str(tmp_path / "tasks.json"))
    (tmp_path / "tasks.json").write_text(json.dumps({"toy": {"labels": ["neg", "pos"]}}))
    monkeypatch.setenv("BERTBOT_TASKS", "toy")
    return home


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        writer.writerows(rows)
    return path


def test_import_train_classify_evaluate(
    home: Path, tmp_path: Path, tiny_hf_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    assert (
        main(["encoder", "import", "--from", str(tiny_hf_checkpoint), "--max-seq-length", "32"])
        == 0
    )
    assert (home / "encoders" / "tiny" / "encoder" / "saved_model.pb").is_file()
    # The import measured the serving precision on this CPU and recorded it.
    imported = capsys.readouterr().out
    assert "serving precision: " in imported and "why: " in imported
    recorded = json.loads((home / "encoders" / "tiny" / "encoder.json").read_text())
    assert [c["name"] for c in recorded["serving_precision"]["candidates"]] == [
        "float32",
        "bfloat16",
    ]
    assert main(["encoder", "tune-precision", "--show"]) == 0
    assert f"serving precision: {recorded['serving_precision']['choice']}" in (
        capsys.readouterr().out
    )
    # Re-running skips the work.
    assert main(["encoder", "import", "--from", str(tiny_hf_checkpoint)]) == 0
    assert "already imported" in capsys.readouterr().err

    data = _write_csv(tmp_path / "toy.csv", [(e.text, e.label) for e in toy_examples(300)])
    code = main(
        [
            "train",
            "--task",
            "toy",
            "--data",
            str(data),
            "--epochs",
            "4",
            "--learning-rate",
            "2e-3",
            "--batch-size",
            "16",
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    assert "toy v1: held-out macro-F1" in out and "first model of toy" in out

    database = Database.connect(f"sqlite:///{home / 'bertbot.db'}")
    with database.begin() as session:
        production = registry.get_alias(session=session, task="toy")
        entries = audit.list_audit(session=session, subject_prefix="toy/")
    assert production is not None and production.version == "1"
    assert production.artifact_uri == "toy/1"  # relative to the artifact root
    assert {e.action for e in entries} == {"register", "promote"}

    assert main(["classify", "--task", "toy", "--json", "good great", "bad not spam"]) == 0
    lines = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [line["label"] for line in lines] == ["pos", "neg"]
    assert lines[0]["model_version"] == "1" and 0.5 < lines[0]["confidence"] <= 1

    held_out = _write_csv(
        tmp_path / "held.csv", [(e.text, e.label) for e in toy_examples(60, seed=9)]
    )
    assert (
        main(["evaluate", "--model", str(home / "models/toy/1"), "--data", str(held_out), "--json"])
        == 0
    )
    metrics = json.loads(capsys.readouterr().out)
    assert metrics["macro_f1"] > 0.9 and metrics["n"] == 60
    assert set(metrics["per_class"]) == {"neg", "pos"}
    # Calibration: the served probabilities are divided by the model's temperature.
    manifest = json.loads((home / "models/toy/1/manifest.json").read_text())
    assert metrics["temperature"] == pytest.approx(manifest["temperature"])
    assert 0 <= metrics["ece"] <= 1 and 0 <= metrics["ece_uncalibrated"] <= 1
    assert 0 <= metrics["brier"] <= 2
    for name in ("confusion_matrix", "reliability_diagram"):
        assert Path(metrics["plots"][name]).read_bytes()[:4] == b"\x89PNG"
    with database.begin() as session:
        stored = registry.get_alias(session=session, task="toy")
    assert stored is not None
    assert stored.metrics["calibration"]["temperature"] == pytest.approx(manifest["temperature"])

    # A second training is registered but does not replace production by itself.
    assert main(["train", "--task", "toy", "--data", str(data), "--epochs", "1"]) == 0
    assert "production stays 1" in capsys.readouterr().out


def test_data_import_reports_bad_rows_and_stores_nothing(
    home: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["db", "upgrade"]) == 0
    bad = _write_csv(tmp_path / "bad.csv", [("fine text", "pos"), ("", "neg"), ("x", "maybe")])
    assert main(["data", "import", str(bad), "--task", "toy"]) == 1
    err = capsys.readouterr().err
    assert "bad.csv:3:" in err and "bad.csv:4:" in err and "nothing was imported" in err
    database = Database.connect(f"sqlite:///{home / 'bertbot.db'}")
    with database.begin() as session:
        assert annotations.list_annotations(session=session, task="toy") == []

    assert main(["data", "import", str(bad), "--task", "toy", "--skip-bad-rows"]) == 0
    assert "imported 1 toy labels as seed" in capsys.readouterr().out
    good = _write_csv(tmp_path / "good.csv", [("nice", "pos"), ("NICE ", "pos"), ("meh", "neg")])
    assert (
        main(
            [
                "data",
                "import",
                str(good),
                "--task",
                "toy",
                "--as-corrections",
                "--annotator",
                "U0LABELER",
            ]
        )
        == 0
    )
    with database.begin() as session:
        stored = annotations.list_annotations(session=session, task="toy")
    assert [(a.text, a.source.value) for a in stored] == [
        ("fine text", "seed"),
        ("nice", "correction"),
        ("meh", "correction"),
    ]
    assert stored[1].annotator == "U0LABELER"


def test_commands_fail_clearly_without_their_inputs(
    home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["train", "--task", "toy"]) == 1
    assert "bertbot encoder import" in capsys.readouterr().err
    assert main(["classify", "--task", "toy", "hi"]) == 1
    assert "bertbot db upgrade" in capsys.readouterr().err
    assert main(["db", "upgrade"]) == 0
    assert main(["classify", "--task", "toy", "hi"]) == 1
    assert "no production model" in capsys.readouterr().err
    assert main(["classify", "--task", "nope", "hi"]) == 1
    assert "unknown task" in capsys.readouterr().err


def test_tune_picks_the_best_trial_by_validation_macro_f1(
    home: Path, tmp_path: Path, tiny_hf_checkpoint: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert (
        main(["encoder", "import", "--from", str(tiny_hf_checkpoint), "--max-seq-length", "32"])
        == 0
    )
    data = _write_csv(tmp_path / "toy.csv", [(e.text, e.label) for e in toy_examples(200)])
    best = tmp_path / "best.json"
    code = main(
        [
            "tune",
            "--task",
            "toy",
            "--data",
            str(data),
            "--trials",
            "2",
            "--learning-rates",
            "1e-6",
            "3e-3",
            "--epochs-grid",
            "2",
            "--dropouts",
            "0.1",
            "--batch-size",
            "16",
            "--write-config",
            str(best),
        ]
    )
    out = capsys.readouterr().out
    assert code == 0, out
    rows = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert len(rows) == 2 and float(rows[0][0]) >= float(rows[1][0])  # best first
    chosen = json.loads(best.read_text())
    assert chosen["learning_rate"] == 3e-3  # a learning rate of 1e-6 learns nothing in 2 epochs
    assert not list((home / "models").glob("*")) if (home / "models").exists() else True
