"""Settings sections of the people around the model and of scale-out: appeals
(``BERTBOT_APPEALS__*``), the review queue (``BERTBOT_REVIEW__*``) and the scheduler's
leadership (``BERTBOT_SCHEDULER__*``). :class:`bertbot.settings.Settings` nests them.
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, model_validator

from bot.second_opinion_policy import SecondOpinionPolicy


class AppealSettings(BaseModel):
    """How often authors may appeal a flag (``BERTBOT_APPEALS__*``)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    per_day: int = Field(3, ge=1, le=100)


class ReviewSettings(BaseModel):
    """The active review queue, its digest and second opinions (``BERTBOT_REVIEW__*``).

    ``max_age_days``: messages older than this leave the queue. ``pool_size``: how many of
    the least sure candidates the selection looks at. ``digest_min_items``: a moderator is
    sent the digest when at least this many items wait for them, at most once per
    ``digest_every_hours`` (0: never). ``daily_budget``: labels a moderator is asked for per
    day (UTC); the digest offers what is left of it.

    How moderators' labels are checked: ``second_opinion_share`` of moderators' corrections
    (by a hash of each correction) and every correction contradicting a prediction at least
    ``second_opinion_confidence`` sure go to a second moderator.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_age_days: float = Field(14.0, gt=0.0, le=3650.0)
    pool_size: int = Field(500, ge=1, le=100_000)
    digest_min_items: int = Field(5, ge=1, le=10_000)
    digest_every_hours: float = Field(24.0, ge=0.0, le=24.0 * 365)
    daily_budget: int = Field(20, ge=1, le=10_000)
    second_opinion_share: float = Field(0.10, ge=0.0, le=1.0)
    second_opinion_confidence: float = Field(0.95, gt=0.0, le=1.0)

    def second_opinion_policy(self) -> SecondOpinionPolicy:
        return SecondOpinionPolicy(
            share=self.second_opinion_share, confidence=self.second_opinion_confidence
        )


class SchedulerSettings(BaseModel):
    """Which of several ``bertbot scheduler`` processes runs the jobs (``BERTBOT_SCHEDULER__*``).

    The leader holds a database lease for ``lease_seconds`` and renews it every
    ``heartbeat_seconds``; the others check as often and take over once it lapses.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    lease_seconds: float = Field(60.0, ge=1.0, le=3600.0)
    heartbeat_seconds: float = Field(15.0, gt=0.0, le=1200.0)

    @model_validator(mode="after")
    def _heartbeat_within_lease(self) -> SchedulerSettings:
        if self.heartbeat_seconds * 2 > self.lease_seconds:
            raise ValueError(
                "BERTBOT_SCHEDULER__HEARTBEAT_SECONDS must be at most half of "
                "BERTBOT_SCHEDULER__LEASE_SECONDS (a leader renews before its lease lapses)"
            )
        return self
