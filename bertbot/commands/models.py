"""``bertbot models``, ``retrain``, ``scheduler`` and ``data export``: the learning loop."""

from __future__ import annotations

import argparse
import csv
import json
import sys
from typing import Any

from bertbot.commands import CommandError, add_command
from bertbot.commands.common import (
    TENSORFLOW_THREADS_HELP,
    ProgressBar,
    add_metrics_options,
    open_database,
    require_encoder,
    retrain_progress,
    say,
    start_metrics_server,
    task_spec,
)
from bertbot.settings import Settings


def _version_json(version: Any, production_id: int | None) -> dict[str, Any]:
    return {
        "version": version.version,
        "status": version.status.value,
        "production": version.id == production_id,
        "created_at": version.created_at.isoformat(),
        "created_by": version.created_by,
        "artifact_uri": version.artifact_uri,
        "artifact_deleted": version.artifact_deleted_at is not None,
        "sha256": version.sha256,
        "base_encoder": version.base_encoder,
        "metrics": version.metrics,
        "data_snapshot": version.data_snapshot,
        "hyperparameters": version.hyperparameters,
    }


def _macro_f1(version: Any) -> str:
    scored = version.metrics.get("eval") or version.metrics.get("validation") or {}
    value = scored.get("macro_f1")
    return f"{value:.4f}" if isinstance(value, float) else "-"


def _list(args: argparse.Namespace, settings: Settings) -> int:
    from storage import registry

    spec = task_spec(settings, args.task)
    database = open_database(settings)
    with database.begin() as session:
        versions = registry.list_model_versions(session=session, task=spec.name)
        production = registry.get_alias(session=session, task=spec.name)
    production_id = production.id if production else None
    if args.json:
        print(json.dumps([_version_json(v, production_id) for v in versions], default=str))
        return 0
    if not versions:
        print(f"{spec.name} has no models yet; run `bertbot train --task {spec.name}`")
        return 0
    print(f"{'version':>7}  {'status':<9} {'prod':<4}  {'macro-F1':>8}  {'examples':>8}  created")
    for v in versions:
        examples = v.data_snapshot.get("all", {}).get("n") or v.data_snapshot.get("train", "")
        if isinstance(examples, dict):
            examples = examples.get("n", "")
        print(
            f"{v.version:>7}  {v.status.value:<9} {'*' if v.id == production_id else '':<4}  "
            f"{_macro_f1(v):>8}  {examples!s:>8}  {v.created_at:%Y-%m-%d %H:%M} by {v.created_by}"
        )
    return 0


def _show(args: argparse.Namespace, settings: Settings) -> int:
    from storage import registry

    spec = task_spec(settings, args.task)
    database = open_database(settings)
    with database.begin() as session:
        production = registry.get_alias(session=session, task=spec.name)
        if args.version:
            version = registry.get_model_version(
                session=session, task=spec.name, version=args.version
            )
        elif production is not None:
            version = production
        else:
            raise CommandError(f"{spec.name} has no production model; name a --version")
    data = _version_json(version, production.id if production else None)
    if args.json:
        print(json.dumps(data, default=str))
    else:
        for key in (
            "version",
            "status",
            "production",
            "created_at",
            "created_by",
            "artifact_uri",
            "sha256",
            "base_encoder",
        ):
            print(f"{key:>14}: {data[key]}")
        print(f"{'macro-F1':>14}: {_macro_f1(version)}")
        print(f"{'data':>14}: {json.dumps(version.data_snapshot, default=str)[:400]}")
    return 0


def _move_alias(args: argparse.Namespace, settings: Settings, action: str) -> int:
    from trainer.promotion import PromotionError, manual_move

    spec = task_spec(settings, args.task)
    if action == "promote" and not args.version:
        raise CommandError("name the version to promote: --version N")
    database = open_database(settings)
    try:
        move = manual_move(
            database,
            spec.name,
            action="promote" if action == "promote" else "rollback",
            actor=args.actor or "cli",
            reason=args.reason,
            home=settings.artifacts,
            version=args.version,
            expected_production=args.expect,
            details={"via": "cli"},
        )
    except PromotionError as exc:
        raise CommandError(str(exc)) from exc
    note = " (the gate had rejected it)" if move.overrides_gate else ""
    previous = move.previous.version if move.previous else "none"
    print(
        f"{spec.name}: production {previous} -> {move.current.version}{note}; recorded in the "
        "audit log. Serving processes pick it up within 30 s."
    )
    return 0


