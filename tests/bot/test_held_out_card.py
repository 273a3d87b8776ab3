"""The retrain result card says how many labels a run held out and why."""

from __future__ import annotations

from bot.ui.retrain import held_out_line
from trainer.decisions import GateDecision


def test_the_card_line_counts_held_out_labels_by_reason() -> None:
    decision = GateDecision(
        False,
        "rejected",
        snapshot={
            "held_out": {"n": 7, "reasons": {"flagged annotator": 5, "suspect": 2}},
            "marked_suspect": {"n": 30, "reason": "gate: no better than chance"},
            "label_check": {"ran": True, "flagged_annotators": ["U0ROGUE"]},
        },
    )
    line = held_out_line(decision)
    assert line is not None
    assert (
        "7 label(s) held out of training and the gate's eval (5 flagged annotator, 2 suspect)"
        in line
    )
    assert (
        "30 correction(s) of this batch held out as suspect (gate: no better than chance)" in line
    )
    assert "<@U0ROGUE>" in line and "bertbot review suspects" in line
    assert held_out_line(GateDecision(True, "ok", snapshot={"held_out": {"n": 0}})) is None
    assert held_out_line(None) is None
