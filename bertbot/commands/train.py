"""``bertbot train``, ``tune`` and ``evaluate``."""

from __future__ import annotations

import argparse
import itertools
import json
import random
import shutil
import tempfile
from pathlib import Path
from typing import Any

from bertbot.commands import CommandError, add_command
from bertbot.commands.common import (
    TENSORFLOW_THREADS_HELP,
    ProgressBar,
    format_duration,
    open_database,
    require_encoder,
    say,
    task_spec,
)
from bertbot.settings import Settings


def _load_examples(settings: Settings, task: str, labels: tuple[str, ...], data: str | None):
    """Training and eval examples of a file, split by the stable text hash."""
    from storage.texts import split_of
    from trainer.datasets import DatasetError, read_labelled_file

    path = Path(data) if data else settings.data_dir / f"{task}.csv"
    if not data and not path.exists():
        raise CommandError(f"no data set for {task} at {path}; run `bertbot data fetch`")
    try:
        result = read_labelled_file(path, labels)
    except DatasetError as exc:
        raise CommandError(str(exc)) from exc
    if result.errors:
        for error in result.errors[:10]:
            say(f"{path}:{error.line}: {error.message}")
        raise CommandError(f"{len(result.errors)} bad row(s) in {path}; fix them first")
    train = [e for e in result.examples if split_of(e.text) == "train"]
    held_out = [e for e in result.examples if split_of(e.text) == "eval"]
    return path, train, held_out


def _config(args: argparse.Namespace, settings: Settings, labels: tuple[str, ...]):
    from trainer.train import TrainConfig, with_overrides

    defaults: dict[str, Any] = {"labels": labels, "encoder_dir": str(require_encoder(settings))}
    try:
        if args.config:
            config = TrainConfig.from_file(Path(args.config), **defaults)
        else:
            config = TrainConfig(**defaults)
        return with_overrides(
            config,
            max_minutes=args.max_minutes,
            epochs=args.epochs,
            learning_rate=args.learning_rate,
            batch_size=args.batch_size,
            seed=args.seed,
            threads=args.threads,
        )
    except ValueError as exc:
        raise CommandError(str(exc)) from exc


def _progress_printer() -> tuple[Any, ProgressBar]:
    bar = ProgressBar()

    def show(event: Any) -> None:
        if event.phase == "train":
            detail = f"epoch {event.epoch:.2f} loss {event.loss:.4f}"
            if event.examples_per_s:
                detail += f" {event.examples_per_s:.1f} ex/s"
            bar.update(event.step, event.total_steps, detail, event.eta_s)
        elif event.message:
            bar.message(event.message)

    return show, bar


def _train(args: argparse.Namespace, settings: Settings) -> int:
    from bertbot.services import gate
    from trainer.datasets import Example
    from trainer.pipeline import next_version, register_model
    from trainer.train import TrainingError, train

    spec = task_spec(settings, args.task)
    config = _config(args, settings, spec.labels)
    path, train_examples, eval_examples = _load_examples(
        settings, spec.name, spec.labels, args.data
    )
    if args.limit:
        train_examples = random.Random(0).sample(
            train_examples, min(args.limit, len(train_examples))
        )
    database = None if args.no_register else open_database(settings)
    version = next_version(database, spec.name) if database else "0"
    out_dir = Path(args.out) if args.out else settings.models_dir / spec.name / version
    say(
        f"training {spec.name} v{version} on {len(train_examples)} examples from {path} "
        f"({len(eval_examples)} held out), encoder {config.encoder_dir}"
    )
    show, bar = _progress_printer()
    try:
        result = train(
            [Example(e.text, e.label) for e in train_examples],
            config,
            out_dir,
            eval_examples=eval_examples,
            progress=show,
            task=spec.name,
            version=version,
            data_description={
                "file": str(path),
                "train": len(train_examples),
                "eval": len(eval_examples),
            },
        )
    except (TrainingError, ValueError) as exc:
        raise CommandError(str(exc)) from exc
    finally:
        bar.close()
    scored = result.metrics.get("eval") or result.metrics["validation"]
    print(
        f"{spec.name} v{version}: held-out macro-F1 {scored['macro_f1']:.4f}, accuracy "
        f"{scored['accuracy']:.4f} (n={scored['n']}); {result.steps} steps in "
        f"{format_duration(result.train_seconds)} ({result.examples_per_second:.1f} ex/s, "
        f"stopped by {result.stopped_by}) -> {out_dir}"
    )
    if database is not None:
        registered = register_model(
            database,
            task=spec.name,
            version=version,
            artifact_dir=out_dir,
            home=settings.artifacts,
            sha256=result.sha256,
            base_encoder=settings.encoder,
            hyperparameters=result.hyperparameters,
            data_snapshot={
                "file": str(path),
                "train": len(train_examples),
                "eval": len(eval_examples),
            },
            metrics=result.metrics,
            created_by="cli",
            gate=gate(settings),
        )
        print(f"registered {spec.name} v{version}: {registered.reason}")
    return 0


