"""Quality of a fine-tuned BERT against TF-IDF + logistic regression on the same split.

    python bench/quality.py --task sentiment --max-minutes 30
    python bench/quality.py --task spam --max-minutes 15

Trains on the task's training split (stable hash split of $BERTBOT_HOME/data/<task>.csv,
built by `bertbot data fetch`), scores both models on the held-out split, prints the
figures and writes bench/results/quality-<task>.json. The model is kept under
$BERTBOT_HOME/bench-models/<task> for the inference benchmark.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import time

from common import home, load_split, peak_rss_mb, save

from bertbot.settings import load_settings


def tfidf_baseline(train, held_out, labels):  # type: ignore[no-untyped-def]
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    from trainer.metrics import classification_metrics

    started = time.monotonic()
    model = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
        LogisticRegression(max_iter=3000, C=4.0, class_weight="balanced"),
    )
    model.fit([e.text for e in train], [e.label for e in train])
    predicted = model.predict([e.text for e in held_out])
    metrics = classification_metrics([e.label for e in held_out], list(predicted), labels)
    metrics["train_seconds"] = round(time.monotonic() - started, 1)
    return metrics


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--task", choices=["spam", "sentiment"], required=True)
    parser.add_argument("--max-minutes", type=float, required=True)
    parser.add_argument("--epochs", type=float, default=3.0)
    parser.add_argument("--learning-rate", type=float, default=8e-5)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument(
        "--encoder", help="encoder dir (default: $BERTBOT_HOME/encoders/<BERTBOT_ENCODER>)"
    )
    parser.add_argument("--threads", type=int)
    args = parser.parse_args()

    from trainer.tasks import BUILTIN_TASKS
    from trainer.train import TrainConfig, train

    settings = load_settings()
    labels = BUILTIN_TASKS[args.task].labels
    train_examples, held_out = load_split(args.task)
    print(f"{args.task}: {len(train_examples)} train, {len(held_out)} held out", flush=True)

    baseline = tfidf_baseline(train_examples, held_out, labels)
    print(f"TF-IDF + logistic regression: macro-F1 {baseline['macro_f1']:.4f}", flush=True)

    encoder = args.encoder or str(settings.encoders_dir / settings.encoder)
    config = TrainConfig(
        labels=labels,
        encoder_dir=encoder,
        epochs=args.epochs,
        learning_rate=args.learning_rate,
        batch_size=args.batch_size,
        max_minutes=args.max_minutes,
        evaluations_per_epoch=2,
        patience=3,
        threads=args.threads,
    )
    out = home() / "bench-models" / args.task
    shutil.rmtree(out, ignore_errors=True)
    last = [0.0]

    def show(event):  # type: ignore[no-untyped-def]
        if event.phase == "train" and time.monotonic() - last[0] < 30:
            return
        last[0] = time.monotonic()
        if event.phase == "train":
            print(
                f"step {event.step}/{event.total_steps} epoch {event.epoch:.2f} "
                f"loss {event.loss:.4f} {event.examples_per_s:.1f} ex/s "
                f"elapsed {event.elapsed_s / 60:.1f} min ETA {event.eta_s / 60:.1f} min",
                flush=True,
            )
        elif event.message:
            print(event.message, flush=True)

    started = time.monotonic()
    result = train(
        train_examples,
        config,
        out,
        eval_examples=held_out,
        progress=show,
        task=args.task,
        version="bench",
    )
    wall = time.monotonic() - started
    bert = result.metrics["eval"]
    payload = {
        "task": args.task,
        "train_examples": len(train_examples),
        "held_out_examples": len(held_out),
        "bert": {
            "macro_f1": bert["macro_f1"],
            "accuracy": bert["accuracy"],
            "per_class": bert["per_class"],
            "train_seconds": round(result.train_seconds, 1),
            "wall_seconds": round(wall, 1),
            "examples_per_second": round(result.examples_per_second, 2),
            "steps": result.steps,
            "stopped_by": result.stopped_by,
            "hyperparameters": result.hyperparameters,
            "peak_rss_mb": round(peak_rss_mb()),
        },
        "tfidf_logreg": {
            "macro_f1": baseline["macro_f1"],
            "accuracy": baseline["accuracy"],
            "per_class": baseline["per_class"],
            "train_seconds": baseline["train_seconds"],
        },
        "model_dir": str(out),
    }
    path = save(f"quality-{args.task}", payload)
    print(f"\n{args.task} held-out ({len(held_out)} examples)")
    for name, scored in [("BERT (fine-tuned)", bert), ("TF-IDF + log. regression", baseline)]:
        print(f"  {name:<24} macro-F1 {scored['macro_f1']:.4f}  accuracy {scored['accuracy']:.4f}")
    if args.task == "spam":
        print(
            f"  F1(spam): BERT {bert['per_class']['spam']['f1']:.4f}, "
            f"TF-IDF {baseline['per_class']['spam']['f1']:.4f}"
        )
    print(
        f"  training {result.train_seconds / 60:.1f} min, {result.examples_per_second:.1f} ex/s, "
        f"stopped by {result.stopped_by}; peak RSS {peak_rss_mb():.0f} MB"
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
