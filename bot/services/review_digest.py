"""The review digest: a DM to each moderator when enough of the review queue waits for them.

Run by the scheduler (``bertbot scheduler``, ``serve --with-scheduler``), never on a
listener thread. Per moderator and workspace (each workspace's moderators by
:meth:`bot.services.roles.Roles.for_team`; ``BERTBOT_MODERATORS`` without stored roles): the
items of that workspace waiting for them across the active tasks
(:meth:`ReviewQueueService.waiting`); nothing when fewer than
``digest_min_items`` wait or the day's label budget is used up; else a DM offering at most
what is left of the budget. At most one per ``digest_every``: the send is claimed in the
database first (:func:`storage.review_queue.claim_digest`), so a restart or a second
scheduler does not send it again, and a failed send gives the claim back.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.services.review_queue import ReviewQueueService
from bot.services.roles import Roles
from bot.slack_clients import SlackClients, clients_of
from bot.ui.review_digest import digest_message
from storage import review_queue as queue_store
from storage import workspace_roles as role_store
from storage.db import Database

logger = logging.getLogger(__name__)

DIGEST_EVENT = "bertbot_review_digest"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DigestOutcome:
    """What the digest did for one moderator in one workspace: ``sent``, or why not."""

    user_id: str
    outcome: str
    waiting: int
    offered: int = 0
    team_id: str | None = None


class ReviewDigest:
    """Sends each moderator's digest when it is due. Thread-safe."""

    def __init__(
        self,
        database: Database,
        client: WebClient | SlackClients,
        review: ReviewQueueService,
        moderators: Sequence[str],
        *,
        team_id: str | None = None,
        roles: Roles | None = None,
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        """Say whom to tell and how.

        Args:
            database: Holds the last sends.
            client: The bot's Web API client (DMs go to the user's id), or each workspace's.
            team_id: The workspace whose client sends a digest not tied to one workspace
                (None: the home workspace).
            review: The queue (its options hold the minimum, the period and the budget).
            moderators: Slack user ids of the moderators (``BERTBOT_MODERATORS``).
            roles: Roles per workspace: with stored roles, each known workspace's moderators
                get that workspace's digest (None: ``moderators``, over every message).
            clock: The current time (tests).
        """
        self._database = database
        self._clients = clients_of(client)
        self._team_id = team_id
        self._roles = roles
        self._review = review
        self._moderators = tuple(dict.fromkeys(moderators))
        self._clock = clock

    def send_due(self) -> list[DigestOutcome]:
        """Send every moderator's digest that is due.

        Returns:
            One outcome per moderator.

        Raises:
            StorageError: The database failed.
        """
        return [self._one(user_id, team_id) for team_id, user_id in self.recipients()]

    def recipients(self) -> list[tuple[str | None, str]]:
        """(workspace, moderator) pairs to consider, in a stable order.

        Without stored roles (``roles`` None), the configured moderators over every
        workspace's messages (``None``), as with one workspace. With them, each known
        workspace (stored messages or roles) and its moderators by the roles rule.
        """
        if self._roles is None or self._roles.stored is None:
            return [(None, user_id) for user_id in self._moderators]
        with self._database.begin() as session:
            teams = role_store.known_teams(session=session)
        if not teams:
            return [(None, user_id) for user_id in self._moderators]
        return [
            (team_id, user_id)
            for team_id in teams
            for user_id in sorted(self._roles.for_team(team_id).moderators)
        ]

    def _one(self, user_id: str, team_id: str | None = None) -> DigestOutcome:
        options = self._review.options
        if options.digest_every.total_seconds() <= 0:
            return DigestOutcome(user_id, "off", 0, team_id=team_id)
        waiting = [
            (spec.name, self._review.waiting(spec.name, user_id=user_id, team_id=team_id))
            for spec in self._review.tasks
        ]
        waiting = [(task, count) for task, count in waiting if count]
        total = sum(count for _, count in waiting)
        if total < options.digest_min_items:
            return DigestOutcome(user_id, "too few", total, team_id=team_id)
        budget = self._review.budget(user_id, team_id)
        if budget.reached:
            return DigestOutcome(user_id, "budget reached", total, team_id=team_id)
        offered = min(total, budget.remaining)
        now = self._clock()
        with self._database.begin() as session:
            claimed, previous = queue_store.claim_digest(
                session=session,
                user_id=user_id,
                every=options.digest_every,
                items=offered,
                now=now,
                team_id=team_id,
            )
        if not claimed:
            return DigestOutcome(user_id, "sent recently", total, team_id=team_id)
        content = digest_message(
            waiting, offered=offered, remaining=budget.remaining, budget=budget.budget
        )
        client = self._clients.for_team(team_id if team_id is not None else self._team_id)
        try:
            client.chat_postMessage(
                channel=user_id,
                text=content.text,
                blocks=content.blocks,
                metadata={"event_type": DIGEST_EVENT, "event_payload": {"items": offered}},
            )
        except (SlackApiError, SlackClientError, OSError) as exc:
            with self._database.begin() as session:
                queue_store.release_digest(
                    session=session, user_id=user_id, previous=previous, team_id=team_id
                )
            logger.warning(
                "could not send %s the review digest of %s: %s; the next run tries again",
                user_id,
                team_id or "every workspace",
                exc,
            )
            return DigestOutcome(user_id, "failed", total, offered, team_id)
        logger.info(
            "sent %s the review digest of %s: %d waiting, %d offered",
            user_id,
            team_id or "every workspace",
            total,
            offered,
        )
        return DigestOutcome(user_id, "sent", total, offered, team_id)