def _tune(args: argparse.Namespace, settings: Settings) -> int:
    from trainer.datasets import Example
    from trainer.train import TrainingError, train, with_overrides

    spec = task_spec(settings, args.task)
    base = _config(args, settings, spec.labels)
    path, train_examples, _ = _load_examples(settings, spec.name, spec.labels, args.data)
    if args.sample and args.sample < len(train_examples):
        train_examples = random.Random(base.seed).sample(train_examples, args.sample)
    grid = list(itertools.product(args.learning_rates, args.epochs_grid, args.dropouts))
    trials = random.Random(base.seed).sample(grid, min(args.trials, len(grid)))
    say(f"tuning {spec.name}: {len(trials)} trials on {len(train_examples)} examples from {path}")
    results = []
    scratch = Path(tempfile.mkdtemp(prefix="bertbot-tune-"))
    try:
        for number, (learning_rate, epochs, dropout) in enumerate(trials, start=1):
            config = with_overrides(
                base, learning_rate=learning_rate, epochs=epochs, dropout=dropout
            )
            say(
                f"trial {number}/{len(trials)}: lr {learning_rate}, epochs {epochs}, "
                f"dropout {dropout}"
            )
            show, bar = _progress_printer()
            try:
                result = train(
                    [Example(e.text, e.label) for e in train_examples],
                    config,
                    scratch / f"trial-{number}",
                    progress=show,
                    task=spec.name,
                )
            except (TrainingError, ValueError) as exc:
                raise CommandError(str(exc)) from exc
            finally:
                bar.close()
            f1 = result.metrics["validation"]["macro_f1"]
            results.append((f1, learning_rate, epochs, dropout))
            say(f"trial {number}: validation macro-F1 {f1:.4f}")
            shutil.rmtree(scratch / f"trial-{number}", ignore_errors=True)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    results.sort(reverse=True)
    print("validation macro-F1  learning rate  epochs  dropout")
    for f1, learning_rate, epochs, dropout in results:
        print(f"{f1:19.4f}  {learning_rate:13g}  {epochs:6g}  {dropout:7g}")
    best = results[0]
    chosen = {"learning_rate": best[1], "epochs": best[2], "dropout": best[3]}
    if args.write_config:
        Path(args.write_config).write_text(json.dumps(chosen, indent=2) + "\n")
        print(f"best config written to {args.write_config} (use it with --config)")
    else:
        print(f"best: {json.dumps(chosen)}")
    return 0


def _evaluate(args: argparse.Namespace, settings: Settings) -> int:
    import numpy as np

    from storage.texts import split_of
    from trainer.artifact import CONFUSION_FILE, RELIABILITY_FILE
    from trainer.calibration import (
        brier_score,
        expected_calibration_error,
        plot_reliability_diagram,
        reliability_bins,
        softmax,
    )
    from trainer.datasets import DatasetError, read_labelled_file
    from trainer.metrics import classification_metrics, format_report, plot_confusion_matrix
    from trainer.serving import SavedModelClassifier, ServingError, probability_matrix

    model_dir = Path(args.model)
    try:
        classifier = SavedModelClassifier.load(model_dir, warm_up=False)
    except ServingError as exc:
        raise CommandError(str(exc)) from exc
    try:
        read = read_labelled_file(Path(args.data), classifier.labels)
    except DatasetError as exc:
        raise CommandError(str(exc)) from exc
    for error in read.errors[:10]:
        say(f"{args.data}:{error.line}: {error.message}")
    if read.errors:
        raise CommandError(f"{len(read.errors)} bad row(s) in {args.data}; fix them first")
    examples = read.examples
    if args.split != "all":
        examples = [e for e in examples if split_of(e.text) == args.split]
    if not examples:
        raise CommandError(f"no examples to evaluate in {args.data} (split {args.split})")
    predictions = []
    bar = ProgressBar()
    for start in range(0, len(examples), 256):
        chunk = examples[start : start + 256]
        predictions += classifier.predict([e.text for e in chunk])
        bar.update(min(start + 256, len(examples)), len(examples), "texts")
    bar.close()
    metrics = classification_metrics(
        [e.label for e in examples], [p.label for p in predictions], classifier.labels
    )
    metrics["model"] = str(model_dir)
    metrics["model_version"] = classifier.version
    index = {label: i for i, label in enumerate(classifier.labels)}
    truth = np.array([index[e.label] for e in examples], dtype=int)
    calibrated = probability_matrix(predictions, classifier.labels)
    metrics["temperature"] = classifier.temperature
    metrics["ece"] = expected_calibration_error(calibrated, truth)
    metrics["brier"] = brier_score(calibrated, truth)
    curves = {f"T = {classifier.temperature:.2f}": reliability_bins(calibrated, truth)}
    try:  # the raw softmax too, where the artifact serves its logits
        raw = softmax(classifier.logits([e.text for e in examples]))
    except ServingError:
        raw = None
    if raw is not None:
        metrics["ece_uncalibrated"] = expected_calibration_error(raw, truth)
        metrics["brier_uncalibrated"] = brier_score(raw, truth)
        curves = {"raw softmax": reliability_bins(raw, truth), **curves}
    out_dir = (
        Path(args.out)
        if args.out
        else settings.home
        / "reports"
        / "evaluate"
        / f"{classifier.task}-v{classifier.version}-{Path(args.data).stem}-{args.split}"
    )
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
        title = f"{classifier.task} v{classifier.version} on {Path(args.data).name} ({args.split})"
        plot_confusion_matrix(metrics, out_dir / CONFUSION_FILE, title=title)
        plot_reliability_diagram(
            curves, out_dir / RELIABILITY_FILE, title=f"{title}: ECE {metrics['ece']:.3f}"
        )
    except OSError as exc:
        raise CommandError(f"cannot write the plots to {out_dir}: {exc}") from exc
    metrics["plots"] = {
        "confusion_matrix": str(out_dir / CONFUSION_FILE),
        "reliability_diagram": str(out_dir / RELIABILITY_FILE),
    }
    if args.json:
        print(json.dumps(metrics, sort_keys=True))
    else:
        print(
            f"model {model_dir} (version {classifier.version}) on {args.data}, split {args.split}"
        )
        print(format_report(metrics))
        raw_ece = (
            f" (raw softmax {metrics['ece_uncalibrated']:.4f})"
            if "ece_uncalibrated" in metrics
            else ""
        )
        print(
            f"calibration: temperature {classifier.temperature:.3f}, ECE {metrics['ece']:.4f}"
            f"{raw_ece}, Brier {metrics['brier']:.4f}"
        )
        print(f"plots: {out_dir / CONFUSION_FILE}, {out_dir / RELIABILITY_FILE}")
    return 0