def _promote(args: argparse.Namespace, settings: Settings) -> int:
    return _move_alias(args, settings, "promote")


def _rollback(args: argparse.Namespace, settings: Settings) -> int:
    return _move_alias(args, settings, "rollback")


def _retrain(args: argparse.Namespace, settings: Settings) -> int:
    from bertbot.services import retrain_options
    from storage.enums import RunStatus, RunTrigger
    from trainer.retrain import AlreadyRunningError, RetrainError, retrain
    from trainer.train import TrainingError

    spec = task_spec(settings, args.task)
    require_encoder(settings)
    database = open_database(settings)
    bar = ProgressBar()

    show = retrain_progress(bar)

    try:
        outcome = retrain(
            database,
            spec,
            retrain_options(settings, beside_serving=False, threads=args.threads),
            trigger=RunTrigger.CLI,
            requested_by=args.actor or "cli",
            force=args.force,
            progress=show,
        )
    except AlreadyRunningError as exc:
        bar.close()
        raise CommandError(f"{spec.name}: {exc}") from exc
    except (RetrainError, TrainingError, ValueError) as exc:
        bar.close()
        raise CommandError(f"retrain of {spec.name} failed: {exc}") from exc
    bar.close()
    print(f"run {outcome.run.id}: {outcome.status.value}: {outcome.message}")
    return 0 if outcome.status != RunStatus.FAILED else 1


SCHEDULER_METRICS_PORT = 9465


def _scheduler(args: argparse.Namespace, settings: Settings) -> int:
    import logging

    from bertbot.scheduler import run_scheduler
    from bertbot.services import retrain_options
    from bot.observability import SchedulerMetrics

    logging.getLogger().setLevel(settings.log_level)
    try:
        # Alone in its process: every core unless --threads.
        options = retrain_options(settings, beside_serving=False, threads=args.threads)
    except ValueError as exc:
        raise CommandError(f"--threads: {exc}") from exc
    retrain_queue = None
    if settings.broker_url is not None:  # retrains run on bertbot worker
        from bertbot.queue import RetrainQueue

        retrain_queue = RetrainQueue(settings.broker_url.get_secret_value())
    else:
        require_encoder(settings)
    database = open_database(settings)
    metrics = SchedulerMetrics()
    port = SCHEDULER_METRICS_PORT if args.metrics_port is None else args.metrics_port
    server = start_metrics_server(metrics.registry, args.metrics_host, port)
    if server is not None:
        print(f"bertbot: serving metrics on {server.url}", flush=True)
    from bertbot.commands.drift import drift_notifier

    notifier = drift_notifier(settings, database)
    if notifier is None and settings.drift.interval_hours > 0:
        say(
            "no SLACK_BOT_TOKEN: drift checks run and are recorded, but admins are not told "
            "in Slack until a process with the token runs one"
        )
    from bertbot.commands.review import review_digest

    digest = review_digest(settings, database)
    try:
        run_scheduler(
            settings,
            database,
            options,
            observer=metrics,
            drift_notifier=notifier,
            review_digest=digest,
            enqueue=retrain_queue.enqueue if retrain_queue is not None else None,
        )
    finally:
        if server is not None:
            server.close()
    return 0


