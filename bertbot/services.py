"""Translate settings into the lower layers' configs (the entry point's job)."""

from __future__ import annotations

from dataclasses import fields
from datetime import timedelta

from bertbot.settings import Settings
from trainer.gate import GateConfig
from trainer.retrain import RetrainOptions


def gate_config(settings: Settings) -> GateConfig:
    """The gate's thresholds: every GateConfig field from its ``BERTBOT_GATE__*`` setting."""
    return GateConfig(**{f.name: getattr(settings.gate, f.name) for f in fields(GateConfig)})


def retrain_options(settings: Settings, *, threads: int | None = None) -> RetrainOptions:
    retrain = settings.retrain
    return RetrainOptions(
        home=settings.home_dir,
        encoder_dir=settings.encoders_dir / settings.encoder,
        base_encoder=settings.encoder,
        gate=gate_config(settings),
        max_minutes=retrain.max_minutes,
        min_new_labels=settings.gate.min_new_labels,
        keep_rejected=retrain.keep_rejected_artifacts,
        threads=threads if threads is not None else retrain.threads,
        lease_ttl=timedelta(seconds=retrain.lease_seconds),
        train_overrides=dict(retrain.train_overrides),
    )
