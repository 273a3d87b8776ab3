"""Calibration: temperature scaling, and how far confidences are from accuracy.

A fine-tuned network's softmax is typically over-confident: of the messages it calls spam
"with 99%", far fewer than 99% are. Temperature scaling (Guo et al., 2017, "On Calibration of
Modern Neural Networks") divides the logits by one scalar ``T`` fitted on held-out data by
minimising the negative log-likelihood; it never changes which label wins, only how sure the
model says it is. bertbot fits ``T`` on each model's validation split at training time and
bakes it into the exported ``probabilities``, so every threshold downstream (alerts, the
review queue, drift estimates) reads calibrated numbers.

NumPy only (the plot imports matplotlib lazily): no TensorFlow.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

ECE_BINS = 15
# The search range of T. Fine-tuned networks are over-confident (T > 1); T < 1 sharpens an
# under-confident model, but a small validation split with one or two errors would push it
# towards 0 and make every served probability ~1.0, so it is bounded at 0.5.
MIN_TEMPERATURE = 0.5
MAX_TEMPERATURE = 20.0


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    """Row-wise softmax of ``logits / temperature`` (float64, numerically stable)."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return np.asarray(e / e.sum(axis=1, keepdims=True))


def negative_log_likelihood(logits: np.ndarray, y: np.ndarray, temperature: float) -> float:
    """Mean NLL of the true classes under ``softmax(logits / temperature)``."""
    z = np.asarray(logits, dtype=np.float64) / float(temperature)
    z = z - z.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(z).sum(axis=1))
    return float(np.mean(log_norm - z[np.arange(len(y)), y]))


def fit_temperature(logits: np.ndarray, y: Sequence[int] | np.ndarray) -> float:
    """The temperature that minimises the NLL of ``y`` (golden-section search on log T).

    The NLL of temperature scaling is convex in 1/T, so it is unimodal in log T and a
    golden-section search finds its minimum without gradients or SciPy.

    Args:
        logits: [n, k] raw logits of held-out examples.
        y: [n] their true class indices.

    Returns:
        T in [MIN_TEMPERATURE, MAX_TEMPERATURE]; 1.0 for fewer than 2 examples or when every
        example is classified right (then the NLL falls all the way to T -> 0: the split holds
        no evidence of how over-confident the model is).
    """
    logits = np.asarray(logits, dtype=np.float64)
    y = np.asarray(y, dtype=int)
    if logits.ndim != 2 or len(logits) != len(y):
        raise ValueError(f"logits {logits.shape} do not match {len(y)} labels")
    if len(y) < 2 or bool((logits.argmax(axis=1) == y).all()):
        return 1.0
    low, high = np.log(MIN_TEMPERATURE), np.log(MAX_TEMPERATURE)
    ratio = (np.sqrt(5.0) - 1.0) / 2.0

    def loss(log_t: float) -> float:
        return negative_log_likelihood(logits, y, float(np.exp(log_t)))

    a, b = low, high
    c, d = b - ratio * (b - a), a + ratio * (b - a)
    fc, fd = loss(c), loss(d)
    for _ in range(80):  # (0.618^80) * 6 ~ 1e-16: far below any meaningful digit of T
        if fc < fd:
            b, d, fd = d, c, fc
            c = b - ratio * (b - a)
            fc = loss(c)
        else:
            a, c, fc = c, d, fd
            d = a + ratio * (b - a)
            fd = loss(d)
    return float(np.exp((a + b) / 2.0))


def expected_calibration_error(
    probabilities: np.ndarray, y: Sequence[int] | np.ndarray, bins: int = ECE_BINS
) -> float:
    """ECE: the confidence-accuracy gap averaged over equal-width confidence bins.

    ``sum_b |B_b|/n * |accuracy(B_b) - mean confidence(B_b)|`` over ``bins`` equal-width bins
    of the top-class probability (Naeini et al., 2015; Guo et al., 2017).
    """
    probabilities = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(y, dtype=int)
    if len(y) == 0:
        raise ValueError("cannot compute ECE on an empty set")
    confidence = probabilities.max(axis=1)
    correct = (probabilities.argmax(axis=1) == y).astype(np.float64)
    # Bin b holds (b/bins, (b+1)/bins]; a confidence of exactly 0 goes to the first bin.
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    total = 0.0
    for b in range(bins):
        members = index == b
        if members.any():
            total += members.sum() * abs(correct[members].mean() - confidence[members].mean())
    return float(total / len(y))


