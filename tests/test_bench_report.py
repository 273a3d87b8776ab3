"""bench/report.py shows a section's hand-written reading only with the run it was written for."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture
def report(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location("bench_report_under_test", BENCH / "report.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "RESULTS_DIR", tmp_path)
    return module


def test_notes_for_matching_run_are_shown_without_the_stamp(report: ModuleType) -> None:
    text = "<!-- for the run of 2026-11-26 23:50 UTC -->\nReading: p99 40 ms.\n"
    assert report.notes_for(text, "2026-11-26 23:50 UTC") == "Reading: p99 40 ms."


def test_notes_for_another_run_are_left_out(report: ModuleType) -> None:
    text = "<!-- for the run of 2026-11-26 18:34 UTC -->\nReading: p99 40 ms.\n"
    assert report.notes_for(text, "2026-11-27 01:10 UTC") is None
    # unstamped notes beside a result file cannot say which run they read: left out too
    assert report.notes_for("Reading: p99 40 ms.", "2026-11-27 01:10 UTC") is None
    # notes not tied to a result file (the run notes) are shown either way
    assert report.notes_for("How these figures were made.", None) == "How these figures were made."


def test_section_prints_a_marker_instead_of_stale_notes(report: ModuleType) -> None:
    (report.RESULTS_DIR / "slack-http-notes.md").write_text(
        "<!-- for the run of 2026-11-26 18:34 UTC -->\nReading: old figures.\n"
    )
    lines: list[str] = []
    report._notes(lines, "slack-http", {"machine": {"date": "2026-11-27 01:10 UTC"}})
    text = "\n".join(lines)
    assert "old figures" not in text
    assert "written for an earlier run" in text
    lines = []
    report._notes(lines, "slack-http", {"machine": {"date": "2026-11-26 18:34 UTC"}})
    assert lines[0] == "Reading: old figures."


def test_report_writes_results_md_from_what_exists(
    report: ModuleType, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    root = tmp_path / "root"
    (root / "bench").mkdir(parents=True)
    monkeypatch.setattr(report, "ROOT", root)
    machine = {"cpu": "Test CPU", "cores": 2, "python": "3.11.0", "date": "2026-11-27 00:00 UTC"}
    (report.RESULTS_DIR / "retrain-scale.json").write_text(
        json.dumps(
            {
                "command": "bench/retrain_scale.py",
                "machine": machine,
                "threads": 2,
                "sizes": [
                    {
                        "labelled": 1000,
                        "first_model": {
                            "seconds": 60,
                            "cost_vs_smallest": 1.0,
                            "peak_rss_mb": 2600,
                        },
                        "warm_retrain": {
                            "seconds": 90,
                            "cost_vs_smallest": 1.0,
                            "peak_rss_mb": 2700,
                        },
                    }
                ],
            }
        )
    )
    (report.RESULTS_DIR / "retrain-scale-notes.md").write_text(
        "<!-- for the run of 2026-11-27 00:00 UTC -->\nReading: fixed costs dominate.\n"
    )
    assert report.main() == 0
    written = (root / "bench" / "RESULTS.md").read_text()
    assert "| 1000 | 1.0 min | 1.0x | 2600 MB | 1.5 min | 1.0x | 2700 MB |" in written
    assert "Reading: fixed costs dominate." in written
    assert "<!--" not in written


def test_inference_section_shows_the_precision_the_peer_and_int8(report: ModuleType) -> None:
    machine = {"cpu": "Test CPU", "cores": 2, "python": "3.11.0", "date": "2026-12-04 02:03 UTC"}
    figures = {"batched_per_s": 100.0, "p50_ms": 10.0, "p95_ms": 12.0, "p99_ms": 14.0}
    candidate = {
        "single_p50_ms": 10.0,
        "batch32_per_s": 100.0,
        "max_abs_diff": 0.0,
        "argmax_agreement": 1.0,
        "warmup_s": 1.0,
        "error": None,
    }
    choice = {
        "choice": "bfloat16",
        "weights": "bfloat16",
        "reason": "bfloat16: the fastest candidate that agrees with float32",
        "candidates": [
            {"name": "float32", **candidate},
            {**candidate, "name": "bfloat16", "batch32_per_s": 150.0, "max_abs_diff": 0.006},
        ],
        "threads": 2,
        "cpu": "Test CPU",
        "cpu_bfloat16": True,
        "texts": 64,
        "measured_at": "2026-12-04 02:03 UTC",
    }
    xla = {**candidate, "name": "float32+xla", "single_p50_ms": 8.0, "jit": True}
    row = {
        "texts": 500,
        "dynamic (bertbot)": {**figures, "batched_per_s": 150.0, "macro_f1": 0.97},
        "dynamic float32": {**figures, "macro_f1": 0.97},
        "fixed 128 (tutorial)": {**figures, "batched_per_s": 50.0, "macro_f1": 0.97},
        "pytorch float32": figures,
        "pytorch bfloat16": {**figures, "batched_per_s": 120.0},
        "tflite int8": {**figures, "batched_per_s": 300.0, "macro_f1": 0.968},
        "tfidf_logreg (floor)": figures,
        "speedup_batched": 3.0,
        "speedup_single_p50": 1.0,
        "vs_pytorch_best": {"batched": 1.25, "single_p50": 1.0},
        "pytorch": {"torch": "2.13.0", "transformers": "5.24.0", "threads": 2, "head": "random"},
    }
    (report.RESULTS_DIR / "inference.json").write_text(
        json.dumps(
            {
                "command": "bench/inference.py --models production --retune",
                "machine": machine,
                "models": {"spam": "production v1"},
                "batch": 64,
                "threads": 2,
                "serving_precision": "bfloat16",
                "precision": {
                    "recorded": choice,
                    "this_run": {**choice, "xla": [xla]},
                    "with_xla_choice": "bfloat16",
                    "shipped": "bfloat16",
                },
                "load_seconds": {"spam": 2.0},
                "rss_mb": {"start": 30, "tensorflow_imported": 800, "both_models_loaded": 1300},
                "tasks": {"spam": row},
                "int8_verdict": {
                    "summary": "spam: macro-F1 -0.0020 vs float32",
                    "within_f1_limit": True,
                    "faster_batched": True,
                    "max_f1_drop": 0.005,
                },
            }
        )
    )
    lines: list[str] = []
    report._inference(lines)
    text = "\n".join(lines)

    assert "**Serving precision on this CPU: bfloat16**" in text
    assert "| float32+xla | 8.0 | 100.0 | 1.12x (single 1.25x, batch 1.00x)" in text
    assert "| spam (500) | bertbot as shipped (bfloat16) | 150.0 |" in text
    assert "PyTorch 2.13.0 + transformers 5.24.0" in text
    assert "| spam | **bertbot as shipped vs PyTorch's best** | **1.25x** |" in text
    assert "**passes the usability bar**" in text


def test_drift_section_shows_the_counts_and_the_f1_estimate(report: ModuleType) -> None:
    machine = {"cpu": "Test CPU", "cores": 2, "python": "3.11.0", "date": "2026-12-04 09:00 UTC"}
    trial = {"p_value": 0.002, "drifted": True}
    (report.RESULTS_DIR / "drift.json").write_text(
        json.dumps(
            {
                "command": "bench/drift.py --train-minutes 8",
                "machine": machine,
                "model": {
                    "seed_labels": 22777,
                    "train_minutes_budget": 8.0,
                    "temperature": 1.31,
                    "eval_split": 4581,
                },
                "sample_size": 300,
                "samples": 20,
                "permutations": 1000,
                "alpha": 0.01,
                "reference_pool": 3000,
                "airline_pool": 6000,
                "airline": {"drifted": 20, "trials": [trial], "max_p_value": 0.002},
                "fresh_reference": {"drifted": 1, "trials": [trial], "min_p_value": 0.004},
                "expected_f1": {
                    "airline_expected_macro_f1": 0.61,
                    "airline_expected_macro_f1_uncorrected": 0.64,
                    "per_sample_mean_abs_difference_uncorrected": 0.07,
                    "airline_true_macro_f1": 0.58,
                    "per_sample_mean_abs_difference": 0.04,
                    "reference_expected_macro_f1": 0.7,
                    "reference_true_macro_f1": 0.71,
                },
                "product_check": {
                    "imported": 300,
                    "import_seconds": 9.0,
                    "command_seconds": 20.0,
                    "p_value": 0.002,
                    "drifted": True,
                    "expected_macro_f1": 0.6,
                    "n_recent": 300,
                    "n_reference": 300,
                    "seconds": 8.5,
                },
            }
        )
    )
    lines: list[str] = []
    report._drift(lines)
    text = "\n".join(lines)
    assert "| reference vs 20 samples of airline tweets | **20 of 20** | 20 of 20 |" in text
    assert "| reference vs 20 fresh reference samples | **1 of 20** | at most 1 of 20 |" in text
    assert "| airline pool (6000) | 0.6400 | 0.6100 | 0.5800 | **+0.0300** (target within 0.05" in (
        text
    )
    assert "uncorrected 0.0700" in text
    assert "p 0.002, drifted True" in text


def test_explain_section_shows_faithfulness_and_latency(report: ModuleType) -> None:
    machine = {"cpu": "Test CPU", "cores": 2, "python": "3.11.0", "date": "2026-12-04 08:10 UTC"}
    row = {
        "messages": 200,
        "faithfulness": {
            "scored": 198,
            "mean_drop_top3": 0.2412,
            "mean_drop_random3": 0.0311,
            "ratio": 7.76,
            "top3_beats_random_share": 0.81,
        },
        "latency_ms": {"p50": 182.4, "p95": 311.0, "max": 420.0},
        "completeness_gap": {
            "median": 0.0123,
            "p95": 0.08,
            "relative_median": 0.0012,
            "relative_p95": 0.01,
        },
        "latency_other_steps": [{"steps": 8, "p50": 101.0, "p95": 150.2}],
        "reexported": True,
        "encoder_reimported": True,
    }
    (report.RESULTS_DIR / "explain.json").write_text(
        json.dumps(
            {
                "command": "bench/explain.py",
                "machine": machine,
                "steps": 16,
                "top_words": 5,
                "neighbours": 3,
                "tasks": {
                    "spam": row,
                    "sentiment": row | {"reexported": False, "encoder_reimported": False},
                },
            }
        )
    )
    lines: list[str] = []
    report._explain(lines)
    text = "\n".join(lines)
    assert "2026-12-04 08:10 UTC, Test CPU x2" in text and "16 steps" in text
    assert (
        "| spam | 198 | 0.2412 | 0.0311 | **7.76x** | 81% | 182 ms | **311 ms** | "
        "8: 101 / 150 ms | 0.0123 (0.12%) | re-exported at bench time on a re-imported encoder |"
    ) in text
    assert "| sentiment | 198 |" in text and "| as trained |" in text
