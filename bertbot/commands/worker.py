"""``bertbot worker``: run queued retrains (``BERTBOT_BROKER_URL``) on this machine."""

from __future__ import annotations

import argparse
import json
import logging
import signal
import threading
from typing import Any

from bertbot.commands import CommandError, add_command
from bertbot.commands.common import open_database, require_encoder, say
from bertbot.settings import Settings

TENSORFLOW_THREADS_HELP = "TensorFlow threads of each retrain (default: every core)"


def _worker(args: argparse.Namespace, settings: Settings) -> int:
    from bertbot.queue import run_worker
    from bertbot.services import retrain_options
    from bertbot.worker import RetrainWorker
    from trainer.jobs import RetrainJob

    logging.getLogger().setLevel(settings.log_level)
    if settings.broker_url is None:
        raise CommandError(
            "BERTBOT_BROKER_URL is not set: without a broker, retrains run inside "
            "bertbot serve and bertbot scheduler (set it to e.g. redis://127.0.0.1:6379/0)"
        )
    try:
        options = retrain_options(settings, beside_serving=False, threads=args.threads)
    except ValueError as exc:
        raise CommandError(f"--threads: {exc}") from exc
    require_encoder(settings)
    database = open_database(settings)

    def done(job: RetrainJob, outcome: str) -> None:
        if args.json:
            line = {"job": job.job_id, "task": job.task, "trigger": job.trigger}
            print(json.dumps(line | {"outcome": outcome}), flush=True)

    worker = RetrainWorker(
        settings, database, options, reporter_for=_slack_cards(settings), on_done=done
    )
    stop = threading.Event()

    def shutdown(signum: int, _frame: Any) -> None:
        say(f"bertbot worker: signal {signum}: stopping after the running job")
        stop.set()

    signal.signal(signal.SIGTERM, shutdown)
    signal.signal(signal.SIGINT, shutdown)
    description = {
        "broker": "redis",
        "artifact_root": str(options.artifacts.root),
        "tasks": list(settings.tasks),
        "threads": options.threads,
    }
    if args.json:
        print(json.dumps({"worker": "started", **description}), flush=True)
    else:
        say(
            f"bertbot worker: waiting for retrain jobs (tasks {', '.join(settings.tasks)}; "
            f"artifacts under {options.artifacts.root})"
        )
    budget = options.max_minutes * 60
    run_worker(
        settings.broker_url.get_secret_value(),
        worker.handle,
        stop,
        # The retrain stops itself at its budget; evaluating and registering follow.
        time_limit_s=budget * 2 + 600,
        retry_min_s=max(options.lease_ttl.total_seconds() / 4, 1.0),
        retry_max_s=options.lease_ttl.total_seconds() * 2,
    )
    database.dispose()
    say("bertbot worker: stopped")
    return 0


def _slack_cards(settings: Settings) -> Any:
    """Builds the Slack card of an admin's job, when this machine has the bot token."""
    from bertbot.worker import LoggedReporter
    from bot.services.retrain_card import SlackRetrainCard
    from bot.services.retrain_requests import JobReporter
    from trainer.jobs import RetrainJob

    token = settings.slack_bot_token
    if token is None:
        say("bertbot worker: no SLACK_BOT_TOKEN: /retrain results go to this log only")
        return None

    def card_for(job: RetrainJob) -> JobReporter:
        from bot.app import make_client

        if job.channel_id is None and job.response_url is None:
            return LoggedReporter()
        client = make_client(token.get_secret_value(), base_url=settings.slack.api_url)
        return SlackRetrainCard(client, channel_id=job.channel_id, response_url=job.response_url)

    return card_for


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    worker = add_command(
        commands,
        "worker",
        _worker,
        "run queued retrains (needs BERTBOT_BROKER_URL); run one or more, on any machine",
        "Take retrain jobs from the task queue at BERTBOT_BROKER_URL (queued by /retrain and\n"
        "bertbot scheduler when the URL is set) and run them here, one at a time, writing\n"
        "artifacts under BERTBOT_ARTIFACT_ROOT (a volume every process shares). The\n"
        "/retrain card is posted from here (SLACK_BOT_TOKEN, BERTBOT_SLACK_API_URL).\n"
        "A job delivered twice runs once; one retrain per task runs at a time whatever\n"
        "the number of workers. Stops after the running job on SIGTERM or Ctrl-C.",
    )
    worker.add_argument("--threads", type=int, help=TENSORFLOW_THREADS_HELP)
    worker.add_argument(
        "--json", action="store_true", help="print one JSON line at start and per job run"
    )
