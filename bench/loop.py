"""The learning loop on real data: do 300 moderator corrections move production, and does
the gate stop the same corrections with shuffled labels?

    python bench/loop.py [--first-minutes 12] [--retrain-minutes 8]

1. Production is trained on the CrowdFlower topics other than the airline job (seed labels).
2. 300 random airline tweets are entered as moderator corrections (the stable split puts
   about a fifth of them in the gate's eval set); a retrain (warm start from production with
   seed replay) must be promoted, and macro-F1 on the other held-out airline tweets (eval
   side, never trained on, not among the corrections) must rise by >= 0.05.
3. The same 300 tweets get shuffled labels as newer corrections; that retrain must be
   rejected and production must stay.

Runs in its own home ($BERTBOT_HOME/bench-loop) with SQLite; writes bench/results/loop.json.
"""

from __future__ import annotations

import argparse
import csv
import random
import shutil
import sys
import time
from datetime import timedelta
from typing import Any

from common import home, save

from bertbot.settings import load_settings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--first-minutes", type=float, default=12.0)
    parser.add_argument("--retrain-minutes", type=float, default=8.0)
    parser.add_argument("--corrections", type=int, default=300)
    args = parser.parse_args()

    from storage import annotations, registry, schema
    from storage.annotations import NewAnnotation
    from storage.db import Database
    from storage.enums import AnnotationSource, RunTrigger
    from storage.texts import split_of
    from trainer.artifact import resolve_artifact
    from trainer.gate import GateConfig
    from trainer.metrics import classification_metrics
    from trainer.retrain import RetrainOptions, retrain
    from trainer.serving import SavedModelClassifier
    from trainer.tasks import BUILTIN_TASKS

    settings = load_settings()
    spec = BUILTIN_TASKS["sentiment"]
    rows = list(csv.DictReader((home() / "data" / "sentiment.csv").open(encoding="utf-8")))
    others = [r for r in rows if r["topic"] != "airline"]
    airline = [r for r in rows if r["topic"] == "airline"]
    # Corrections arrive like any labelled text: the stable split sends ~20% of them to the
    # gate's eval set (never trained on). The held-out measurement set is every other airline
    # tweet on the eval side: never trained on, never seen by the gate.
    corrections = random.Random(0).sample(airline, args.corrections)
    chosen = {r["text"] for r in corrections}
    airline_eval = [r for r in airline if split_of(r["text"]) == "eval" and r["text"] not in chosen]
    print(
        f"seed: {len(others)} non-airline tweets; corrections: {len(corrections)} airline "
        f"tweets; held out: {len(airline_eval)} airline tweets",
        flush=True,
    )

    loop_home = home() / "bench-loop"
    shutil.rmtree(loop_home, ignore_errors=True)
    loop_home.mkdir(parents=True)
    database = Database.connect(f"sqlite:///{loop_home / 'bertbot.db'}")
    schema.upgrade(database)
    with database.begin() as session:
        annotations.add_annotations(
            session=session,
            task="sentiment",
            items=[NewAnnotation(r["text"], r["label"]) for r in others],
            annotator="seed",
            source=AnnotationSource.SEED,
        )

    def options(minutes: float) -> RetrainOptions:
        return RetrainOptions(
            home=loop_home,
            encoder_dir=settings.encoders_dir / settings.encoder,
            base_encoder=settings.encoder,
            gate=GateConfig(),
            max_minutes=minutes,
            lease_ttl=timedelta(minutes=5),
            train_overrides={"evaluations_per_epoch": 2, "patience": 3},
        )

    last = [0.0]

    def show(update: Any) -> None:  # a trainer.decisions.RetrainProgress
        if update.phase == "train" and time.monotonic() - last[0] < 60:
            return
        last[0] = time.monotonic()
        if update.phase == "train" and update.total_steps:
            print(
                f"  step {update.step}/{update.total_steps} "
                f"{(update.examples_per_s or 0):.1f} ex/s",
                flush=True,
            )
        elif update.message:
            print(f"  {update.message}", flush=True)

    held_texts = [r["text"] for r in airline_eval]
    held_truth = [r["label"] for r in airline_eval]

    def held_out_f1(artifact_uri: str) -> float:
        model = SavedModelClassifier.load(resolve_artifact(loop_home, artifact_uri))
        predicted = [p.label for p in model.predict(held_texts)]
        return float(classification_metrics(held_truth, predicted, spec.labels)["macro_f1"])

    def airline_f1() -> tuple[str, float]:
        with database.begin() as session:
            production = registry.get_alias(session=session, task="sentiment")
        assert production is not None
        return production.version, held_out_f1(production.artifact_uri)

    steps = []

    def step(name: str, minutes: float) -> dict:  # type: ignore[type-arg]
        print(f"\n{name}", flush=True)
        started = time.monotonic()
        outcome = retrain(
            database,
            spec,
            options(minutes),
            trigger=RunTrigger.CLI,
            requested_by="bench",
            force=True,
            progress=show,
        )
        version, f1 = airline_f1()
        row = {
            "step": name,
            "status": outcome.status.value,
            "reason": outcome.message,
            "seconds": round(time.monotonic() - started),
            "production_after": version,
            "airline_heldout_macro_f1": round(f1, 4),
        }
        if outcome.decision is not None:
            decision = outcome.decision
            row["gate_scope"] = decision.scope
            row["delta_macro_f1"] = round(decision.delta_macro_f1, 4)
            row["p_improvement"] = decision.p_improvement
            row["eval_size"] = decision.eval_size
            row["corrections_eval"] = decision.corrections
            row["seed_eval"] = decision.rest
            row["checks"] = {
                c.name: {"passed": c.passed, "value": round(float(c.value), 4)}
                for c in decision.checks
            }
        if outcome.version is not None:
            row["candidate_version"] = outcome.version.version
            row["candidate_airline_heldout_macro_f1"] = round(
                held_out_f1(outcome.version.artifact_uri), 4
            )
        print(f"  -> {row['status']}: {row['reason']}", flush=True)
        print(f"  production v{version}: airline held-out macro-F1 {f1:.4f}", flush=True)
        steps.append(row)
        return row

    first = step("1. production from the non-airline topics", args.first_minutes)
    with database.begin() as session:
        for r in corrections:
            annotations.add_annotation(
                session=session,
                task="sentiment",
                text=r["text"],
                label=r["label"],
                annotator="U0MODERATOR",
                source=AnnotationSource.CORRECTION,
            )
    good = step(f"2. retrain with {len(corrections)} airline corrections", args.retrain_minutes)
    shuffled_labels = [r["label"] for r in corrections]
    random.Random(1).shuffle(shuffled_labels)
    with database.begin() as session:
        for r, label in zip(corrections, shuffled_labels, strict=True):
            annotations.add_annotation(
                session=session,
                task="sentiment",
                text=r["text"],
                label=label,
                annotator="U0NOISY",
                source=AnnotationSource.CORRECTION,
            )
    noisy = step("3. retrain with the same tweets' labels shuffled", args.retrain_minutes)

    rise = good["airline_heldout_macro_f1"] - first["airline_heldout_macro_f1"]
    verdict = {
        "promoted_with_corrections": good["status"] == "succeeded",
        "airline_rise": round(rise, 4),
        "rise_at_least_0_05": rise >= 0.05,
        "shuffled_rejected": noisy["status"] == "rejected",
        "production_unchanged_after_shuffled": noisy["production_after"]
        == good["production_after"],
    }
    path = save(
        "loop",
        {
            "steps": steps,
            "verdict": verdict,
            "held_out_airline": len(airline_eval),
            "corrections": len(corrections),
            "seed": len(others),
        },
    )
    print(f"\nverdict: {verdict}\nresults: {path}")
    return 0 if all(v for k, v in verdict.items() if k != "airline_rise") else 1


if __name__ == "__main__":
    sys.exit(main())
