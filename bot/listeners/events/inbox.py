"""Event callbacks go through the durable inbox: stored, then acknowledged, then handled.

A Bolt global middleware (after Bolt verified the request's signature, so nothing
unverified is stored) writes every ``event_callback`` to the inbox and answers 200 only
after that commit; if the write fails it answers 503, so Slack (or, over Socket Mode, the
missing envelope ack) delivers it again. Handling starts at once on the listener executor
and is retried by the sweeper when it fails: message events through
:func:`bot.listeners.events.messages.handle_message_event`; every other event (the App
Home tab, ...) is replayed through Bolt's own listeners and marked done. ``app_uninstalled``
and ``tokens_revoked`` (bot tokens) go to
:meth:`bot.services.workspaces.WorkspaceService.uninstalled`, retried like messages until the
workspace's tokens are deleted.

Each workspace's events are handled with that workspace's client (:mod:`bot.slack_clients`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from concurrent.futures import Executor
from typing import Any

from slack_bolt import App, BoltContext
from slack_bolt.request import BoltRequest
from slack_bolt.response import BoltResponse

from bot.listeners.events.messages import handle_message_event
from bot.services.alert_outbox import AlertOutbox
from bot.services.inbox import Handler, Inbox, InboxClaim
from bot.services.ingestion import IngestionService
from bot.services.workspaces import WorkspaceService
from bot.slack_clients import SlackClients, WorkspaceNotInstalled, clients_of
from storage.errors import StorageError

logger = logging.getLogger(__name__)

# Marks a request replayed from the inbox: the middleware lets it through to the listeners.
REPLAYED = "bertbot_inbox_replay"
# Event types whose effects are stored, handled here rather than by a Bolt listener.
UNINSTALL_EVENTS = frozenset({"app_uninstalled", "tokens_revoked"})
INBOX_EVENTS = frozenset({"message"}) | UNINSTALL_EVENTS


def register(
    app: App,
    inbox: Inbox,
    ingestion: IngestionService,
    alerts: AlertOutbox,
    executor: Executor,
    *,
    workspaces: WorkspaceService | None = None,
    clients: SlackClients | None = None,
) -> None:
    """Put the inbox in front of every event callback and bind its handler."""
    inbox.bind(inbox_handler(app, inbox, ingestion, alerts, workspaces=workspaces, clients=clients))

    def store_then_ack(
        req: BoltRequest, context: BoltContext, next: Callable[[], BoltResponse]
    ) -> BoltResponse:
        body = req.body
        if body.get("type") != "event_callback" or context.get(REPLAYED):
            return next()
        try:
            # Over HTTP the body as signed; over Socket Mode the envelope's payload.
            claim = inbox.accept(body, req.raw_body or json.dumps(body))
        except StorageError as exc:
            logger.error("could not store event %s; answering 503: %s", body.get("event_id"), exc)
            return BoltResponse(status=503, body="try again later\n")
        if claim is not None:
            inbox.enqueue(claim, executor.submit)
        return BoltResponse(status=200, body="")

    app.middleware(store_then_ack)


def inbox_handler(
    app: App,
    inbox: Inbox,
    ingestion: IngestionService,
    alerts: AlertOutbox,
    *,
    workspaces: WorkspaceService | None = None,
    clients: SlackClients | None = None,
) -> Handler:
    """What handling one stored delivery means (raises to have it retried).

    ``clients`` gives each workspace's client (default: the app's one client).
    """
    per_team = clients if clients is not None else clients_of(app.client)

    def handle(claim: InboxClaim) -> None:
        event = claim.body.get("event") or {}
        kind = event.get("type")
        team_id = claim.body.get("team_id")
        if kind in UNINSTALL_EVENTS:
            _uninstalled(workspaces, claim.body, event)
            inbox.done(claim)
            return
        if kind in INBOX_EVENTS:
            try:
                client = per_team.for_team(team_id)
                bot_user_id = per_team.bot_user_id(team_id)
            except WorkspaceNotInstalled:
                logger.warning("event %s from %s: not installed; dropped", claim.event_id, team_id)
                inbox.done(claim)
                return
            stored = handle_message_event(
                claim.body,
                ingestion=ingestion,
                alerts=alerts,
                client=client,
                bot_user_id=bot_user_id,
                claim=claim,
                logger=logger,
            )
            if not stored:
                inbox.done(claim)
            return
        inbox.done(claim)
        _replay(app, claim.body)

    return handle


def _uninstalled(
    workspaces: WorkspaceService | None, body: dict[str, Any], event: dict[str, Any]
) -> None:
    """The workspace uninstalled the app, or revoked the bot's token: delete its tokens."""
    team_id = body.get("team_id")
    kind = str(event.get("type"))
    if workspaces is None or not team_id:
        logger.warning("%s without a team or a workspace service; ignored", kind)
        return
    if kind == "tokens_revoked" and not (event.get("tokens") or {}).get("bot"):
        logger.info("tokens_revoked in %s names no bot token; nothing to delete", team_id)
        return
    workspaces.uninstalled(str(team_id), reason=kind, event_id=body.get("event_id"))


def _replay(app: App, body: dict[str, Any]) -> None:
    """Run Bolt's listeners for a stored event that has no stored effects (best effort)."""
    response = app.dispatch(BoltRequest(body=body, mode="socket_mode", context={REPLAYED: True}))
    if response.status >= 500:
        logger.warning("replaying event %s: status %d", body.get("event_id"), response.status)