def brier_score(probabilities: np.ndarray, y: Sequence[int] | np.ndarray) -> float:
    """Mean squared distance between the probability vector and the one-hot truth."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(y, dtype=int)
    one_hot = np.eye(probabilities.shape[1])[y]
    return float(np.mean(np.sum((probabilities - one_hot) ** 2, axis=1)))


def reliability_bins(
    probabilities: np.ndarray, y: Sequence[int] | np.ndarray, bins: int = ECE_BINS
) -> list[dict[str, float]]:
    """Per confidence bin: its range, count, mean confidence and accuracy (empty bins left out)."""
    probabilities = np.asarray(probabilities, dtype=np.float64)
    y = np.asarray(y, dtype=int)
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == y
    index = np.clip(np.ceil(confidence * bins).astype(int) - 1, 0, bins - 1)
    rows = []
    for b in range(bins):
        members = index == b
        if members.any():
            rows.append(
                {
                    "low": b / bins,
                    "high": (b + 1) / bins,
                    "n": int(members.sum()),
                    "confidence": float(confidence[members].mean()),
                    "accuracy": float(correct[members].mean()),
                }
            )
    return rows


def calibration_metrics(
    probabilities: np.ndarray, y: Sequence[int] | np.ndarray, bins: int = ECE_BINS
) -> dict[str, Any]:
    """ECE, Brier score and the reliability bins of one set of predictions (JSON-ready)."""
    return {
        "ece": expected_calibration_error(probabilities, y, bins),
        "brier": brier_score(probabilities, y),
        "bins": reliability_bins(probabilities, y, bins),
    }


def plot_reliability_diagram(
    curves: dict[str, list[dict[str, float]]], path: Path, title: str
) -> None:
    """Accuracy against confidence per bin, one line per curve (e.g. before / after T)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 4.4))
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", linewidth=1, label="perfect")
    for name, rows in curves.items():
        if rows:
            ax.plot(
                [row["confidence"] for row in rows],
                [row["accuracy"] for row in rows],
                marker="o",
                label=name,
            )
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_xlabel("confidence (top-class probability)")
    ax.set_ylabel("accuracy")
    ax.set_title(title, fontsize=9)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def calibrate(
    validation_logits: np.ndarray,
    validation_y: Sequence[int],
    eval_logits: np.ndarray | None = None,
    eval_y: Sequence[int] = (),
) -> tuple[float, dict[str, Any]]:
    """Fit the temperature on the validation split and report what it did.

    Returns:
        (temperature, a JSON-ready record: ``temperature``, and per split
        (``validation``, ``eval`` when given) ``n``, ``ece_before``, ``ece_after``,
        ``brier_before``, ``brier_after``; at the top level the figures and reliability bins
        of the split shown in the diagram, ``split``: eval when there is one, since the
        temperature was fitted on validation).
    """
    temperature = fit_temperature(validation_logits, validation_y)
    record: dict[str, Any] = {"temperature": temperature, "bins": ECE_BINS}
    splits = {"validation": (validation_logits, validation_y)}
    if eval_logits is not None and len(eval_y):
        splits["eval"] = (eval_logits, eval_y)
    for name, (logits, y) in splits.items():
        before, after = softmax(logits), softmax(logits, temperature)
        record[name] = {
            "n": len(y),
            "ece_before": expected_calibration_error(before, y),
            "ece_after": expected_calibration_error(after, y),
            "brier_before": brier_score(before, y),
            "brier_after": brier_score(after, y),
        }
    shown = "eval" if "eval" in splits else "validation"
    logits, y = splits[shown]
    record.update(
        {
            "split": shown,
            "ece_before": record[shown]["ece_before"],
            "ece_after": record[shown]["ece_after"],
            "bins_before": reliability_bins(softmax(logits), y),
            "bins_after": reliability_bins(softmax(logits, temperature), y),
        }
    )
    return temperature, record
