"""Translate settings into the lower layers' configs (the entry point's job)."""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING

from bertbot.settings import Settings
from trainer.options import GateConfig, RetrainOptions

if TYPE_CHECKING:
    from bot.services.alert_outbox import AlertPolicy
    from bot.services.policy import PolicyDefaults
    from bot.services.review_queue import ReviewOptions
    from bot.services.roles import Roles
    from storage.db import Database
    from trainer.gate import Gate


def roles(settings: Settings, database: Database) -> Roles:
    """Admins and moderators: each workspace's stored roles, else ``BERTBOT_ADMINS`` and
    ``BERTBOT_MODERATORS`` (see :class:`bot.services.roles.Roles`)."""
    from bot.services.roles import Roles

    return Roles.from_database(database, admins=settings.admins, moderators=settings.moderators)


def gate_config(settings: Settings) -> GateConfig:
    """The gate's thresholds: every GateConfig field from its ``BERTBOT_GATE__*`` setting."""
    return GateConfig(**{f.name: getattr(settings.gate, f.name) for f in fields(GateConfig)})


def gate(settings: Settings) -> Gate:
    """The gate ``BERTBOT_GATE__IMPLEMENTATION`` names, with the configured thresholds."""
    from trainer.gate import load_gate

    return load_gate(settings.gate.implementation, gate_config(settings))


def retrain_options(
    settings: Settings,
    *,
    beside_serving: bool,
    threads: int | None = None,
    home: Path | None = None,
) -> RetrainOptions:
    """How retrains run.

    Args:
        settings: The configuration.
        beside_serving: The retrains share a process with the serving bot (``/retrain`` and
            ``serve --with-scheduler``): they get ``BERTBOT_RETRAIN__THREADS`` TensorFlow
            threads, leaving the other cores to serving. Otherwise (``bertbot retrain``,
            ``bertbot scheduler``, ``bertbot setup``) they use every core.
        threads: ``--threads N``: this many TensorFlow threads, wherever they run.
        home: Holds the models they write under ``home/models`` (default BERTBOT_HOME
            with BERTBOT_ARTIFACT_ROOT).
    """
    retrain = settings.retrain
    if threads is None and beside_serving:
        threads = retrain.threads
    return RetrainOptions(
        home=home or settings.home_dir,
        encoder_dir=settings.encoders_dir / settings.encoder,
        base_encoder=settings.encoder,
        gate=gate_config(settings),
        gate_implementation=settings.gate.implementation,
        max_minutes=retrain.max_minutes,
        min_new_labels=settings.gate.min_new_labels,
        keep_rejected=retrain.keep_rejected_artifacts,
        threads=threads,  # None: every core
        replay_examples=retrain.replay_examples,
        correction_share=retrain.correction_share,
        lease_ttl=timedelta(seconds=retrain.lease_seconds),
        train_overrides=dict(retrain.train_overrides),
        quality=settings.quality.options(),
        artifact_root=settings.models_dir if home is None else None,
    )


def alert_policy(settings: Settings) -> AlertPolicy:
    """When and where moderators are alerted, and the admin token ``remove`` deletes with."""
    from bot.services.alert_outbox import AlertPolicy

    token = settings.slack_admin_user_token
    return AlertPolicy(
        channel=settings.moderators_channel,
        threshold=settings.alert_threshold,
        reaction=settings.alert_reaction,
        retry_seconds=settings.alert_retry_seconds,
        admin_token=token.get_secret_value() if token is not None else None,
    )


def policy_defaults(settings: Settings) -> PolicyDefaults:
    """The workspace default policy: today's global settings."""
    from bot.services.policy import PolicyDefaults

    return PolicyDefaults(
        threshold=settings.alert_threshold,
        action=settings.alert_action,
        can_remove=settings.slack_admin_user_token is not None,
    )


def review_options(settings: Settings) -> ReviewOptions:
    """The review queue and its digest (``BERTBOT_REVIEW__*``)."""
    from bot.services.review_queue import ReviewOptions

    review = settings.review
    return ReviewOptions(
        max_age=timedelta(days=review.max_age_days),
        pool_size=review.pool_size,
        digest_min_items=review.digest_min_items,
        digest_every=timedelta(hours=review.digest_every_hours),
        daily_budget=review.daily_budget,
    )
