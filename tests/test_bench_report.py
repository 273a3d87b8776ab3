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
