"""``bertbot setup``: everything a fresh machine needs, skipping what is done."""

from __future__ import annotations

import argparse
import dataclasses

from bertbot.commands import CommandError, add_command
from bertbot.commands.common import ProgressBar, open_database, retrain_progress, say
from bertbot.settings import Settings

# First-model training budgets (minutes): with install, encoder import and data, a first
# `make run` stays under 20 minutes on 2 cores (bench/make_run.py measures it).
DEFAULT_MINUTES = {"spam": 4.0, "sentiment": 8.0}
FAST_MINUTES = 2.0


def _setup(args: argparse.Namespace, settings: Settings) -> int:
    from bertbot.commands.encoder import _import as import_encoder
    from bertbot.doctor import encoder_present
    from bertbot.services import retrain_options
    from storage import registry, schema
    from storage.annotations import NewAnnotation, add_annotations, list_annotations
    from storage.db import Database
    from storage.enums import AnnotationSource, RunStatus, RunTrigger
    from trainer.datasets import DatasetError, build_datasets, load_dataset_csv
    from trainer.encoder import load_encoder_info
    from trainer.retrain import AlreadyRunningError, RetrainError, retrain
    from trainer.train import TrainingError

    settings.home_dir.mkdir(parents=True, exist_ok=True)
    say("[1/4] database")
    database: Database = open_database(settings, check_schema=False)
    schema.upgrade(database)

    say("[2/4] base encoder")
    if encoder_present(settings.encoders_dir / settings.encoder):
        import_encoder(
            argparse.Namespace(name=None, source=None, max_seq_length=128, force=False), settings
        )
    else:
        say(f"  {settings.encoder} already imported")
        if load_encoder_info(settings.encoders_dir / settings.encoder).serving_precision is None:
            say(
                "  its serving precision was never measured, so models serve in float32: "
                "`bertbot encoder tune-precision` measures it"
            )

    say("[3/4] data sets and seed labels")
    builtin = [task for task in settings.tasks if task in ("spam", "sentiment")]
    if builtin:
        missing = [t for t in builtin if not (settings.data_dir / f"{t}.csv").exists()]
        if missing:
            try:
                build_datasets(settings.cache_dir, settings.data_dir, progress=say)
            except DatasetError as exc:
                raise CommandError(str(exc)) from exc
    for task in builtin:
        with database.begin() as session:
            seeded = list_annotations(
                session=session, task=task, source=AnnotationSource.SEED, limit=1
            )
        if seeded:
            say(f"  {task}: seed labels already stored")
            continue
        examples = load_dataset_csv(settings.data_dir / f"{task}.csv")
        with database.begin() as session:
            stored = add_annotations(
                session=session,
                task=task,
                items=[NewAnnotation(e.text, e.label) for e in examples],
                annotator="seed",
                source=AnnotationSource.SEED,
            )
        say(f"  {task}: stored {stored} seed labels")

    say("[4/4] first models")
    for task in settings.tasks:
        with database.begin() as session:
            production = registry.get_alias(session=session, task=task)
        if production is not None:
            say(f"  {task}: production is v{production.version}")
            continue
        minutes = FAST_MINUTES if args.fast else DEFAULT_MINUTES.get(task, 10.0)
        # No bot is serving yet: the first models use every core.
        options = dataclasses.replace(
            retrain_options(settings, beside_serving=False), max_minutes=minutes
        )
        say(f"  {task}: training the first model (budget {minutes:g} min)")
        bar = ProgressBar()

        show = retrain_progress(bar, indent="  ")

        try:
            outcome = retrain(
                database,
                settings.task_specs[task],
                options,
                trigger=RunTrigger.CLI,
                requested_by="setup",
                progress=show,
            )
        except (AlreadyRunningError, RetrainError, TrainingError) as exc:
            raise CommandError(f"first model of {task}: {exc}") from exc
        finally:
            bar.close()
        if outcome.status != RunStatus.SUCCEEDED:
            raise CommandError(f"first model of {task} was not promoted: {outcome.message}")
        say(f"  {task}: v{outcome.version.version if outcome.version else '?'} is production")
    print("setup complete")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = add_command(
        commands,
        "setup",
        _setup,
        "migrate, import the encoder, fetch data, store seed labels, train first models",
        "Prepare a fresh machine: migrate the database, import the base encoder, fetch\n"
        "and build the data sets, store them as seed labels, and train a first model for\n"
        "each task that has none. Every step is skipped when already done.",
    )
    command.add_argument(
        "--fast",
        action="store_true",
        help=f"small first models ({FAST_MINUTES:g} min budget per task) for a quick try",
    )
