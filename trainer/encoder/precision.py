"""Which precision serves on this CPU: the rule that picks it from measured figures, and the
record of the choice kept in ``encoder.json``.

Pure: no TensorFlow. :mod:`trainer.encoder.tuning` takes the measurements; this module only
decides, so the rule is tested with figures made up for the purpose.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Weights = Literal["float32", "bfloat16"]

REFERENCE = "float32"


@dataclass(frozen=True)
class Candidate:
    """One way to serve the encoder.

    Attributes:
        name: ``float32``, ``bfloat16``, ``float32+xla`` ...
        weights: The encoder's kernels: ``float32`` (``encoder/``) or ``bfloat16``
            (``encoder_bf16_serving/``, stored in bfloat16, multiplied in bfloat16).
        jit: The encoder body compiled with XLA (``jit_compile``); the tokenizer never is.
    """

    name: str
    weights: Weights
    jit: bool = False


CANDIDATES = (
    Candidate("float32", "float32"),
    Candidate("bfloat16", "bfloat16"),
)


@dataclass(frozen=True)
class CandidateFigures:
    """What one candidate measured on this CPU.

    Attributes:
        name: The candidate's name.
        weights: Its weights (see :class:`Candidate`).
        jit: Whether its encoder body was compiled with XLA.
        single_p50_ms: Median latency of one text per call.
        batch32_per_s: Texts per second, 32 per call.
        max_abs_diff: Largest difference of a class probability from float32's, over the texts.
        argmax_agreement: Share of texts whose most probable class is float32's.
        warmup_s: Time of the first calls (tracing, and compiling with XLA).
        error: Why it could not be measured (it is then never chosen).
    """

    name: str
    weights: Weights
    jit: bool = False
    single_p50_ms: float | None = None
    batch32_per_s: float | None = None
    max_abs_diff: float | None = None
    argmax_agreement: float | None = None
    warmup_s: float | None = None
    error: str | None = None


@dataclass(frozen=True)
class PrecisionRule:
    """How a candidate wins over float32.

    Attributes:
        max_abs_diff: Probabilities may move at most this much from float32's.
        min_argmax_agreement: At least this share of texts keeps float32's most probable class.
        min_speedup: The geometric mean of its single-text and batch-32 speed-ups over float32
            must reach this, so measurement noise never trades exactness for nothing.
        max_slowdown: Neither of the two may be slower than float32 by more than this factor
            (a win at one size must not be a loss at the other).
    """

    max_abs_diff: float = 0.02
    min_argmax_agreement: float = 0.99
    min_speedup: float = 1.05
    max_slowdown: float = 0.9


@dataclass(frozen=True)
class Verdict:
    """The rule's answer: the chosen candidate and why, and each candidate's speed-up."""

    choice: str
    reason: str
    speedups: dict[str, float] = field(default_factory=dict)


def speedups(figures: CandidateFigures, reference: CandidateFigures) -> tuple[float, float]:
    """Single-text and batch-32 speed-ups of a candidate over the reference (> 1: faster)."""
    assert figures.single_p50_ms and figures.batch32_per_s
    assert reference.single_p50_ms and reference.batch32_per_s
    return (
        reference.single_p50_ms / figures.single_p50_ms,
        figures.batch32_per_s / reference.batch32_per_s,
    )


def choose_precision(
    figures: Sequence[CandidateFigures], rule: PrecisionRule = PrecisionRule()
) -> Verdict:
    """The fastest candidate whose predictions agree with float32's; float32 otherwise.

    Speed is the geometric mean of the single-text and the batch-32 speed-ups over float32.

    Raises:
        ValueError: float32 was not measured (it is the reference every candidate is judged by).
    """
    by_name = {f.name: f for f in figures}
    reference = by_name.get(REFERENCE)
    if reference is None or reference.error or not reference.single_p50_ms:
        raise ValueError("float32 must be measured: every candidate is judged against it")
    notes: list[str] = []
    scores: dict[str, float] = {REFERENCE: 1.0}
    eligible: list[tuple[float, str]] = []
    for f in figures:
        if f.name == REFERENCE:
            continue
        if f.error:
            notes.append(f"{f.name} not usable ({f.error})")
            continue
        if f.max_abs_diff is None or f.argmax_agreement is None or not f.batch32_per_s:
            notes.append(f"{f.name} not measured")
            continue
        single, batch = speedups(f, reference)
        score = math.sqrt(single * batch)
        scores[f.name] = round(score, 3)
        speed = f"{score:.2f}x (single {single:.2f}x, batch-32 {batch:.2f}x)"
        if f.max_abs_diff > rule.max_abs_diff or f.argmax_agreement < rule.min_argmax_agreement:
            notes.append(
                f"{f.name} refused: disagrees with float32 (probabilities off by up to "
                f"{f.max_abs_diff:.4f}, limit {rule.max_abs_diff}; same class on "
                f"{f.argmax_agreement:.1%}, need {rule.min_argmax_agreement:.0%}) although {speed}"
            )
        elif min(single, batch) < rule.max_slowdown:
            notes.append(f"{f.name} refused: {speed}, slower than float32 at one size")
        elif score < rule.min_speedup:
            notes.append(f"{f.name} not worth it: {speed}, under {rule.min_speedup:.2f}x")
        else:
            notes.append(f"{f.name} agrees (max diff {f.max_abs_diff:.4f}) at {speed}")
            eligible.append((score, f.name))
    if eligible:
        _, choice = max(eligible)
        head = f"{choice}: the fastest candidate that agrees with float32"
    else:
        choice = REFERENCE
        head = "float32: no candidate both agrees with it and is faster"
    return Verdict(choice=choice, reason=head + "; " + "; ".join(notes), speedups=scores)


@dataclass(frozen=True)
class PrecisionChoice:
    """The serving precision measured for an encoder on one CPU, kept in ``encoder.json``.

    Attributes:
        choice: The chosen candidate's name.
        weights: Its weights (which encoder SavedModel serves).
        reason: Why, in a sentence a person can check against the figures.
        candidates: Every candidate's figures.
        threads: TensorFlow intra-op threads during the measurement (the CPU's cores).
        cpu: The CPU's model name.
        cpu_bfloat16: Whether the CPU's flags show bfloat16 in hardware (AMX or AVX512-BF16);
            elsewhere bfloat16 is emulated, still measured, and expected to lose.
        texts: How many texts were timed and compared.
        measured_at: When (UTC).
        rule: The thresholds the choice was made with.
    """

    choice: str
    weights: Weights
    reason: str
    candidates: tuple[CandidateFigures, ...]
    threads: int
    cpu: str
    cpu_bfloat16: bool
    texts: int
    measured_at: str
    rule: PrecisionRule = PrecisionRule()

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["candidates"] = [asdict(c) for c in self.candidates]
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> PrecisionChoice:
        """Raises KeyError or TypeError on a malformed record."""
        weights = data["weights"]
        if weights not in ("float32", "bfloat16"):
            raise TypeError(f"unknown serving weights {weights!r}")
        return cls(
            choice=str(data["choice"]),
            weights=weights,
            reason=str(data["reason"]),
            candidates=tuple(CandidateFigures(**c) for c in data["candidates"]),
            threads=int(data["threads"]),
            cpu=str(data["cpu"]),
            cpu_bfloat16=bool(data["cpu_bfloat16"]),
            texts=int(data["texts"]),
            measured_at=str(data["measured_at"]),
            rule=PrecisionRule(**data.get("rule", {})),
        )

    def summary(self) -> list[str]:
        """Lines for people: the choice, its reason, and a row per candidate."""
        lines = [
            f"serving precision: {self.choice} (measured {self.measured_at} on {self.cpu}, "
            f"{self.threads} threads, bfloat16 in hardware: "
            f"{'yes' if self.cpu_bfloat16 else 'no'}; {self.texts} texts)",
            f"why: {self.reason}",
        ]
        for f in self.candidates:
            if f.error:
                lines.append(f"  {f.name:<14} error: {f.error}")
                continue
            lines.append(
                f"  {f.name:<14} single p50 {f.single_p50_ms:7.2f} ms   batch-32 "
                f"{f.batch32_per_s:7.1f} texts/s   max prob diff {f.max_abs_diff:.4f}   "
                f"same class {f.argmax_agreement:.1%}   warm-up {f.warmup_s:.1f} s"
            )
        return lines
