"""``bertbot explain``: why a task's model predicts what it does for a text."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bertbot.commands import CommandError, add_command
from bertbot.commands.classify import production_model_dir
from bertbot.commands.common import task_spec
from bertbot.settings import Settings


def _explain(args: argparse.Namespace, settings: Settings) -> int:
    from trainer.explain import ExplainError
    from trainer.serving import SavedModelClassifier, ServingError

    task_spec(settings, args.task)
    text = " ".join(args.text).strip()
    if not text:
        raise CommandError("give a text to explain, e.g. bertbot explain --task spam 'win now'")
    if args.model:
        path, version, sha256 = Path(args.model), None, None
    else:
        path, version, sha256 = production_model_dir(settings, args.task)
    try:
        classifier = SavedModelClassifier.load(
            path, task=args.task, version=version, expected_sha256=sha256, warm_up=False
        )
        explanation = classifier.explain(text, settings.explain.options())
    except (ServingError, ExplainError) as exc:
        raise CommandError(str(exc)) from exc
    if args.json:
        print(json.dumps({"text": text, **explanation.to_json()}, ensure_ascii=False))
        return 0
    print(
        f"{explanation.task} v{explanation.model_version}: {explanation.label} "
        f"{explanation.probability:.1%}"
        + (" (truncated: only the beginning was read)" if explanation.truncated else "")
    )
    print("words (integrated gradients of the label's log-odds; + pushed towards it):")
    for word in explanation.top:
        print(f"  {word.attribution:+.4f}  {word.word}")
    print(
        f"  (log-odds {explanation.log_odds:+.3f}, baseline {explanation.baseline_log_odds:+.3f} "
        f"= {explanation.baseline_probability:.1%}; {explanation.steps} steps; completeness "
        f"gap {explanation.completeness_gap:+.4f})"
    )
    if explanation.neighbours:
        print("most similar labelled examples:")
        for neighbour in explanation.neighbours:
            print(f"  {neighbour.similarity:.3f}  {neighbour.label:<10} {neighbour.text[:80]}")
    else:
        print("no neighbour index in this model (retrain it to get one)")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = add_command(
        commands,
        "explain",
        _explain,
        "explain a task's prediction for a text",
        "Explain the task's production model (or --model DIR) on one text: the label and its\n"
        "calibrated probability, the words that pushed it (integrated gradients on the input\n"
        "embeddings, word pieces merged into words; signed, largest first) and the most\n"
        "similar labelled examples from the model's training data (cosine similarity of\n"
        "pooled embeddings). BERTBOT_EXPLAIN__STEPS / __TOP_WORDS / __NEIGHBOURS set how.\n"
        "--json prints label, probability, words [{word, attribution}] and\n"
        "neighbours [{text, label, similarity}].",
    )
    command.add_argument("text", nargs="+", metavar="TEXT", help="the text (words are joined)")
    command.add_argument("--task", required=True, help="spam, sentiment, or a configured task")
    command.add_argument("--model", help="a model artifact directory instead of production")
    command.add_argument("--json", action="store_true", help="print one JSON object")
