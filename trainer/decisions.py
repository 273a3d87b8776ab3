"""Values that cross from the learning loop into the bot and the CLI: typed, never dicts.

The gate's verdict (:class:`GateDecision`, stored as JSON with its training run) and a
retrain's progress (:class:`RetrainProgress`, saved with the run and shown on the ``/retrain``
card and the CLI's bar). Standard library only, so bot/ can read them without numpy or
TensorFlow.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any


@dataclass(frozen=True)
class Check:
    """One gate rule's outcome: its measured value against its threshold."""

    name: str
    passed: bool
    value: float
    threshold: float
    detail: str


@dataclass(frozen=True)
class GateDecision:
    """The verdict with every number behind it (stored with the training run).

    ``scope`` says where the gain was judged: ``"corrections"`` (the corrections' eval
    share, with the rest guarded) or ``"all"``. ``delta_macro_f1`` and ``p_improvement`` are
    measured there; ``candidate`` and ``production`` are the metrics on the whole eval set.
    ``snapshot`` summarises the labels the run used; ``superseded_by`` names the production
    version that replaced the one the candidate was judged against while it trained.
    """

    promote: bool
    reason: str
    checks: list[Check] = field(default_factory=list)
    eval_size: int = 0
    candidate: dict[str, Any] = field(default_factory=dict)
    production: dict[str, Any] | None = None
    delta_macro_f1: float = 0.0
    p_improvement: float | None = None
    class_f1_drops: dict[str, float] = field(default_factory=dict)
    corrections: dict[str, Any] | None = None
    scope: str = "all"
    rest: dict[str, Any] | None = None
    snapshot: dict[str, Any] | None = None
    superseded_by: str | None = None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> GateDecision | None:
        """Read a stored decision (None for a run that has none); unknown keys are ignored."""
        if not data:
            return None
        known = {f.name for f in fields(cls)}
        values = {key: value for key, value in data.items() if key in known}
        values["checks"] = [
            Check(**{k: c[k] for k in ("name", "passed", "value", "threshold", "detail")})
            for c in values.get("checks") or []
            if isinstance(c, Mapping)
        ]
        values.setdefault("promote", False)
        values.setdefault("reason", "")
        return cls(**values)

    @property
    def labels(self) -> list[str]:
        """The task's labels in the order the metrics list them."""
        return list(self.candidate.get("labels") or self.candidate.get("per_class") or [])


@dataclass(frozen=True)
class RetrainProgress:
    """Where a retrain is: its phase and, while training, the step and the time left.

    Attributes:
        phase: ``snapshot``, ``train`` (or the trainer's own phases), ``evaluate``, ``done``.
        message: A sentence for people.
        step: Training steps done (training phases only).
        total_steps: Training steps planned.
        eta_s: Seconds left, estimated.
        examples_per_s: Training speed.
    """

    phase: str
    message: str = ""
    step: int | None = None
    total_steps: int | None = None
    eta_s: float | None = None
    examples_per_s: float | None = None

    @property
    def fraction(self) -> float | None:
        """Share of training done, when known."""
        if self.step is None or not self.total_steps:
            return None
        return min(1.0, self.step / self.total_steps)

    @property
    def eta_known(self) -> bool:
        return self.eta_s is not None and not math.isnan(self.eta_s)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: Mapping[str, Any] | None) -> RetrainProgress | None:
        if not data or not isinstance(data.get("phase"), str):
            return None
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})
