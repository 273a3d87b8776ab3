"""Drift watch on real data: does a new topic drift, does the same topic not, and how close is
the label-free macro-F1 estimate?

    python bench/drift.py [--train-minutes 8] [--samples 20] [--sample-size 300] [--quick]

1. A sentiment model is trained on the CrowdFlower topics other than the airline job (seed
   labels in the bench's own home, $BERTBOT_HOME/bench-drift; `bertbot setup`'s production
   model has seen airline tweets, so it cannot be the model here). Budget: --train-minutes
   (default 8) of fine-tuning, as the product's first model (calibrated, with embeddings).
   An existing model there is reused unless --retrain.
2. Its eval split (non-airline tweets on the eval side, never trained on) is the reference,
   as in the product. Every text of a reference pool (at most --pool) and of an airline pool
   (at most --airline-pool; no airline tweet was trained on) goes through the model once:
   calibrated probabilities and pooled embeddings.
3. Drift: --samples times, a reference sample and a sample of airline tweets (--sample-size
   each), compared by trainer.drift.compare (MMD + label chi-square, permutation p-values,
   Bonferroni) at BERTBOT_DRIFT__P_VALUE's default 0.01: how many drifted (target: all).
4. No drift: --samples times, a reference sample and a fresh, disjoint sample of other
   reference-pool tweets: how many drifted (target: at most 1 in 20).
5. Expected macro-F1 (from calibrated confidences, no labels) against the true macro-F1, on
   all airline tweets of the pool and per sample (target: within 0.05).
6. The product path once: `bertbot messages import` of --sample-size airline tweets into the
   bench's database, then `bertbot drift --task sentiment --json` (its time included).

Writes bench/results/drift.json (--quick: drift-quick.json, a smoke run with a two-minute
model on 2,000 seed labels and small samples; its figures mean little).
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from common import ROOT, home, peak_rss_mb, save

from bertbot.settings import load_settings


def _rows(path: Path) -> list[dict[str, str]]:
    if not path.exists():
        raise SystemExit(f"{path} is missing: run `bertbot data fetch` first")
    return list(csv.DictReader(path.open(encoding="utf-8")))


def _say(message: str) -> None:
    print(message, flush=True)


def _model(bench_home: Path, rows: list[dict[str, str]], minutes: float, retrain: bool) -> Any:
    """The non-airline model: trained with the product's retrain (first model) or reused."""
    from storage import annotations, registry, schema
    from storage.annotations import NewAnnotation
    from storage.db import Database
    from storage.enums import AnnotationSource, RunStatus, RunTrigger
    from trainer.gate import GateConfig
    from trainer.retrain import RetrainOptions
    from trainer.retrain import retrain as run_retrain
    from trainer.tasks import BUILTIN_TASKS

    settings = load_settings()
    database_path = bench_home / "bertbot.db"
    if retrain and bench_home.exists():
        import shutil

        shutil.rmtree(bench_home)
    bench_home.mkdir(parents=True, exist_ok=True)
    database = Database.connect(f"sqlite:///{database_path}")
    schema.upgrade(database)
    with database.begin() as session:
        production = registry.get_alias(session=session, task="sentiment")
    if production is not None:
        _say(f"reusing the non-airline model v{production.version} in {bench_home}")
        return database, production, False
    with database.begin() as session:
        annotations.add_annotations(
            session=session,
            task="sentiment",
            items=[NewAnnotation(r["text"], r["label"]) for r in rows],
            annotator="seed",
            source=AnnotationSource.SEED,
        )
    last = [0.0]

    def show(update: Any) -> None:
        if update.phase == "train" and time.monotonic() - last[0] < 60:
            return
        last[0] = time.monotonic()
        if update.phase == "train" and update.total_steps:
            _say(
                f"  step {update.step}/{update.total_steps} {(update.examples_per_s or 0):.1f} ex/s"
            )
        elif update.message:
            _say(f"  {update.message}")

    _say(f"training the non-airline model ({len(rows)} seed labels, {minutes:g} min budget)")
    outcome = run_retrain(
        database,
        BUILTIN_TASKS["sentiment"],
        RetrainOptions(
            home=bench_home,
            encoder_dir=settings.encoders_dir / settings.encoder,
            base_encoder=settings.encoder,
            gate=GateConfig(),
            max_minutes=minutes,
            lease_ttl=timedelta(minutes=5),
            train_overrides={"evaluations_per_epoch": 2, "patience": 3},
        ),
        trigger=RunTrigger.CLI,
        requested_by="bench",
        progress=show,
    )
    if outcome.status != RunStatus.SUCCEEDED or outcome.version is None:
        raise SystemExit(f"the non-airline model was not promoted: {outcome.message}")
    return database, outcome.version, True


