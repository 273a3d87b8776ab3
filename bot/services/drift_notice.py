"""Telling admins about drift: one Slack message per drift episode.

Called after a drift check (the scheduler's job, or ``bertbot drift --notify``), never on a
listener thread. Each open episode whose admins were not told is claimed in the database
(:func:`storage.drift.claim_notice`: one conditional update, so two processes never both
post), posted to the drift channel mentioning the admins, then marked told. A failed post
releases the claim: the next check's run tries again while the episode lasts.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError

from bot.slack_clients import SlackClients, clients_of
from bot.ui.drift import drift_notice
from storage import drift
from storage.db import Database
from trainer.tasks import TaskSpec

logger = logging.getLogger(__name__)

DRIFT_EVENT = "bertbot_drift"
NOTICE_CLAIM = timedelta(minutes=2)  # far longer than one chat.postMessage takes


class DriftNotifier:
    """Posts the notice of every open drift episode not told yet. Thread-safe."""

    def __init__(
        self,
        database: Database,
        client: WebClient | SlackClients,
        tasks: Mapping[str, TaskSpec],
        *,
        channel: str,
        admins: Sequence[str] = (),
        team_id: str | None = None,
    ) -> None:
        """Say where to post.

        Args:
            database: Holds the episodes.
            client: The bot's Web API client, or each workspace's.
            tasks: The active tasks (others' episodes are left alone).
            channel: Where the notice goes (BERTBOT_DRIFT__CHANNEL or the moderators').
            admins: Slack user ids mentioned in it (BERTBOT_ADMINS).
            team_id: The channel's workspace (None: the home workspace).
        """
        self._database = database
        self._clients = clients_of(client)
        self._team_id = team_id
        self._tasks = dict(tasks)
        self._channel = channel
        self._admins = tuple(admins)

    def notify_pending(self, now: datetime | None = None) -> list[int]:
        """Post each pending episode's notice once.

        Returns:
            The episodes told now.

        Raises:
            StorageError: The database failed (nothing was posted for that episode).
        """
        with self._database.begin() as session:
            pending = drift.pending_notices(session=session, tasks=list(self._tasks), now=now)
        told = []
        for episode in pending:
            if self._notify(episode.id, episode.task, now):
                told.append(episode.id)
        return told

    def _notify(self, episode_id: int, task: str, now: datetime | None) -> bool:
        with self._database.begin() as session:
            if not drift.claim_notice(
                session=session, episode_id=episode_id, ttl=NOTICE_CLAIM, now=now
            ):
                return False  # told or being told elsewhere, or ended meanwhile
            checks = drift.episode_checks(session=session, episode_id=episode_id)
        if not checks:  # pragma: no cover - an episode is opened by a check
            return False
        content = drift_notice(self._tasks[task], checks[0], admins=self._admins)
        try:
            answer = self._clients.for_team(self._team_id).chat_postMessage(
                channel=self._channel,
                text=content.text,
                blocks=content.blocks,
                metadata={"event_type": DRIFT_EVENT, "event_payload": {"episode": episode_id}},
            )
        except (SlackApiError, SlackClientError, OSError) as exc:
            with self._database.begin() as session:
                drift.notice_failed(session=session, episode_id=episode_id, error=str(exc))
            logger.warning(
                "could not tell admins of drift episode %d (%s) in %s: %s; the next check "
                "tries again",
                episode_id,
                task,
                self._channel,
                exc,
            )
            return False
        with self._database.begin() as session:
            drift.notice_posted(
                session=session,
                episode_id=episode_id,
                channel=str(answer.get("channel") or self._channel),
                ts=answer.get("ts"),
                now=now,
            )
        logger.info("told admins of drift episode %d (%s) in %s", episode_id, task, self._channel)
        return True