def _export(args: argparse.Namespace, settings: Settings) -> int:
    from storage.annotations import effective_labels

    spec = task_spec(settings, args.task)
    database = open_database(settings)
    with database.begin() as session:
        examples = effective_labels(session=session, task=spec.name)
    out = open(args.out, "w", newline="", encoding="utf-8") if args.out else sys.stdout
    try:
        writer = csv.writer(out)
        writer.writerow(["text", "label", "source", "annotator", "labelled_at", "split"])
        for e in examples:
            writer.writerow(
                [
                    e.text,
                    e.label,
                    e.source.value,
                    e.annotator,
                    e.created_at.isoformat(),
                    e.split.value,
                ]
            )
    finally:
        if args.out:
            out.close()
    if args.out:
        say(f"exported {len(examples)} {spec.name} labels to {args.out}")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = add_command(commands, "models", None, "list, inspect, promote and roll back models")
    actions = group.add_subparsers(dest="models_command", metavar="ACTION", required=True)
    listing = add_command(actions, "list", _list, "a task's model versions")
    show = add_command(actions, "show", _show, "one version (default: production)")
    promote = add_command(
        actions, "promote", _promote, "make a version production (bypasses the gate; audited)"
    )
    rollback = add_command(
        actions,
        "rollback",
        _rollback,
        "point production back at the version before (or --version N; audited)",
    )
    for parser in (listing, show, promote, rollback):
        parser.add_argument("--task", required=True, help="spam, sentiment, or a configured task")
    for parser in (listing, show):
        parser.add_argument("--json", action="store_true", help="print JSON")
    for parser in (show, promote, rollback):
        parser.add_argument("--version", help="a version name, e.g. 3")
    for parser in (promote, rollback):
        parser.add_argument("--reason", required=True, help="why (kept in the audit log)")
        parser.add_argument("--actor", help="who is doing it (default: cli)")
        parser.add_argument(
            "--expect",
            metavar="VERSION",
            help="refuse unless production is this version now (default: as read when run)",
        )

    retrain = add_command(
        commands,
        "retrain",
        _retrain,
        "retrain a task and promote the candidate only if better",
        "Snapshot the task's effective labels, fine-tune a candidate within the time budget,\n"
        "score candidate and production on the same eval set, and move production only if\n"
        "the gate passes (BERTBOT_GATE__*). Skipped when fewer than\n"
        "BERTBOT_GATE__MIN_NEW_LABELS corrections arrived since production's snapshot,\n"
        "unless --force. One retrain per task at a time across all processes.\n"
        "Trains on every core unless --threads (BERTBOT_RETRAIN__THREADS is for retrains\n"
        "inside bertbot serve).",
    )
    retrain.add_argument("--task", required=True, help="spam, sentiment, or a configured task")
    retrain.add_argument("--force", action="store_true", help="retrain even without new labels")
    retrain.add_argument("--threads", type=int, help=TENSORFLOW_THREADS_HELP)
    retrain.add_argument("--actor", help="who asked (default: cli)")

    scheduler = add_command(
        commands,
        "scheduler",
        _scheduler,
        "run the retrain schedule (one process per deployment)",
        "Run scheduled retrains of every active task (BERTBOT_RETRAIN__SCHEDULE) and drift\n"
        "checks (every BERTBOT_DRIFT__INTERVAL_HOURS; admins told once per drift episode in\n"
        "BERTBOT_DRIFT__CHANNEL when SLACK_BOT_TOKEN is set) until stopped.\n"
        "Several may run (on several machines): one leads at a time through a database lease\n"
        "(BERTBOT_SCHEDULER__LEASE_SECONDS, renewed every ..._HEARTBEAT_SECONDS) and runs the\n"
        "jobs; the others wait and take over when it stops renewing. With BERTBOT_BROKER_URL\n"
        "retrains are queued for bertbot worker. The retrain lease keeps any task from\n"
        "training twice at once.\n"
        "Retrains use every core unless --threads (BERTBOT_RETRAIN__THREADS is for retrains\n"
        "inside bertbot serve, e.g. serve --with-scheduler). On a machine that also serves the\n"
        "bot, give it --threads 1 and a lower priority (nice -n 10 bertbot scheduler).\n"
        "Its retrains are counted and timed in Prometheus metrics on --metrics-port.",
    )
    add_metrics_options(scheduler, note=f"default: {SCHEDULER_METRICS_PORT}")
    scheduler.add_argument("--threads", type=int, help=TENSORFLOW_THREADS_HELP)


def register_data_export(data_actions: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = add_command(
        data_actions,
        "export",
        _export,
        "write a task's effective labels as CSV (text,label,source,annotator,labelled_at,split)",
    )
    export.add_argument("--task", required=True, help="spam, sentiment, or a configured task")
    export.add_argument("--out", help="a file (default: standard output)")