def _read(model: Any, texts: list[str], name: str) -> tuple[Any, Any]:
    import numpy as np

    embeddings, probabilities = [], []
    started = last = time.monotonic()
    for start in range(0, len(texts), 256):
        chunk = texts[start : start + 256]
        embeddings.append(model.embed(chunk))
        probabilities.append(
            np.array([[p.probabilities[k] for k in model.labels] for p in model.predict(chunk)])
        )
        if time.monotonic() - last > 30:
            last = time.monotonic()
            rate = (start + len(chunk)) / (last - started)
            _say(f"  {name}: {start + len(chunk)}/{len(texts)} texts ({rate:.0f}/s)")
    return np.vstack(embeddings), np.vstack(probabilities)


def _cli(bench_home: Path, *argv: str) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BERTBOT_", "SLACK_"))}
    env |= {"BERTBOT_HOME": str(bench_home), "BERTBOT_TASKS": "sentiment"}
    done = subprocess.run(
        [sys.executable, "-m", "bertbot.cli", *argv],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(f"bertbot {' '.join(argv)} failed:\n{done.stderr[-3000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=" ".join(__doc__.split("\n\n")[0].split()))
    parser.add_argument("--train-minutes", type=float, default=8.0)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--sample-size", type=int, default=300)
    parser.add_argument("--pool", type=int, default=3000, help="reference texts read")
    parser.add_argument("--airline-pool", type=int, default=6000, help="airline tweets read")
    parser.add_argument("--permutations", type=int, default=1000)
    parser.add_argument("--alpha", type=float, default=0.01)
    parser.add_argument(
        "--seed-labels", type=int, help="seed the model with N random non-airline labels (all)"
    )
    parser.add_argument("--retrain", action="store_true", help="train the model again")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: 1-min model, small samples"
    )
    args = parser.parse_args()
    if args.quick:
        args.train_minutes, args.samples, args.sample_size = 2.0, 3, 100
        args.pool, args.airline_pool, args.permutations = 300, 400, 300
        args.seed_labels = args.seed_labels or 2000

    import numpy as np
    from sklearn.metrics import f1_score

    from storage import annotations
    from storage.texts import split_of
    from trainer.artifact import resolve_artifact
    from trainer.drift import compare, expected_f1
    from trainer.serving import SavedModelClassifier
    from trainer.tasks import BUILTIN_TASKS

    labels = BUILTIN_TASKS["sentiment"].labels
    started = time.monotonic()
    rows = _rows(home() / "data" / "sentiment.csv")
    others = [r for r in rows if r["topic"] != "airline"]
    airline = [r for r in rows if r["topic"] == "airline"]
    if args.seed_labels and args.seed_labels < len(others):
        others = random.Random(0).sample(others, args.seed_labels)
    bench_home = home() / ("bench-drift-quick" if args.quick else "bench-drift")
    if args.quick and not args.retrain:
        args.retrain = not (bench_home / "bertbot.db").exists()
    database, version, trained = _model(bench_home, others, args.train_minutes, args.retrain)
    train_seconds = time.monotonic() - started

    # The reference: the model's eval split, as the product defines it.
    with database.begin() as session:
        eval_split = annotations.eval_split(session=session, task="sentiment")
    rng = random.Random(0)
    pool = rng.sample(eval_split, min(args.pool, len(eval_split)))
    airline_pool = rng.sample(airline, min(args.airline_pool, len(airline)))
    need = 2 * args.sample_size
    if len(pool) < need or len(airline_pool) < args.sample_size:
        raise SystemExit("pools too small for the sample size")
    _say(
        f"reference: {len(eval_split)} eval-split tweets (pool {len(pool)}); airline pool "
        f"{len(airline_pool)} of {len(airline)} (eval side: "
        f"{sum(split_of(r['text']) == 'eval' for r in airline_pool)})"
    )
    model = SavedModelClassifier.load(
        resolve_artifact(bench_home, version.artifact_uri),
        task="sentiment",
        version=version.version,
        expected_sha256=version.sha256,
    )
    read_started = time.monotonic()
    ref_x, ref_p = _read(model, [e.text for e in pool], "reference")
    air_x, air_p = _read(model, [r["text"] for r in airline_pool], "airline")
    read_seconds = time.monotonic() - read_started
    texts_read = len(pool) + len(airline_pool)
    _say(f"read {texts_read} texts in {read_seconds:.0f} s ({texts_read / read_seconds:.0f}/s)")

    ref_truth = np.array([labels.index(e.label) for e in pool])

    def trial(x: Any, px: Any, truth: Any, y: Any, py: Any, seed: int) -> dict[str, Any]:
        t0 = time.monotonic()
        found = compare(
            x, y, px, py, reference_truth=truth, permutations=args.permutations, seed=seed
        )
        return {
            "p_value": found.p_value,
            "p_embeddings": found.mmd.p_value,
            "p_labels": found.labels.p_value,
            "drifted": found.drifted(args.alpha),
            "expected_macro_f1": round(found.expected_macro_f1, 4),
            "expected_macro_f1_raw": round(found.expected_macro_f1_raw, 4),
            "seconds": round(time.monotonic() - t0, 3),
        }

    n = args.sample_size
    drift_trials, null_trials, per_sample_f1 = [], [], []
    air_truth = np.array([labels.index(r["label"]) for r in airline_pool])
    for k in range(args.samples):
        pick = np.random.default_rng(1000 + k)
        ref = pick.choice(len(pool), n, replace=False)
        air = pick.choice(len(airline_pool), n, replace=False)
        row = trial(ref_x[ref], ref_p[ref], ref_truth[ref], air_x[air], air_p[air], seed=k)
        row["true_macro_f1"] = round(
            float(
                f1_score(air_truth[air], air_p[air].argmax(1), labels=[0, 1, 2], average="macro")
            ),
            4,
        )
        drift_trials.append(row)
        per_sample_f1.append(row["expected_macro_f1"] - row["true_macro_f1"])
        both = np.random.default_rng(2000 + k).choice(len(pool), 2 * n, replace=False)
        null_trials.append(
            trial(
                ref_x[both[:n]],
                ref_p[both[:n]],
                ref_truth[both[:n]],
                ref_x[both[n:]],
                ref_p[both[n:]],
                seed=k,
            )
        )
        _say(
            f"sample {k + 1}/{args.samples}: airline p {row['p_value']:.4f} "
            f"(drifted {row['drifted']}), fresh reference p {null_trials[-1]['p_value']:.4f} "
            f"(drifted {null_trials[-1]['drifted']}); expected macro-F1 "
            f"{row['expected_macro_f1']:.3f} vs true {row['true_macro_f1']:.3f}"
        )

    raw_all, per_class = expected_f1(air_p)
    true_all = float(f1_score(air_truth, air_p.argmax(1), labels=[0, 1, 2], average="macro"))
    expected_ref = expected_f1(ref_p)[0]
    true_ref = float(f1_score(ref_truth, ref_p.argmax(1), labels=[0, 1, 2], average="macro"))
    # As trainer.drift.compare does with reference labels: the estimate's error on the
    # labelled reference pool is taken off.
    expected_all = float(np.clip(raw_all - (expected_ref - true_ref), 0.0, 1.0))

    # The product path once: import airline tweets as messages, then `bertbot drift`.
    product_started = time.monotonic()
    sample_file = bench_home / "airline-sample.csv"
    with sample_file.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle)
        writer.writerow(["text", "label"])
        for r in random.Random(7).sample(airline, n):
            writer.writerow([r["text"], r["label"]])
    imported = _cli(bench_home, "messages", "import", str(sample_file), "--json")
    import_seconds = time.monotonic() - product_started
    check_started = time.monotonic()
    check = _cli(
        bench_home, "drift", "--task", "sentiment", "--json", "--sample", str(n), "--no-record"
    )
    check_seconds = time.monotonic() - check_started
    _say(
        f"bertbot drift on {check['n_recent']} imported airline tweets vs {check['n_reference']} "
        f"eval-split tweets: p {check['p_value']:.4g}, drifted {check['drifted']}, expected "
        f"macro-F1 {check['expected_macro_f1']:.3f} ({check['seconds']:.1f} s in the check, "
        f"{check_seconds:.1f} s with the command's start)"
    )
    # the next run imports again into a fresh window
    sample_file.unlink()

    drifted = sum(t["drifted"] for t in drift_trials)
    false_alarms = sum(t["drifted"] for t in null_trials)
    difference = expected_all - true_all
    verdict = {
        "airline_drifted": f"{drifted} of {args.samples}",
        "airline_all_drifted": drifted == args.samples,
        "fresh_reference_drifted": f"{false_alarms} of {args.samples}",
        "fresh_reference_at_most_1_in_20": false_alarms <= max(1, args.samples // 20),
        "expected_vs_true_macro_f1": round(difference, 4),
        "uncorrected_vs_true_macro_f1": round(raw_all - true_all, 4),
        "expected_f1_within_0_05": abs(difference) <= 0.05,
    }
    path = save(
        "drift-quick" if args.quick else "drift",
        {
            "model": {
                "version": version.version,
                "trained_now": trained,
                "train_minutes_budget": args.train_minutes,
                "seed_labels": len(others),
                "eval_split": len(eval_split),
                "temperature": model.temperature,
                "eval_macro_f1": ((version.metrics or {}).get("eval") or {}).get("macro_f1"),
                "validation_macro_f1": ((version.metrics or {}).get("validation") or {}).get(
                    "macro_f1"
                ),
                "seconds": round(train_seconds),
            },
            "sample_size": n,
            "samples": args.samples,
            "permutations": args.permutations,
            "alpha": args.alpha,
            "reference_pool": len(pool),
            "airline_pool": len(airline_pool),
            "read_texts_per_s": round(texts_read / read_seconds, 1),
            "airline": {
                "drifted": drifted,
                "trials": drift_trials,
                "max_p_value": max(t["p_value"] for t in drift_trials),
            },
            "fresh_reference": {
                "drifted": false_alarms,
                "trials": null_trials,
                "min_p_value": min(t["p_value"] for t in null_trials),
            },
            "expected_f1": {
                "airline_expected_macro_f1": round(expected_all, 4),
                "airline_expected_macro_f1_uncorrected": round(raw_all, 4),
                "airline_true_macro_f1": round(true_all, 4),
                "airline_expected_per_class": dict(
                    zip(labels, [round(v, 4) for v in per_class], strict=True)
                ),
                "per_sample_mean_abs_difference": round(float(np.mean(np.abs(per_sample_f1))), 4),
                "per_sample_mean_abs_difference_uncorrected": round(
                    float(
                        np.mean(
                            [
                                abs(t["expected_macro_f1_raw"] - t["true_macro_f1"])
                                for t in drift_trials
                            ]
                        )
                    ),
                    4,
                ),
                "reference_expected_macro_f1": round(expected_ref, 4),
                "reference_true_macro_f1": round(true_ref, 4),
            },
            "product_check": {
                "imported": imported["stored"],
                "import_seconds": round(import_seconds, 1),
                "command_seconds": round(check_seconds, 1),
                **{
                    k: check[k]
                    for k in (
                        "p_value",
                        "p_embeddings",
                        "p_labels",
                        "drifted",
                        "expected_macro_f1",
                        "n_recent",
                        "n_reference",
                        "seconds",
                    )
                },
                "most_drifted": [m["text"] for m in check["most_drifted"][:5]],
            },
            "verdict": verdict,
            "peak_rss_mb": round(peak_rss_mb()),
            "seconds": round(time.monotonic() - started),
        },
    )
    print(f"\nverdict: {verdict}\nresults: {path}")
    passed = (
        verdict["airline_all_drifted"]
        and verdict["fresh_reference_at_most_1_in_20"]
        and verdict["expected_f1_within_0_05"]
    )
    return 0 if passed or args.quick else 1


if __name__ == "__main__":
    sys.exit(main())
