"""How a retrain's cost grows with the labelled data: 1k, 5k and 20k sentiment labels.

    python bench/retrain_scale.py [--sizes 1000,5000,20000] [--threads 2]

For each size, in a fresh home with its own SQLite store, ``bertbot data import`` stores that
many CrowdFlower sentiment labels as seed labels, then two retrains run as separate
``bertbot retrain`` processes (peak memory read from the kernel when each exits):

1. the first model: one epoch over the training split (cost grows with the data);
2. a warm retrain after 50 moderator corrections, with the product's defaults: start from
   production, replay at most ``replay_examples`` (6,000) seed labels next to the
   oversampled corrections, two epochs (cost is capped by the replay size).

Both models are scored on the whole eval split, which grows with the data. Writes
bench/results/retrain-scale.json.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import subprocess
import sys
import time
from pathlib import Path

from common import ROOT, home, save


def _write_csv(path: Path, rows: list[dict[str, str]]) -> None:
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.DictWriter(handle, fieldnames=["text", "label"])
        writer.writeheader()
        writer.writerows({"text": r["text"], "label": r["label"]} for r in rows)


def _run(args: list[str], env: dict[str, str]) -> tuple[float, float, str]:
    """Run a bertbot command; return (seconds, peak RSS MB of the process, output tail)."""
    started = time.monotonic()
    process = subprocess.Popen(
        [str(ROOT / ".venv" / "bin" / "bertbot"), *args],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line)
        if "validation macro-F1" in line or line.startswith(("training", "scoring", "run ")):
            print("    " + line.rstrip(), flush=True)
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    seconds = time.monotonic() - started
    tail = "".join(lines[-5:])
    if process.returncode != 0:
        raise SystemExit(f"bertbot {' '.join(args)} failed ({process.returncode}):\n{tail}")
    return seconds, usage.ru_maxrss / 1024.0, tail


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="1000,5000,20000")
    parser.add_argument("--threads", type=int, default=2, help="TensorFlow threads per retrain")
    parser.add_argument("--corrections", type=int, default=50)
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    source = home() / "data" / "sentiment.csv"
    if not source.exists():
        raise SystemExit(f"{source} is missing: run `bertbot data fetch` first")
    rows = list(csv.DictReader(source.open(encoding="utf-8")))
    random.Random(0).shuffle(rows)
    encoders = home() / "encoders"
    base = home() / "bench-scale"
    results = []
    for size in sizes:
        if size + args.corrections > len(rows):
            raise SystemExit(f"only {len(rows)} labelled tweets; {size} asked")
        run_home = base / str(size)
        shutil.rmtree(run_home, ignore_errors=True)
        run_home.mkdir(parents=True)
        (run_home / "encoders").symlink_to(encoders)
        _write_csv(run_home / "seed.csv", rows[:size])
        _write_csv(run_home / "corrections.csv", rows[size : size + args.corrections])
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BERTBOT_", "SLACK_"))}
        env.update(
            {
                "BERTBOT_HOME": str(run_home),
                "BERTBOT_TASKS": "sentiment",
                "BERTBOT_RETRAIN__THREADS": str(args.threads),
                "BERTBOT_RETRAIN__MAX_MINUTES": "90",
                "BERTBOT_GATE__MIN_EVAL": "50",
                "TF_CPP_MIN_LOG_LEVEL": "2",
            }
        )
        print(f"\n== {size} labelled tweets", flush=True)
        _run(["db", "upgrade"], env)
        _run(["data", "import", str(run_home / "seed.csv"), "--task", "sentiment"], env)
        cold_env = env | {
            "BERTBOT_RETRAIN__TRAIN_OVERRIDES": json.dumps({"epochs": 1.0, "patience": 1000})
        }
        cold_s, cold_rss, cold_tail = _run(["retrain", "--task", "sentiment", "--force"], cold_env)
        print(f"  first model: {cold_s:.0f} s, peak RSS {cold_rss:.0f} MB", flush=True)
        _run(
            [
                "data",
                "import",
                str(run_home / "corrections.csv"),
                "--task",
                "sentiment",
                "--as-corrections",
                "--annotator",
                "U0BENCHMOD",
            ],
            env,
        )
        warm_s, warm_rss, warm_tail = _run(["retrain", "--task", "sentiment", "--force"], env)
        print(f"  warm retrain: {warm_s:.0f} s, peak RSS {warm_rss:.0f} MB", flush=True)
        runs = json.loads(
            subprocess.run(
                [str(ROOT / ".venv" / "bin" / "bertbot"), "models", "list", "--task", "sentiment"]
                + ["--json"],
                env=env,
                capture_output=True,
                text=True,
                check=True,
            ).stdout
        )
        results.append(
            {
                "labelled": size,
                "first_model": {
                    "seconds": round(cold_s, 1),
                    "peak_rss_mb": round(cold_rss),
                    "outcome": cold_tail.strip().splitlines()[-1],
                },
                "warm_retrain": {
                    "seconds": round(warm_s, 1),
                    "peak_rss_mb": round(warm_rss),
                    "outcome": warm_tail.strip().splitlines()[-1],
                },
                "versions": runs,
            }
        )
        shutil.rmtree(run_home / "models", ignore_errors=True)
    first = results[0]
    for row in results:
        row["first_model"]["cost_vs_smallest"] = round(
            row["first_model"]["seconds"] / first["first_model"]["seconds"], 2
        )
        row["warm_retrain"]["cost_vs_smallest"] = round(
            row["warm_retrain"]["seconds"] / first["warm_retrain"]["seconds"], 2
        )
    path = save("retrain-scale", {"threads": args.threads, "sizes": results})
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
