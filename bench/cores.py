"""Every core when alone: training and retrain wall time with all cores against one thread.

    python bench/cores.py [--labels 1000] [--corrections 50]

In a fresh home with its own SQLite store, ``--labels`` CrowdFlower sentiment labels are
stored as seed labels; then each of these runs as its own process, first with
``--threads 1`` (what a retrain inside ``bertbot serve`` gets by default) and then with no
flag (the command-line default: every core):

- ``bertbot train``: one epoch over the labels (``--limit`` of them, a fixed amount of work);
- ``bertbot retrain --force``: the first model (one epoch);
- ``bertbot retrain --force`` after ``--corrections`` moderator corrections: a warm retrain.

Writes bench/results/cores.json: seconds and speed-up of each, with the CPU named.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import sys
from typing import Any

from common import home, save
from retrain_scale import _run, _write_csv


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=1000, help="seed labels")
    parser.add_argument("--corrections", type=int, default=50)
    args = parser.parse_args()

    source = home() / "data" / "sentiment.csv"
    if not source.exists():
        raise SystemExit(f"{source} is missing: run `bertbot data fetch` first")
    rows = list(csv.DictReader(source.open(encoding="utf-8")))
    random.Random(1).shuffle(rows)
    cores = os.cpu_count() or 1
    results: dict[str, Any] = {"cores": cores, "labels": args.labels, "runs": {}}
    for label, flag in (("one thread", ["--threads", "1"]), ("all cores", [])):
        run_home = home() / "bench-cores" / ("one" if flag else "all")
        shutil.rmtree(run_home, ignore_errors=True)
        run_home.mkdir(parents=True)
        (run_home / "encoders").symlink_to(home() / "encoders")
        _write_csv(run_home / "seed.csv", rows[: args.labels])
        _write_csv(run_home / "corrections.csv", rows[args.labels : args.labels + args.corrections])
        env = {k: v for k, v in os.environ.items() if not k.startswith(("BERTBOT_", "SLACK_"))}
        env.update(
            {
                "BERTBOT_HOME": str(run_home),
                "BERTBOT_TASKS": "sentiment",
                "BERTBOT_RETRAIN__MAX_MINUTES": "90",
                "BERTBOT_GATE__MIN_EVAL": "50",
            }
        )
        print(f"\n== {label}", flush=True)
        _run(["db", "upgrade"], env)
        _run(["data", "import", str(run_home / "seed.csv"), "--task", "sentiment"], env)
        train_s, _, _ = _run(
            [
                "train",
                "--task",
                "sentiment",
                "--data",
                str(run_home / "seed.csv"),
                "--epochs",
                "1",
                "--out",
                str(run_home / "trained"),
                "--no-register",
                *flag,
            ],
            env,
        )
        print(f"  bertbot train: {train_s:.0f} s", flush=True)
        cold_env = env | {
            "BERTBOT_RETRAIN__TRAIN_OVERRIDES": json.dumps({"epochs": 1.0, "patience": 1000})
        }
        first_s, _, _ = _run(["retrain", "--task", "sentiment", "--force", *flag], cold_env)
        print(f"  first model (retrain): {first_s:.0f} s", flush=True)
        _run(
            ["data", "import", str(run_home / "corrections.csv"), "--task", "sentiment"]
            + ["--as-corrections", "--annotator", "U0BENCHMOD"],
            env,
        )
        warm_s, _, _ = _run(["retrain", "--task", "sentiment", "--force", *flag], env)
        print(f"  warm retrain: {warm_s:.0f} s", flush=True)
        results["runs"][label] = {
            "train_seconds": round(train_s, 1),
            "first_retrain_seconds": round(first_s, 1),
            "warm_retrain_seconds": round(warm_s, 1),
        }
        shutil.rmtree(run_home, ignore_errors=True)
    one, every = results["runs"]["one thread"], results["runs"]["all cores"]
    results["speedup"] = {key: round(one[key] / every[key], 2) for key in one}
    print(f"\nall cores vs one thread: {results['speedup']}", flush=True)
    path = save("cores", results)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