def _common_training_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--task", required=True, help="spam, sentiment, or a configured task")
    parser.add_argument(
        "--data", help="CSV/JSONL of text,label (default: $BERTBOT_HOME/data/<task>.csv)"
    )
    parser.add_argument("--config", help="JSON file of training options (TrainConfig fields)")
    parser.add_argument("--max-minutes", type=float, help="wall-clock budget of the training loop")
    parser.add_argument("--epochs", type=float, help="passes over the data (default 3)")
    parser.add_argument("--learning-rate", type=float, help="peak learning rate (default 5e-5)")
    parser.add_argument("--batch-size", type=int, help="examples per step (default 32)")
    parser.add_argument("--seed", type=int, help="random seed (default 0)")
    parser.add_argument("--threads", type=int, help=TENSORFLOW_THREADS_HELP)


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    train = add_command(
        commands,
        "train",
        _train,
        "fine-tune a classifier for a task",
        "Fine-tune the base encoder on a task's training split (the stable hash split of\n"
        "--data) and export one SavedModel with labels, metrics, a model card and a sha256\n"
        "manifest. The model is registered as the task's next version; a task's first model\n"
        "becomes production if it beats the majority-class baseline.",
    )
    _common_training_options(train)
    train.add_argument("--out", help="artifact directory (default: models/<task>/<version>)")
    train.add_argument("--limit", type=int, help="train on a random sample of N examples")
    train.add_argument(
        "--no-register", action="store_true", help="do not add the model to the registry"
    )

    tune = add_command(
        commands,
        "tune",
        _tune,
        "search learning rate, epochs and dropout by validation macro-F1",
    )
    _common_training_options(tune)
    tune.add_argument("--trials", type=int, default=4, help="configurations to try (default 4)")
    tune.add_argument("--sample", type=int, help="tune on a random sample of N examples")
    tune.add_argument(
        "--learning-rates",
        type=float,
        nargs="+",
        default=[3e-5, 5e-5, 1e-4],
        help="learning rates to try",
    )
    tune.add_argument(
        "--epochs-grid", type=float, nargs="+", default=[2.0, 3.0], help="epochs to try"
    )
    tune.add_argument(
        "--dropouts", type=float, nargs="+", default=[0.1, 0.2], help="dropouts to try"
    )
    tune.add_argument("--write-config", help="write the best options to this JSON file")

    evaluate = add_command(
        commands,
        "evaluate",
        _evaluate,
        "score a model on a labelled file",
        "Per-class precision, recall and F1, macro and weighted F1, accuracy, the\n"
        "confusion matrix and calibration (the model's temperature, expected calibration\n"
        "error over 15 equal-width bins and Brier score, of the served probabilities and of\n"
        "the raw softmax) of a model on a labelled CSV/JSONL file; the confusion matrix and a\n"
        "reliability diagram are written as PNGs.",
    )
    evaluate.add_argument("--model", required=True, help="a model artifact directory")
    evaluate.add_argument("--data", required=True, help="CSV/JSONL of text,label")
    evaluate.add_argument(
        "--split",
        choices=["all", "train", "eval"],
        default="all",
        help="score only one side of the stable split (default: all rows)",
    )
    evaluate.add_argument(
        "--out",
        help="directory for the PNGs (default: "
        "$BERTBOT_HOME/reports/evaluate/<task>-v<version>-<data>-<split>)",
    )
    evaluate.add_argument("--json", action="store_true", help="print one JSON object")
