"""``bertbot serve --http|--socket``: the Slack bot over HTTP (waitress, threads) or Socket Mode."""

from __future__ import annotations

import argparse
import ipaddress
import logging
import signal
import urllib.parse
from types import FrameType
from typing import Any

from bertbot.commands import CommandError, add_command
from bertbot.commands.common import add_metrics_options, open_database, start_metrics_server
from bertbot.commands.emulator import ServedEmulator
from bertbot.settings import Settings

logger = logging.getLogger(__name__)

# serve --socket has no HTTP server to add /metrics to: it serves them on a port of its own.
SOCKET_METRICS_PORT = 9464


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
        from bot.emulator.inbound import LOCAL_SIGNING_SECRET
        from bot.emulator.outbound import LOCAL_BOT_TOKEN

        logger.warning(
            "no Slack credentials: using the local fake's credentials against %s", slack.api_url
        )
        return LOCAL_BOT_TOKEN, LOCAL_SIGNING_SECRET
    raise CommandError(
        "serve --http needs SLACK_BOT_TOKEN (xoxb-...) and SLACK_SIGNING_SECRET from your Slack "
        "app (see the README, 'Serve Slack over HTTP'); to try bertbot without Slack, run "
        "bertbot serve --emulator"
    )


def oauth_signing_secret(settings: Settings) -> str:
    """The signing secret of multi-workspace mode (tokens come from the installation store).

    Raises:
        CommandError: SLACK_SIGNING_SECRET is missing.
    """
    secret = settings.slack.signing_secret
    if secret is None:
        raise CommandError(
            "multi-workspace mode (SLACK_CLIENT_ID and SLACK_CLIENT_SECRET) needs "
            "SLACK_SIGNING_SECRET too (your Slack app's Basic Information page)"
        )
    return secret.get_secret_value()


def socket_mode_credentials(settings: Settings) -> tuple[str, str, str]:
    """The bot token, a signing secret and the app-level token to serve over Socket Mode.

    Socket Mode needs SLACK_APP_TOKEN (``xapp-``, scope ``connections:write``) and
    SLACK_BOT_TOKEN; no public URL and no signing secret (envelopes arrive over the
    authenticated WebSocket and are not signed). Bolt still wants a secret, so without
    SLACK_SIGNING_SECRET a random one is used: it never verifies anything in this mode.

    Raises:
        CommandError: A token is missing or is not the right kind.
    """
    import secrets

    slack = settings.slack
    app_token = slack.app_token.get_secret_value() if slack.app_token else None
    token = slack.bot_token.get_secret_value() if slack.bot_token else None
    if not app_token:
        raise CommandError(
            "serve --socket needs SLACK_APP_TOKEN, an app-level token (xapp-...) with the "
            "connections:write scope (your Slack app's Basic Information page; see the README, "
            "'Install in your Slack workspace')"
        )
    if not app_token.startswith("xapp-"):
        raise CommandError("SLACK_APP_TOKEN must be an app-level token starting with xapp-")
    if not token:
        raise CommandError(
            "serve --socket needs SLACK_BOT_TOKEN (xoxb-...) too: the bot answers through "
            "the Web API"
        )
    secret = slack.signing_secret.get_secret_value() if slack.signing_secret else None
    return token, secret or secrets.token_hex(16), app_token


