"""The review digest: a DM to each moderator when enough of the review queue waits for them.

Run by the scheduler (``bertbot scheduler``, ``serve --with-scheduler``), never on a
listener thread. Per moderator (``BERTBOT_MODERATORS``): the items waiting for them across
the active tasks (:meth:`ReviewQueueService.waiting`); nothing when fewer than
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
from bot.slack_clients import SlackClients, clients_of
from bot.ui.review_digest import digest_message
from storage import review_queue as queue_store
from storage.db import Database

logger = logging.getLogger(__name__)

DIGEST_EVENT = "bertbot_review_digest"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class DigestOutcome:
    """What the digest did for one moderator: ``sent``, or why not."""

    user_id: str
    outcome: str
    waiting: int
    offered: int = 0


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
        clock: Callable[[], datetime] = _utcnow,
    ) -> None:
        """Say whom to tell and how.

        Args:
            database: Holds the last sends.
            client: The bot's Web API client (DMs go to the user's id), or each workspace's.
            team_id: The moderators' workspace (None: the home workspace).
            review: The queue (its options hold the minimum, the period and the budget).
            moderators: Slack user ids of the moderators (``BERTBOT_MODERATORS``).
            clock: The current time (tests).
        """
        self._database = database
        self._clients = clients_of(client)
        self._team_id = team_id
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
        return [self._one(user_id) for user_id in self._moderators]

    def _one(self, user_id: str) -> DigestOutcome:
        options = self._review.options
        if options.digest_every.total_seconds() <= 0:
            return DigestOutcome(user_id, "off", 0)
        waiting = [
            (spec.name, self._review.waiting(spec.name, user_id=user_id))
            for spec in self._review.tasks
        ]
        waiting = [(task, count) for task, count in waiting if count]
        total = sum(count for _, count in waiting)
        if total < options.digest_min_items:
            return DigestOutcome(user_id, "too few", total)
        budget = self._review.budget(user_id)
        if budget.reached:
            return DigestOutcome(user_id, "budget reached", total)
        offered = min(total, budget.remaining)
        now = self._clock()
        with self._database.begin() as session:
            claimed, previous = queue_store.claim_digest(
                session=session, user_id=user_id, every=options.digest_every, items=offered, now=now
            )
        if not claimed:
            return DigestOutcome(user_id, "sent recently", total)
        content = digest_message(
            waiting, offered=offered, remaining=budget.remaining, budget=budget.budget
        )
        try:
            self._clients.for_team(self._team_id).chat_postMessage(
                channel=user_id,
                text=content.text,
                blocks=content.blocks,
                metadata={"event_type": DIGEST_EVENT, "event_payload": {"items": offered}},
            )
        except (SlackApiError, SlackClientError, OSError) as exc:
            with self._database.begin() as session:
                queue_store.release_digest(session=session, user_id=user_id, previous=previous)
            logger.warning(
                "could not send %s the review digest: %s; the next run tries again", user_id, exc
            )
            return DigestOutcome(user_id, "failed", total, offered)
        logger.info("sent %s the review digest: %d waiting, %d offered", user_id, total, offered)
        return DigestOutcome(user_id, "sent", total, offered)
