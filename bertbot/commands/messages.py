"""``bertbot messages import``: store texts as channel messages, as if they had been posted."""

from __future__ import annotations

import argparse
import json
import re
import time
from pathlib import Path
from typing import Any

from bertbot.commands import CommandError, add_command
from bertbot.commands.common import ProgressBar, open_database, refuse_bad_rows, say
from bertbot.settings import Settings

MAX_MESSAGES = 999_999  # one import's timestamps are <second>.<row>, six digits
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,31}$")


def _check_id(value: str, what: str) -> str:
    value = value.strip().lstrip("#")
    if not _ID.match(value):
        raise CommandError(
            f"{what} {value!r} must be 1-32 letters, digits, '.', '_' or '-' (a Slack id such "
            "as C012ABCDEF, or a short name)"
        )
    return value


def production_model(settings: Settings, database: Any, name: str) -> Any | None:
    """A task's production classifier, loaded from its artifact; None without one.

    Raises:
        CommandError: The artifact cannot be loaded.
    """
    from storage import registry
    from trainer.artifact import resolve_artifact
    from trainer.serving import SavedModelClassifier, ServingError

    with database.begin() as session:
        production = registry.get_alias(session=session, task=name)
    if production is None:
        return None
    try:
        return SavedModelClassifier.load(
            resolve_artifact(settings.artifacts, production.artifact_uri),
            task=name,
            version=production.version,
            expected_sha256=production.sha256,
            warm_up=False,
        )
    except ServingError as exc:
        raise CommandError(f"{name} v{production.version}: {exc}") from exc


def _production_models(settings: Settings, database: Any) -> dict[str, Any]:
    """Each active task's production classifier (tasks without one are left out)."""
    models = {}
    for name in settings.tasks:
        model = production_model(settings, database, name)
        if model is None:
            say(f"{name} has no production model: its messages get no {name} prediction")
            continue
        models[name] = model
    return models


def _import(args: argparse.Namespace, settings: Settings) -> int:
    from storage import messages
    from storage.audit import record_audit
    from storage.errors import DuplicateError
    from trainer.datasets import DatasetError, read_text_file

    channel = _check_id(args.channel, "--channel")
    team = _check_id(args.team, "--team")
    path = Path(args.file)
    try:
        result = read_text_file(path)
    except DatasetError as exc:
        raise CommandError(str(exc)) from exc
    refuse_bad_rows(path, result.errors, skip_bad_rows=args.skip_bad_rows)
    texts = result.texts
    if not texts:
        raise CommandError(f"{path} holds no valid rows; nothing was imported")
    if len(texts) > MAX_MESSAGES:
        raise CommandError(f"{path} holds {len(texts)} rows; import at most {MAX_MESSAGES} at once")
    database = open_database(settings)
    models = _production_models(settings, database)
    predicted: dict[str, list[Any]] = {}
    bar = ProgressBar()
    try:
        for name, model in models.items():
            predicted[name] = []
            for start in range(0, len(texts), 256):
                predicted[name] += model.predict(texts[start : start + 256])
                bar.update(min(start + 256, len(texts)), len(texts), f"{name} predictions")
    finally:
        bar.close()
    second = int(time.time())
    try:
        with database.begin() as session:  # all or nothing
            while messages.find_message(  # an import earlier in the same second
                session=session, team_id=team, channel_id=channel, ts=f"{second}.000000"
            ):
                second += 1
            first_id = last_id = None
            for row, text in enumerate(texts):
                stored = messages.add_message(
                    session=session,
                    team_id=team,
                    channel_id=channel,
                    ts=f"{second}.{row:06d}",
                    text=text,
                    user_id=args.user,
                )
                first_id = stored.id if first_id is None else first_id
                last_id = stored.id
                for name, predictions in predicted.items():
                    prediction = predictions[row]
                    messages.add_prediction(
                        session=session,
                        task=name,
                        model_version=prediction.model_version,
                        label=prediction.label,
                        scores=prediction.probabilities,
                        latency_ms=prediction.latency_ms,
                        message_id=stored.id,
                    )
            record_audit(
                session=session,
                actor=args.actor or f"import:{path.name}",
                action="import",
                subject=f"messages/{team}/{channel}",
                details={
                    "file": str(path),
                    "stored": len(texts),
                    "bad_rows_skipped": len(result.errors),
                    "predictions": {name: len(p) for name, p in predicted.items()},
                },
            )
    except DuplicateError as exc:
        raise CommandError(
            f"{exc}: another import into {team}/{channel} ran at the same time; nothing was "
            "imported, run it again"
        ) from exc
    summary = {
        "file": str(path),
        "stored": len(texts),
        "team": team,
        "channel": channel,
        "message_ids": [first_id, last_id],
        "predictions": {name: len(p) for name, p in predicted.items()},
        "model_versions": {name: model.version for name, model in models.items()},
        "bad_rows_skipped": len(result.errors),
    }
    if args.json:
        print(json.dumps(summary))
    else:
        tasks = ", ".join(f"{n} v{m.version}" for n, m in models.items()) or "none"
        print(
            f"imported {len(texts)} messages into {team}/{channel} from {path} (predictions: "
            f"{tasks}; {len(result.errors)} bad rows skipped)"
        )
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = add_command(commands, "messages", None, "import channel messages")
    actions = group.add_subparsers(dest="messages_command", metavar="ACTION", required=True)
    command = add_command(
        actions,
        "import",
        _import,
        "store a CSV/JSONL file of texts as channel messages, with predictions",
        "Store each row's text (CSV with a text column, or JSONL objects with text; other\n"
        "columns, a label included, are ignored) as a channel message received now, with one\n"
        "prediction per active task from its production model, as if it had been posted:\n"
        "back-filling history for drift watch and the review queue, or feeding a bench.\n"
        "No moderator alerts are raised. Any bad row (reported with its line number) stops\n"
        "the import unless --skip-bad-rows is given; the rows are stored all or none.",
    )
    command.add_argument("file", help="a .csv, .jsonl or .ndjson file")
    command.add_argument(
        "--channel", default="import", help="the channel id or name to file them under"
    )
    command.add_argument("--team", default="import", help="the workspace (team) id")
    command.add_argument("--user", help="the author's Slack user id (default: none)")
    command.add_argument("--actor", help="who imported them, for the audit log")
    command.add_argument(
        "--skip-bad-rows", action="store_true", help="import the valid rows, skip the bad ones"
    )
    command.add_argument("--json", action="store_true", help="print one JSON object")
