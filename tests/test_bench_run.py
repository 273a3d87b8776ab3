"""bench/run.py (what `make bench` runs): every step runs, failures are recorded, not hidden."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


def _load(name: str, monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    monkeypatch.syspath_prepend(str(BENCH))
    spec = importlib.util.spec_from_file_location(f"bench_{name}_under_test", BENCH / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # dataclasses look their module up in sys.modules while the class is being made
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


@pytest.fixture
def bench_run(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return _load("run", monkeypatch)


def _steps(module: ModuleType) -> list:
    Step = module.Step
    return [
        Step("fetch", ("fetch",), prepares=True),
        Step("quality", ("quality",)),
        Step("loop", ("loop",)),
        Step("set-up", ("setup",), prepares=True),
        Step("http", ("http",)),
    ]


def _fake_runner(codes: dict[str, int], results_dir: Path, seen: list[tuple[str, list[str]]]):
    def runner(step) -> int:
        run_file = results_dir / "run.json"
        before = json.loads(run_file.read_text()) if run_file.exists() else {"steps": []}
        seen.append((step.name, [s["name"] for s in before["steps"]]))
        return codes.get(step.name, 0)

    return runner


def test_a_failed_benchmark_does_not_stop_the_others(bench_run: ModuleType, tmp_path: Path) -> None:
    seen: list[tuple[str, list[str]]] = []
    ticks = iter(range(0, 1000, 30))
    record = bench_run.run_all(
        _steps(bench_run),
        runner=_fake_runner({"loop": 1}, tmp_path, seen),
        results_dir=tmp_path,
        clock=lambda: float(next(ticks)),
    )
    # every step ran, in order, and run.json was rewritten after each one
    assert seen == [
        ("fetch", []),
        ("quality", ["fetch"]),
        ("loop", ["fetch", "quality"]),
        ("set-up", ["fetch", "quality", "loop"]),
        ("http", ["fetch", "quality", "loop", "set-up"]),
    ]
    assert [s["status"] for s in record["steps"]] == ["ok", "ok", "failed", "ok", "ok"]
    assert record["steps"][2]["exit"] == 1
    assert record["failed"] == ["loop"]
    assert record["finished"] is True
    assert all(s["seconds"] == 30.0 for s in record["steps"])
    assert json.loads((tmp_path / "run.json").read_text()) == record


def test_a_failed_preparation_stops_the_steps_after_it(
    bench_run: ModuleType, tmp_path: Path
) -> None:
    seen: list[tuple[str, list[str]]] = []
    record = bench_run.run_all(
        _steps(bench_run), runner=_fake_runner({"set-up": 2}, tmp_path, seen), results_dir=tmp_path
    )
    assert [name for name, _ in seen] == ["fetch", "quality", "loop", "set-up"]
    assert record["steps"][-1] == {
        "name": "http",
        "command": "http",
        "status": "not run",
        "why": "set-up failed",
    }
    assert record["failed"] == ["set-up", "http"]


def test_all_passing_steps_leave_nothing_failed(bench_run: ModuleType, tmp_path: Path) -> None:
    record = bench_run.run_all(
        _steps(bench_run), runner=_fake_runner({}, tmp_path, []), results_dir=tmp_path
    )
    assert record["failed"] == []


def test_the_real_step_list_covers_every_benchmark(
    bench_run: ModuleType, capsys: pytest.CaptureFixture[str]
) -> None:
    assert bench_run.main(["--list"]) == 0
    out = capsys.readouterr().out
    for script in (
        "bench/quality.py --task spam",
        "bench/quality.py --task sentiment",
        "bench/inference.py",
        "bench/explain.py",
        "bench/train_speed.py",
        "bench/loop.py",
        "bench/drift.py --train-minutes 8",
        "bench/slack_http.py",
        "bench/inbox.py",
        "bench/retrain_scale.py",
        "BERTBOT_RELIABILITY_REPORT=bench/results/reliability.jsonl",
    ):
        assert script in out
    # the commands read as typed with the venv active, not with this machine's paths
    assert "data fetch: bertbot data fetch (prepares)" in out
    assert "/" not in out.split("\n")[0].split(": ", 1)[1]


def test_report_shows_the_run_and_its_failures(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    report = _load("report", monkeypatch)
    monkeypatch.setattr(report, "RESULTS_DIR", tmp_path)
    run = {
        "machine": {
            "cpu": "Test CPU",
            "cores": 2,
            "python": "3.11.0",
            "date": "2026-11-27 02:51 UTC",
        },
        "ended": "2026-11-27 04:40 UTC",
        "revision": "abc1234",
        "postgres": True,
        "seconds": 6000.0,
        "finished": True,
        "steps": [
            {
                "name": "quality",
                "command": "python q.py",
                "seconds": 600.0,
                "exit": 0,
                "status": "ok",
            },
            {
                "name": "loop",
                "command": "python l.py",
                "seconds": 1320.0,
                "exit": 1,
                "status": "failed",
            },
        ],
    }
    (tmp_path / "run.json").write_text(json.dumps(run))
    (tmp_path / "loop.json").write_text(json.dumps({"machine": {"date": "2026-11-27 04:01 UTC"}}))
    (tmp_path / "make-run.json").write_text(
        json.dumps({"machine": {"date": "2026-11-20 10:00 UTC"}})
    )
    (tmp_path / "run-notes.md").write_text(
        "<!-- for the run of 2026-11-27 02:51 UTC -->\nWhy it failed."
    )
    lines: list[str] = []
    report._run(lines)
    text = "\n".join(lines)
    assert "ran 100 min: **1 step(s) did not pass: loop**" in text
    assert "| loop | `python l.py` | 22.0 | failed (exit 1) |" in text
    assert "| quality | `python q.py` | 10.0 | ok |" in text
    assert "`make-run.json` (2026-11-20 10:00 UTC)" in text
    assert "loop.json" not in text
    assert "Why it failed." in text
