"""Translate settings into the lower layers' configs (the entry point's job)."""

from __future__ import annotations

from datetime import timedelta

from bertbot.settings import Settings
from trainer.gate import GateConfig
from trainer.retrain import RetrainOptions


def gate_config(settings: Settings) -> GateConfig:
    gate = settings.gate
    return GateConfig(
        min_delta=gate.min_delta,
        confidence=gate.confidence,
        chance_level=gate.chance_level,
        max_class_drop=gate.max_class_drop,
        min_eval=gate.min_eval,
        bootstrap_resamples=gate.bootstrap_resamples,
        seed=gate.seed,
        min_correction_eval=gate.min_correction_eval,
        max_regression=gate.max_regression,
    )


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
