"""``bertbot serve --http``: the Slack bot over HTTP (waitress, threads)."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import urllib.parse
from types import FrameType
from typing import Any

from bertbot.commands import CommandError, add_command
from bertbot.commands.common import open_database
from bertbot.settings import Settings

logger = logging.getLogger(__name__)


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def slack_credentials(settings: Settings, bind_host: str) -> tuple[str, str]:
    """The bot token and signing secret to serve with.

    Without SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET, serving is allowed only against a
    fake Slack on this machine (BERTBOT_SLACK_API_URL on a loopback address) and only on a
    loopback interface, with the fake's well-known local credentials.

    Raises:
        CommandError: Credentials are missing (or half set) for a real Slack.
    """
    slack = settings.slack
    token = slack.bot_token.get_secret_value() if slack.bot_token else None
    secret = slack.signing_secret.get_secret_value() if slack.signing_secret else None
    if token and secret:
        return token, secret
    if token or secret:
        missing = "SLACK_SIGNING_SECRET" if token else "SLACK_BOT_TOKEN"
        raise CommandError(f"serve --http needs {missing} too (both come from your Slack app)")
    api_host = urllib.parse.urlsplit(slack.api_url).hostname or ""
    if _is_loopback(api_host):
        if not _is_loopback(bind_host):
            raise CommandError(
                "without SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET, serve --http only listens "
                "on a loopback address (the local credentials are public)"
            )
        from bot.fake_slack import LOCAL_BOT_TOKEN, LOCAL_SIGNING_SECRET

        logger.warning(
            "no Slack credentials: using the local fake's credentials against %s", slack.api_url
        )
        return LOCAL_BOT_TOKEN, LOCAL_SIGNING_SECRET
    raise CommandError(
        "serve --http needs SLACK_BOT_TOKEN (xoxb-...) and SLACK_SIGNING_SECRET from your Slack "
        "app (see the README, 'Serve Slack over HTTP'); running without Slack (the local "
        "emulator) is not available yet"
    )


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from slack_bolt.error import BoltError
    from slack_sdk.errors import SlackClientError

    from bot.app import BotConfig, create_app, make_client
    from bot.roles import Roles
    from bot.server import BotHttpServer
    from bot.services import AlertPolicy, BotServices
    from trainer.serving import ProductionModels, registry_resolver

    logging.getLogger().setLevel(settings.log_level)
    if not args.http:
        raise CommandError("choose how to serve: --http (Socket Mode comes later)")
    if args.threads < 1:
        raise CommandError("--threads must be at least 1")
    token, secret = slack_credentials(settings, args.host)
    database = open_database(settings)
    models = ProductionModels(
        list(settings.task_specs), registry_resolver(database, settings.home_dir)
    )
    for task, state in models.refresh().items():
        logger.info("%s: %s", task, state)
    services = BotServices(
        database,
        models,
        settings.task_specs,
        Roles.of(admins=settings.admins, moderators=settings.moderators),
        alerts=AlertPolicy(
            channel=settings.moderators_channel,
            threshold=settings.alert_threshold,
            reaction=settings.alert_reaction,
        ),
    )
    client = make_client(token, base_url=settings.slack.api_url)
    executor = ThreadPoolExecutor(args.threads, thread_name_prefix="bertbot-listener")
    scheduler: Any = None
    try:
        try:
            app = create_app(BotConfig(signing_secret=secret), services, client, executor=executor)
        except BoltError as exc:
            raise CommandError(f"Slack refused SLACK_BOT_TOKEN: {exc}") from exc
        except (SlackClientError, OSError) as exc:
            raise CommandError(f"cannot reach Slack at {settings.slack.api_url}: {exc}") from exc
        server = BotHttpServer(app, host=args.host, port=args.port, threads=args.threads)
        models.start()

        def _stop(signum: int, _frame: FrameType | None) -> None:
            raise KeyboardInterrupt

        signal.signal(signal.SIGTERM, _stop)
        print(f"bertbot: serving Slack requests on {server.events_url}", flush=True)
        if args.with_scheduler:
            from bertbot.scheduler import build_scheduler, next_runs

            # Retrains here use BERTBOT_RETRAIN__THREADS TensorFlow threads, leaving the
            # rest to serving; a promotion reloads this process's model at once.
            scheduler = build_scheduler(settings, database, on_promoted=models.notify)
            scheduler.start()
            for job, when in next_runs(scheduler).items():
                print(f"bertbot: {job} next at {when}", flush=True)
        try:
            server.serve_forever()
        except KeyboardInterrupt:
            pass
        finally:
            server.close()
        print("bertbot: stopped", flush=True)
    finally:
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        models.stop()
        executor.shutdown(wait=True)
        database.dispose()
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = add_command(
        commands,
        "serve",
        _serve,
        "serve the Slack bot",
        "Serve Slack's commands, events and interactions at /slack/events with a threaded\n"
        "HTTP server (waitress). Needs SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET; the Web API\n"
        "is BERTBOT_SLACK_API_URL. Production models reload within 30 s of a promotion.",
    )
    serve.add_argument("--http", action="store_true", help="serve over HTTP (required for now)")
    serve.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=3000, help="port; 0 picks a free one")
    serve.add_argument("--threads", type=int, default=8, help="HTTP and listener threads")
    serve.add_argument(
        "--with-scheduler",
        action="store_true",
        help="also run the retrain schedule in this process (only one process per deployment)",
    )
