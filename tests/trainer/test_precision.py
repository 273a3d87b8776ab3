"""Serving precision: the rule that picks it from measured figures, its record in encoder.json,
the measurement on the tiny encoder, and exports following the record."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

import pytest

from trainer.encoder import EncoderImportError, load_encoder_info
from trainer.encoder.info import record_precision
from trainer.encoder.precision import (
    CandidateFigures,
    PrecisionChoice,
    PrecisionRule,
    choose_precision,
)

FLOAT32 = CandidateFigures(
    "float32", "float32", single_p50_ms=10.0, batch32_per_s=100.0, max_abs_diff=0.0,
    argmax_agreement=1.0, warmup_s=1.0,
)  # fmt: skip


def figures(name: str, *, single: float, batch: float, diff: float = 0.005, agree: float = 1.0):
    weights = "bfloat16" if name.startswith("bfloat16") else "float32"
    return CandidateFigures(
        name,
        weights,
        jit="xla" in name,
        single_p50_ms=single,
        batch32_per_s=batch,
        max_abs_diff=diff,
        argmax_agreement=agree,
        warmup_s=1.0,
    )


def test_the_rule_picks_the_fastest_candidate_that_agrees():
    verdict = choose_precision(
        [
            FLOAT32,
            figures("bfloat16", single=8.0, batch=150.0),  # 1.37x
            figures("float32+xla", single=7.0, batch=130.0),  # 1.36x
        ]
    )

    assert verdict.choice == "bfloat16"
    assert verdict.reason.startswith("bfloat16: the fastest candidate that agrees")
    assert verdict.speedups["bfloat16"] == pytest.approx(1.369, abs=1e-3)
    assert "float32+xla agrees" in verdict.reason


def test_the_rule_refuses_a_faster_candidate_that_disagrees():
    off_probabilities = figures("bfloat16", single=5.0, batch=300.0, diff=0.05)
    other_class = figures("float32+xla", single=6.0, batch=250.0, diff=0.001, agree=0.98)
    slower_agreeing = figures("bfloat16+xla", single=8.0, batch=120.0)

    verdict = choose_precision([FLOAT32, off_probabilities, other_class, slower_agreeing])

    assert verdict.choice == "bfloat16+xla"
    assert "bfloat16 refused: disagrees with float32" in verdict.reason
    assert "float32+xla refused: disagrees" in verdict.reason
    only_disagreeing = choose_precision([FLOAT32, off_probabilities, other_class])
    assert only_disagreeing.choice == "float32"
    assert only_disagreeing.reason.startswith("float32: no candidate both agrees")


def test_the_rule_keeps_float32_for_noise_a_one_sided_win_or_a_broken_candidate():
    noise = figures("bfloat16", single=9.8, batch=102.0)  # 1.02x: within the noise
    one_sided = figures("float32+xla", single=5.0, batch=80.0)  # 1.58x, but batches 0.8x
    broken = CandidateFigures("bfloat16+xla", "bfloat16", True, error="XLA failed")

    verdict = choose_precision([FLOAT32, noise, one_sided, broken])

    assert verdict.choice == "float32"
    assert "bfloat16 not worth it" in verdict.reason
    assert "float32+xla refused" in verdict.reason and "slower than float32 at one size" in (
        verdict.reason
    )
    assert "bfloat16+xla not usable (XLA failed)" in verdict.reason
    looser = PrecisionRule(min_speedup=1.01)
    assert choose_precision([FLOAT32, noise], looser).choice == "bfloat16"


def test_the_rule_needs_float32_as_its_reference():
    with pytest.raises(ValueError, match="float32 must be measured"):
        choose_precision([figures("bfloat16", single=5.0, batch=300.0)])
    with pytest.raises(ValueError, match="float32 must be measured"):
        choose_precision([replace(FLOAT32, error="out of memory")])


@pytest.fixture
def encoder_copy(tiny_encoder_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "tiny-bert"
    shutil.copytree(tiny_encoder_dir, target)
    return target


def choice_of(weights: str) -> PrecisionChoice:
    candidates = (FLOAT32, figures("bfloat16", single=8.0, batch=150.0))
    verdict = choose_precision(candidates)
    return PrecisionChoice(
        choice=weights,
        weights=weights,  # type: ignore[arg-type]
        reason=verdict.reason,
        candidates=candidates,
        threads=2,
        cpu="Test CPU",
        cpu_bfloat16=False,
        texts=64,
        measured_at="2026-01-01 00:00 UTC",
    )


def test_the_choice_is_stored_in_encoder_json_and_read_back(encoder_copy: Path):
    assert load_encoder_info(encoder_copy).serving_precision is None
    assert load_encoder_info(encoder_copy).serving_weights == "float32"

    record_precision(encoder_copy, choice_of("bfloat16"))

    info = load_encoder_info(encoder_copy)
    assert info.serving_precision == choice_of("bfloat16")
    assert info.serving_weights == "bfloat16"
    data = json.loads((encoder_copy / "encoder.json").read_text())
    assert data["name"] == "tiny-bert"  # the rest of encoder.json is kept
    assert data["serving_precision"]["candidates"][1]["batch32_per_s"] == 150.0
    assert [p.name for p in encoder_copy.iterdir() if p.name.startswith(".")] == []
    summary = "\n".join(info.serving_precision.summary())
    assert "serving precision: bfloat16" in summary and "bfloat16 agrees" in summary


def test_a_malformed_record_is_refused(encoder_copy: Path):
    data = json.loads((encoder_copy / "encoder.json").read_text())
    data["serving_precision"] = {"choice": "int4", "weights": "int4"}
    (encoder_copy / "encoder.json").write_text(json.dumps(data))

    with pytest.raises(EncoderImportError, match="malformed"):
        load_encoder_info(encoder_copy)


def test_serving_exports_use_the_recorded_choice(
    encoder_copy: Path, caplog: pytest.LogCaptureFixture
):
    from trainer.model import encoder_handles
    from trainer.train import TrainConfig

    config = TrainConfig(labels=("a", "b"), encoder_dir=str(encoder_copy))

    def serving_encoder() -> str:
        return Path(encoder_handles(config, role="serve")[1]).name

    assert serving_encoder() == "encoder"  # not measured: float32
    record_precision(encoder_copy, choice_of("bfloat16"))
    assert serving_encoder() == "encoder_bf16_serving"
    # Measured on another CPU: still followed, with a warning that says how to measure here.
    assert "was measured on Test CPU" in caplog.text and "tune-precision" in caplog.text
    record_precision(encoder_copy, choice_of("float32"))
    assert serving_encoder() == "encoder"
    forced = replace(config, serving_precision="bfloat16")
    assert Path(encoder_handles(forced, role="serve")[1]).name == "encoder_bf16_serving"
    # Training's mixed precision does not follow the serving record.
    assert Path(encoder_handles(config, role="train")[1]).name == "encoder_bf16"


def test_tune_precision_measures_every_candidate_and_records_the_choice(encoder_copy: Path):
    from trainer.encoder.tuning import tune_precision

    messages: list[str] = []
    choice = tune_precision(encoder_copy, rounds=1, progress=messages.append)

    assert [c.name for c in choice.candidates] == ["float32", "bfloat16"]
    reference, bfloat16 = choice.candidates
    assert reference.max_abs_diff == 0.0 and reference.argmax_agreement == 1.0
    assert bfloat16.error is None
    assert 0 < bfloat16.max_abs_diff < 0.5  # the tiny random encoder: bfloat16 moves it
    for figures_ in choice.candidates:
        assert figures_.single_p50_ms and figures_.single_p50_ms > 0
        assert figures_.batch32_per_s and figures_.batch32_per_s > 0
    assert choice.choice in ("float32", "bfloat16")
    assert choice.threads >= 1 and choice.texts == 64
    assert load_encoder_info(encoder_copy).serving_precision == choice
    assert "Timing round 1 of 1" in messages


def test_a_candidate_that_cannot_be_built_is_recorded_not_chosen(encoder_copy: Path):
    from trainer.encoder.tuning import tune_precision

    shutil.rmtree(encoder_copy / "encoder_bf16_serving")

    choice = tune_precision(encoder_copy, rounds=1)

    assert choice.choice == "float32"
    assert "re-import" in (choice.candidates[1].error or "")
    assert "bfloat16 not usable" in choice.reason
