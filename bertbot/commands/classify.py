"""``bertbot classify``: predictions from the command line."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bertbot.commands import CommandError, add_command
from bertbot.commands.common import open_database, task_spec
from bertbot.settings import Settings


def _model_dir(args: argparse.Namespace, settings: Settings) -> tuple[Path, str | None, str | None]:
    if args.model:
        return Path(args.model), None, None
    return production_model_dir(settings, args.task)


def production_model_dir(settings: Settings, task: str) -> tuple[Path, str | None, str | None]:
    """The task's production artifact: its directory, version and sha256.

    Raises:
        CommandError: The task has no production model.
    """
    from storage import registry
    from trainer.artifact import resolve_artifact

    database = open_database(settings)
    with database.begin() as session:
        production = registry.get_alias(session=session, task=task)
    if production is None:
        raise CommandError(f"{task} has no production model; run `bertbot train --task {task}`")
    return (
        resolve_artifact(settings.artifacts, production.artifact_uri),
        production.version,
        (production.sha256),
    )


def _classify(args: argparse.Namespace, settings: Settings) -> int:
    from trainer.serving import SavedModelClassifier, ServingError

    task_spec(settings, args.task)
    if args.file:
        stream = sys.stdin if args.file == "-" else Path(args.file).open(encoding="utf-8")
        with stream:
            texts = [line.rstrip("\n") for line in stream if line.strip()]
    else:
        texts = args.texts
    if not texts:
        raise CommandError("give texts to classify, or --file FILE (one text per line)")
    path, version, sha256 = _model_dir(args, settings)
    try:
        classifier = SavedModelClassifier.load(
            path, task=args.task, version=version, expected_sha256=sha256, warm_up=False
        )
        predictions = classifier.predict(texts)
    except ServingError as exc:
        raise CommandError(str(exc)) from exc
    for text, prediction in zip(texts, predictions, strict=True):
        if args.json:
            print(
                json.dumps(
                    {
                        "text": text,
                        "task": args.task,
                        "label": prediction.label,
                        "confidence": round(prediction.confidence, 6),
                        "probabilities": {
                            k: round(v, 6) for k, v in prediction.probabilities.items()
                        },
                        "model_version": prediction.model_version,
                        "truncated": prediction.truncated,
                    },
                    ensure_ascii=False,
                )
            )
        else:
            note = " (truncated)" if prediction.truncated else ""
            print(
                f"{prediction.label:<10} {prediction.confidence:6.1%}  v{prediction.model_version}"
                f"  {text[:80]}{note}"
            )
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = add_command(
        commands,
        "classify",
        _classify,
        "classify texts with a task's production model",
        "Classify texts given as arguments, or one per line from --file (- for stdin),\n"
        "with the task's production model (or --model DIR).",
    )
    command.add_argument("texts", nargs="*", metavar="TEXT", help="texts to classify")
    command.add_argument("--task", required=True, help="spam, sentiment, or a configured task")
    command.add_argument("--file", help="a file with one text per line, or - for stdin")
    command.add_argument("--model", help="a model artifact directory instead of production")
    command.add_argument("--json", action="store_true", help="one JSON object per line")
