"""Run every benchmark in order, record how each step went, then rewrite bench/RESULTS.md.

    python bench/run.py [--list]

`make bench` calls this after building both virtualenvs. A failed preparation step (data
fetch, encoder import, set-up) stops the run: the benchmarks after it could not run. A failed
benchmark (a crash, or a verdict it checks, such as the learning loop's) does not stop the
others: every figure still gets measured, the failure is recorded in bench/results/run.json
and shown at the top of RESULTS.md, and the run exits 1. run.json is rewritten after each
step, so an interrupted run still says how far it got.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from common import RESULTS_DIR, ROOT, git_revision, machine

RUN_FILE = "run.json"
RELIABILITY_REPORT = "bench/results/reliability.jsonl"


@dataclass(frozen=True)
class Step:
    name: str
    argv: tuple[str, ...]
    prepares: bool = False  # later steps need it: a failure stops the run
    env: dict[str, str] = field(default_factory=dict)
    remove_first: tuple[str, ...] = ()  # files the step rewrites from scratch

    def command(self) -> str:
        shown = [_shown(a) for a in self.argv]
        return " ".join([*(f"{k}={v}" for k, v in self.env.items()), *shown])


def _shown(arg: str) -> str:
    """The command as a user would type it from the repository root with the venv active."""
    path = Path(arg)
    if path.is_absolute() and path.parent == Path(sys.executable).parent:
        return path.name
    return arg


def default_steps() -> list[Step]:
    python = sys.executable
    bertbot = str(Path(sys.executable).parent / "bertbot")
    return [
        Step("data fetch", (bertbot, "data", "fetch"), prepares=True),
        Step("encoder import", (bertbot, "encoder", "import"), prepares=True),
        Step(
            "quality: spam",
            (python, "bench/quality.py", "--task", "spam", "--max-minutes", "15")
            + ("--epochs", "4", "--learning-rate", "8e-5"),
        ),
        Step(
            "quality: sentiment",
            (python, "bench/quality.py", "--task", "sentiment", "--max-minutes", "30")
            + ("--epochs", "3", "--learning-rate", "6e-5"),
        ),
        # Re-measures the serving precision on the quiet machine and records it (as
        # `bertbot encoder tune-precision`), then measures the quality bench's models.
        Step("inference", (python, "bench/inference.py", "--retune")),
        # Explains the quality bench's models (re-exported with explanations if they predate them).
        Step("explanations", (python, "bench/explain.py")),
        Step("training speed", (python, "bench/train_speed.py")),
        Step("calibration", (python, "bench/calibration.py")),
        Step(
            "learning loop",
            (python, "bench/loop.py", "--first-minutes", "9", "--retrain-minutes", "6"),
        ),
        Step("drift watch", (python, "bench/drift.py", "--train-minutes", "8")),
        # Both build (once) and share a production trained without the airline tweets.
        Step("active learning", (python, "bench/active_learning.py")),
        Step("a rogue moderator", (python, "bench/poisoning.py")),
        Step("set-up", (bertbot, "setup"), prepares=True),
        Step("Slack over HTTP", (python, "bench/slack_http.py")),
        Step("events inbox", (python, "bench/inbox.py")),
        Step("throughput", (python, "bench/throughput.py")),
        Step("every core", (python, "bench/cores.py")),
        Step("retrain cost", (python, "bench/retrain_scale.py")),
        Step(
            "reliability suite",
            (python, "-m", "pytest", "-q", "tests/reliability"),
            env={"BERTBOT_RELIABILITY_REPORT": RELIABILITY_REPORT},
            remove_first=(RELIABILITY_REPORT,),
        ),
    ]


Runner = Callable[[Step], int]


def run_step(step: Step) -> int:
    for name in step.remove_first:
        (ROOT / name).unlink(missing_ok=True)
    env = os.environ | step.env
    return subprocess.run(step.argv, cwd=ROOT, env=env, check=False).returncode


def run_all(
    steps: Sequence[Step],
    *,
    runner: Runner = run_step,
    results_dir: Path = RESULTS_DIR,
    clock: Callable[[], float] = time.monotonic,
) -> dict[str, Any]:
    """Run the steps in order and keep results_dir/run.json up to date; returns its content."""
    record: dict[str, Any] = {
        "machine": machine(),
        "revision": git_revision(),
        "postgres": bool(os.environ.get("BERTBOT_TEST_POSTGRES_URL")),
        "steps": [],
        "finished": False,
    }
    started = clock()
    stopped_by = None
    for step in steps:
        entry: dict[str, Any] = {"name": step.name, "command": step.command()}
        if stopped_by is not None:
            entry |= {"status": "not run", "why": f"{stopped_by} failed"}
            record["steps"].append(entry)
            continue
        print(f"\n== bench: {step.name}: {entry['command']}", flush=True)
        t0 = clock()
        code = runner(step)
        entry |= {"seconds": round(clock() - t0, 1), "exit": code}
        entry["status"] = "ok" if code == 0 else "failed"
        record["steps"].append(entry)
        record["seconds"] = round(clock() - started, 1)
        _write(results_dir, record)
        print(f"== bench: {step.name}: {entry['status']} in {entry['seconds'] / 60:.1f} min")
        if code != 0 and step.prepares:
            stopped_by = step.name
    record["seconds"] = round(clock() - started, 1)
    record["finished"] = True
    record["ended"] = machine()["date"]
    record["failed"] = [s["name"] for s in record["steps"] if s["status"] != "ok"]
    _write(results_dir, record)
    return record


def _write(results_dir: Path, record: dict[str, Any]) -> None:
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / RUN_FILE).write_text(json.dumps(record, indent=2) + "\n")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description="Run every benchmark (about 1.5-2 h on 2 cores), record each step in "
        "bench/results/run.json and rewrite bench/RESULTS.md. Exits 1 if any step failed.",
    )
    parser.add_argument("--list", action="store_true", help="print the steps and exit")
    args = parser.parse_args(argv)
    steps = default_steps()
    if args.list:
        for step in steps:
            print(f"{step.name}: {step.command()}" + (" (prepares)" if step.prepares else ""))
        return 0
    if not os.environ.get("BERTBOT_TEST_POSTGRES_URL"):
        print(
            "bench: BERTBOT_TEST_POSTGRES_URL is not set, so the reliability suite's PostgreSQL "
            "tests will be skipped (`source .ci/postgres.sh` sets it; `make bench` does)",
            file=sys.stderr,
        )
    record = run_all(steps)
    report = subprocess.run([sys.executable, "bench/report.py"], cwd=ROOT, check=False)
    failed = record["failed"]
    total = record["seconds"] / 60
    if failed:
        print(f"\nbench: {len(failed)} step(s) failed in {total:.0f} min: {', '.join(failed)}")
        return 1
    print(f"\nbench: every step passed in {total:.0f} min")
    return report.returncode


if __name__ == "__main__":
    sys.exit(main())
