"""Does 80% mean 80%? Calibration of the first models, before and after their temperature.

    python bench/calibration.py [--spam-minutes 4] [--sentiment-minutes 8]

Trains the models a new user gets from `bertbot setup` (the product's `train()` with default
settings and setup's time budgets, which fits each model's temperature on its validation
split), then measures on held-out data, through the exported model as served:

- spam on its held-out split (the stable hash's eval side);
- sentiment trained on the CrowdFlower topics other than the airline job, on those topics'
  held-out split **and** on every airline tweet (a topic it never saw: the shift a workplace
  meets on day one).

For each: ECE over 15 equal-width bins and Brier score of the raw softmax (before) and of the
served, calibrated probabilities (after), the temperature, macro-F1, and the share of
predictions at >= 0.8 confidence with their accuracy (what an alert threshold of 0.8 means).
Writes bench/results/calibration.json and one reliability diagram per set beside it.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from common import RESULTS_DIR, home, load_split, save

from bertbot.settings import load_settings

THRESHOLD = 0.8


def measure(model: Any, examples: list[Any], name: str, out_dir: Path) -> dict[str, Any]:
    import numpy as np

    from trainer.calibration import (
        brier_score,
        expected_calibration_error,
        plot_reliability_diagram,
        reliability_bins,
        softmax,
    )
    from trainer.metrics import classification_metrics
    from trainer.serving import probability_matrix

    texts = [e.text for e in examples]
    index = {label: i for i, label in enumerate(model.labels)}
    truth = np.array([index[e.label] for e in examples], dtype=int)
    predictions = model.predict(texts)
    served = probability_matrix(predictions, model.labels)
    raw = softmax(model.logits(texts))
    metrics = classification_metrics(
        [e.label for e in examples], [p.label for p in predictions], model.labels
    )
    sure = served.max(axis=1) >= THRESHOLD
    sure_raw = raw.max(axis=1) >= THRESHOLD
    correct = served.argmax(axis=1) == truth
    path = out_dir / f"calibration-{name}.png"
    plot_reliability_diagram(
        {
            "raw softmax": reliability_bins(raw, truth),
            f"T = {model.temperature:.2f}": reliability_bins(served, truth),
        },
        path,
        title=f"{name} (n={len(examples)})",
    )
    return {
        "n": len(examples),
        "macro_f1": metrics["macro_f1"],
        "accuracy": metrics["accuracy"],
        "temperature": model.temperature,
        "ece_before": expected_calibration_error(raw, truth),
        "ece_after": expected_calibration_error(served, truth),
        "brier_before": brier_score(raw, truth),
        "brier_after": brier_score(served, truth),
        "share_at_threshold_before": float(sure_raw.mean()),
        "share_at_threshold_after": float(sure.mean()),
        "accuracy_at_threshold_before": float(correct[sure_raw].mean()) if sure_raw.any() else None,
        "accuracy_at_threshold_after": float(correct[sure].mean()) if sure.any() else None,
        "mean_confidence_before": float(raw.max(axis=1).mean()),
        "mean_confidence_after": float(served.max(axis=1).mean()),
        "diagram": str(path.relative_to(RESULTS_DIR.parent.parent)),
    }


def train_model(task: str, examples: list[Any], minutes: float, out: Path) -> Any:
    from trainer.serving import SavedModelClassifier
    from trainer.tasks import BUILTIN_TASKS
    from trainer.train import TrainConfig, train

    settings = load_settings()
    config = TrainConfig(
        labels=BUILTIN_TASKS[task].labels,
        encoder_dir=str(settings.encoders_dir / settings.encoder),
        max_minutes=minutes,
    )
    shutil.rmtree(out, ignore_errors=True)
    last = [0.0]

    def show(event: Any) -> None:
        if event.phase == "train" and time.monotonic() - last[0] < 30:
            return
        last[0] = time.monotonic()
        if event.phase == "train":
            print(
                f"  {task}: step {event.step}/{event.total_steps} "
                f"{event.examples_per_s:.1f} ex/s ETA {event.eta_s / 60:.1f} min",
                flush=True,
            )
        elif event.message:
            print(f"  {task}: {event.message}", flush=True)

    result = train(examples, config, out, progress=show, task=task, version="bench")
    return result, SavedModelClassifier.load(out, expected_sha256=result.sha256)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--spam-minutes", type=float, default=4.0, help="spam budget (setup's: 4)")
    parser.add_argument(
        "--sentiment-minutes", type=float, default=8.0, help="sentiment budget (setup's: 8)"
    )
    args = parser.parse_args()

    models_dir = home() / "bench-models" / "calibration"
    sets: dict[str, Any] = {}
    temperatures: dict[str, float] = {}

    spam_train, spam_held = load_split("spam")
    print(f"spam: {len(spam_train)} train, {len(spam_held)} held out", flush=True)
    result, spam = train_model("spam", spam_train, args.spam_minutes, models_dir / "spam")
    temperatures["spam"] = result.temperature
    sets["spam held-out"] = measure(spam, spam_held, "spam-held-out", RESULTS_DIR)

    sentiment_train, sentiment_held = load_split("sentiment")
    topics = _topics()
    others = [e for e in sentiment_train if topics.get(e.text) != "airline"]
    held_others = [e for e in sentiment_held if topics.get(e.text) != "airline"]
    airline = [e for e in sentiment_train + sentiment_held if topics.get(e.text) == "airline"]
    print(
        f"sentiment without airline: {len(others)} train, {len(held_others)} held out; "
        f"{len(airline)} airline tweets",
        flush=True,
    )
    result, sentiment = train_model(
        "sentiment", others, args.sentiment_minutes, models_dir / "sentiment"
    )
    temperatures["sentiment"] = result.temperature
    sets["sentiment held-out (no airline)"] = measure(
        sentiment, held_others, "sentiment-held-out", RESULTS_DIR
    )
    sets["sentiment on airline tweets (never trained on)"] = measure(
        sentiment, airline, "sentiment-airline", RESULTS_DIR
    )

    payload = {
        "threshold": THRESHOLD,
        "budgets_minutes": {"spam": args.spam_minutes, "sentiment": args.sentiment_minutes},
        "temperatures": temperatures,
        "sets": sets,
    }
    save("calibration", payload)
    print(f"\n{'set':<48} {'n':>6} {'T':>6} {'ECE raw':>8} {'ECE cal':>8} {'F1':>7}")
    for name, row in sets.items():
        print(
            f"{name:<48} {row['n']:>6} {row['temperature']:>6.2f} {row['ece_before']:>8.4f} "
            f"{row['ece_after']:>8.4f} {row['macro_f1']:>7.4f}"
        )
    return 0


def _topics() -> dict[str, str]:
    import csv

    path = home() / "data" / "sentiment.csv"
    with path.open(encoding="utf-8") as handle:
        return {row["text"]: row["topic"] for row in csv.DictReader(handle)}


if __name__ == "__main__":
    sys.exit(main())