def _serve(args: argparse.Namespace, settings: Settings) -> int:
    from concurrent.futures import ThreadPoolExecutor

    from slack_bolt.error import BoltError
    from slack_sdk.errors import SlackClientError

    from bertbot.queue import RetrainQueue
    from bertbot.scheduler import next_retrain_at
    from bertbot.services import alert_policy, policy_defaults, retrain_options, review_options
    from bertbot.services import roles as workspace_roles
    from bertbot.workspaces import multi_workspace, workspace_service
    from bot.app import BotConfig, create_app, make_client
    from bot.observability import BotMetrics, MetricsServer
    from bot.services import BotServices
    from bot.services.alert_posting import AlertSweeper
    from bot.services.appeals import AppealPolicy
    from bot.services.inbox import InboxSweeper
    from bot.services.retraining import RetrainService
    from bot.services.status import StatusService
    from bot.services.user_groups import SlackUserGroups
    from bot.slack_clients import SingleTokenClients, SlackClients
    from bot.transport.http import BotHttpServer
    from bot.transport.socket_mode import SocketModeError, SocketModeRunner
    from trainer.artifact import ArtifactRoot
    from trainer.serving import ProductionModels, registry_resolver

    logging.getLogger().setLevel(settings.log_level)
    if not (args.http or args.socket or args.emulator):
        raise CommandError(
            "choose how to serve: --http, --socket (Socket Mode) or --emulator (no Slack)"
        )
    if args.threads < 1:
        raise CommandError("--threads must be at least 1")
    if args.database and not args.emulator:
        raise CommandError("--database is for --emulator only (serving uses BERTBOT_DATABASE_URL)")
    metrics_port = args.metrics_port
    if metrics_port is None:
        metrics_port = SOCKET_METRICS_PORT if args.socket else 0
    app_token = ""
    emulator: ServedEmulator | None = None
    if args.emulator:  # the bot runs as in HTTP mode, against the emulator's workspace
        if args.with_scheduler:
            raise CommandError("serve --emulator runs no retrain schedule; drop --with-scheduler")
        emulator = ServedEmulator(args.host, args.port, args.database)
        settings = emulator.settings_for(settings)  # and its own database
    # Multi-workspace mode: OAuth installs, each workspace's token from the database.
    oauth_mode = settings.slack.oauth_enabled and not args.emulator
    token: str | None
    if args.socket and oauth_mode:
        raise CommandError(
            "serve --socket serves one workspace (SLACK_BOT_TOKEN); multi-workspace mode "
            "(SLACK_CLIENT_ID and SLACK_CLIENT_SECRET) serves over --http"
        )
    if args.socket:
        token, secret, app_token = socket_mode_credentials(settings)
    elif oauth_mode:
        token, secret = None, oauth_signing_secret(settings)
    else:
        token, secret = slack_credentials(settings, args.host)
    database = open_database(settings)
    multi = multi_workspace(settings, database) if oauth_mode else None
    # The emulator's models (the copied versions name the deployment's files by path).
    emulator_home = emulator.home if emulator is not None else None
    artifacts = ArtifactRoot.of_home(emulator_home) if emulator_home else settings.artifacts
    models = ProductionModels(
        list(settings.task_specs),
        registry_resolver(database, artifacts),
        poll_seconds=settings.model_poll_seconds,
    )
    for task, state in models.refresh().items():
        logger.info("%s: %s", task, state)
    # This process's metrics, at /metrics (--http) or on --metrics-port.
    metrics = BotMetrics()
    client = make_client(token, base_url=settings.slack.api_url)
    clients: SlackClients = multi.clients if multi is not None else SingleTokenClients(client)
    roles = workspace_roles(settings, database)
    services = BotServices(
        database,
        models,
        settings.task_specs,
        roles,
        alerts=alert_policy(settings),
        policy_defaults=policy_defaults(settings),
        appeals=AppealPolicy(per_day=settings.appeals.per_day),
        # Exemptions by user group: the home workspace's groups in multi-workspace mode.
        group_members=SlackUserGroups(
            client if multi is None else (lambda: clients.for_team(None))
        ),
        inbox=settings.inbox.policy(),
        batching=settings.batching.policy(),
        observer=metrics,
        explain=settings.explain.options(),
        review=review_options(settings),
        second_opinion=settings.review.second_opinion_policy(),
        workspaces=workspace_service(
            settings, database, multi.installations if multi is not None else None
        ),
    )
    metrics.watch_production(models.versions)
    metrics.watch_queues(inbox=services.inbox.stats, alert_outbox=services.outbox.depth)
    status = StatusService(
        database,
        models,
        settings.task_specs,
        roles,
        next_retrain=lambda now: next_retrain_at(settings, now),
        batcher=services.batcher,
        open_appeals=services.appeals.open_items,
        review=services.review,
        second_opinions=services.second_opinions.board,
    )
    # Retrains in this process (/retrain, --with-scheduler) share it with serving: they are
    # given BERTBOT_RETRAIN__THREADS TensorFlow threads, not every core (which holds only
    # while TensorFlow has not started here: it sizes its thread pools once per process).
    retrain_here = retrain_options(settings, beside_serving=True, home=emulator_home)
    # /retrain runs on this one worker thread; a promotion (or a card's move) reloads this
    # process's model at once. With a broker, /retrain queues the job for bertbot worker
    # (which posts the card); this process sees the promotion at its next model poll.
    broker = settings.broker_url
    retrain_queue = RetrainQueue(broker.get_secret_value()) if broker is not None else None
    retraining = RetrainService(
        database,
        settings.task_specs,
        retrain_here,
        services.roles,
        on_alias_moved=models.notify,
        observer=metrics,
        dispatch=retrain_queue.enqueue if retrain_queue is not None else None,
    )
    # Listeners get --threads of their own beside the inbox's workers, which mostly wait (on
    # the batcher and the database) and so must not hold back /classify or a button.
    executor = ThreadPoolExecutor(
        args.threads + settings.inbox.workers, thread_name_prefix="bertbot-listener"
    )
    # Posts the alerts a crash (or a Slack error) left unposted, in every serving process:
    # claims in the outbox keep two processes from posting one alert twice.
    # Each alert with its workspace's client (a rotating token refreshed before use).
    sweeper = AlertSweeper(services.outbox, clients, interval_s=settings.alert_retry_seconds)
    # Handles acknowledged events that a failure or a dead process left in the inbox.
    inbox_sweeper = InboxSweeper(services.inbox)
    scheduler: Any = None
    metrics_server: MetricsServer | None = None
    try:
        try:
            app = create_app(
                BotConfig(signing_secret=secret),
                services,
                client,
                executor=executor,
                status=status,
                retraining=retraining,
                clients=clients,
                oauth=multi.oauth if multi is not None else None,
            )
        except BoltError as exc:
            raise CommandError(f"Slack refused SLACK_BOT_TOKEN: {exc}") from exc
        except (SlackClientError, OSError) as exc:
            raise CommandError(f"cannot reach Slack at {settings.slack.api_url}: {exc}") from exc
        server: BotHttpServer | SocketModeRunner
        if args.socket:
            server = SocketModeRunner(app, app_token, concurrency=args.threads, metrics=metrics)
        else:
            port = 0 if emulator is not None else args.port  # the emulator's page takes it
            server = BotHttpServer(
                app, host=args.host, port=port, threads=args.threads, metrics=metrics
            )
        metrics_server = start_metrics_server(metrics.registry, args.metrics_host, metrics_port)
        models.start()
        sweeper.start()
        inbox_sweeper.start()

        def _stop(signum: int, _frame: FrameType | None) -> None:
            raise KeyboardInterrupt

        # Ctrl-C stops it even when started from a shell that ignores SIGINT in the background.
        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        if isinstance(server, SocketModeRunner):
            try:
                server.start()  # closes itself if it cannot connect
            except SocketModeError as exc:
                raise CommandError(str(exc)) from exc
            print("bertbot: serving Slack requests over Socket Mode", flush=True)
        else:
            print(f"bertbot: serving Slack requests on {server.events_url}", flush=True)
            if multi is not None:
                print(f"bertbot: add it to a workspace at {server.url}/slack/install", flush=True)
            if emulator is not None:
                url = emulator.open(server.events_url)
                print(f"bertbot: the Slack emulator is at {url} (open it in a browser)", flush=True)
        if metrics_server is not None:
            print(f"bertbot: serving metrics on {metrics_server.url}", flush=True)
        if args.with_scheduler:
            from bertbot.scheduler import build_scheduler, next_runs

            # Like /retrain, with BERTBOT_RETRAIN__THREADS TensorFlow threads; a promotion
            # reloads this process's model at once.
            from bot.services.drift_notice import DriftNotifier
            from bot.services.review_digest import ReviewDigest

            # Drift checks reuse this process's production models and tell admins through
            # its Slack client.
            notifier = DriftNotifier(
                database,
                clients,
                settings.task_specs,
                channel=settings.drift_channel,
                admins=settings.admins,
            )
            scheduler = build_scheduler(
                settings,
                database,
                retrain_here,
                on_promoted=models.notify,
                observer=metrics,
                drift_notifier=notifier,
                models=models.get,
                # Moderators' digests count this process's queue (no model call).
                review_digest=ReviewDigest(
                    database, clients, services.review, settings.moderators, roles=roles
                ),
                enqueue=retrain_queue.enqueue if retrain_queue is not None else None,
            )
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
        if metrics_server is not None:
            metrics_server.close()
        inbox_sweeper.stop()
        sweeper.stop()
        if scheduler is not None:
            scheduler.shutdown(wait=False)
        models.stop()
        retraining.shutdown(wait=False)  # drops queued jobs; a running one ends on its own
        executor.shutdown(wait=True)
        services.close()
        database.dispose()
        if emulator is not None:
            emulator.close()
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    serve = add_command(
        commands,
        "serve",
        _serve,
        "serve the Slack bot",
        "Serve Slack's commands, events and interactions at /slack/events with a threaded\n"
        "HTTP server (waitress). Needs SLACK_BOT_TOKEN and SLACK_SIGNING_SECRET; the Web API\n"
        "is BERTBOT_SLACK_API_URL. With SLACK_CLIENT_ID and SLACK_CLIENT_SECRET instead of\n"
        "SLACK_BOT_TOKEN it serves many workspaces: GET /slack/install and\n"
        "/slack/oauth_redirect install it (Slack's OAuth), each workspace with its own token.\n"
        "Production models reload within 30 s of a promotion.\n"
        "--socket connects out to Slack over Socket Mode instead (SLACK_APP_TOKEN and\n"
        "SLACK_BOT_TOKEN; no public URL, no signing secret).\n"
        "Prometheus metrics: GET /metrics on the HTTP port; with --socket, on --metrics-port.\n"
        "--emulator never touches the configured database: it runs on its own,\n"
        "$BERTBOT_HOME/emulator/bertbot.db (or --database URL), migrated at start. The first\n"
        "time, it copies the configured database's model versions, aliases and seed labels\n"
        "into it (read only); what it trains goes under $BERTBOT_HOME/emulator/models.\n"
        "Delete $BERTBOT_HOME/emulator to start again from the configured models.\n"
        "Retrains in this process (/retrain, --with-scheduler) are given\n"
        "BERTBOT_RETRAIN__THREADS TensorFlow threads (default 1) to leave the other cores to\n"
        "serving; TensorFlow sizes its threads once per process, so once a model is loaded\n"
        "they share serving's instead. --threads is for HTTP and listener threads.",
    )
    mode = serve.add_mutually_exclusive_group()
    mode.add_argument("--http", action="store_true", help="serve over HTTP at /slack/events")
    mode.add_argument(
        "--emulator",
        action="store_true",
        help="no Slack: serve over HTTP behind a local Slack emulator, a web page at "
        "http://127.0.0.1:PORT (users, channels, commands, buttons, modals, App Home)",
    )
    mode.add_argument(
        "--socket",
        action="store_true",
        help="serve over Socket Mode (SLACK_APP_TOKEN + SLACK_BOT_TOKEN; no public URL; "
        "--host and --port do not apply)",
    )
    serve.add_argument(
        "--database",
        metavar="URL",
        help="--emulator only: the emulator's database (default: "
        "sqlite:///$BERTBOT_HOME/emulator/bertbot.db; never the configured one unless named)",
    )
    serve.add_argument("--host", default="127.0.0.1", help="interface (default: 127.0.0.1)")
    serve.add_argument("--port", type=int, default=3000, help="port; 0 picks a free one")
    serve.add_argument(
        "--threads",
        type=int,
        default=8,
        help="HTTP threads, and listener threads beside the BERTBOT_INBOX__WORKERS event workers "
        "(retrains here: BERTBOT_RETRAIN__THREADS)",
    )
    serve.add_argument(
        "--with-scheduler",
        action="store_true",
        help="also run the retrain schedule and drift checks in this process (only one process "
        "per deployment; its retrains use BERTBOT_RETRAIN__THREADS TensorFlow threads)",
    )
    add_metrics_options(
        serve,
        note=f"default with --socket: {SOCKET_METRICS_PORT}; --http answers GET /metrics on "
        "--port (--emulator: beside the /slack/events URL it prints) and opens this port "
        "too only when it is given",
    )
