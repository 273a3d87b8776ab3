"""Classification metrics (scikit-learn), the confusion-matrix plot and the model card."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import (
    accuracy_score,
    confusion_matrix,
    f1_score,
    precision_recall_fscore_support,
)


def classification_metrics(
    y_true: Sequence[str],
    y_pred: Sequence[str],
    labels: Sequence[str],
    sample_weight: Sequence[float] | None = None,
) -> dict[str, Any]:
    """Per-class precision/recall/F1, macro and weighted F1, accuracy and the confusion matrix.

    Args:
        y_true: Gold labels.
        y_pred: Predicted labels, same length.
        labels: The task's label order (rows/columns of the confusion matrix).
        sample_weight: Per-example weights (counts and the matrix are then weighted sums).

    Returns:
        A JSON-ready dict with ``macro_f1``, ``weighted_f1``, ``accuracy``, ``per_class``
        (label -> precision, recall, f1, support), ``confusion_matrix`` (rows = true labels)
        ``labels`` and ``n``.
    """
    if len(y_true) != len(y_pred):
        raise ValueError(f"{len(y_true)} gold labels but {len(y_pred)} predictions")
    if not y_true:
        raise ValueError("cannot compute metrics on an empty set")
    label_list = list(labels)
    weight = None if sample_weight is None else np.asarray(sample_weight, dtype=float)
    precision, recall, f1, support = precision_recall_fscore_support(
        y_true, y_pred, labels=label_list, zero_division=0, sample_weight=weight
    )
    return {
        "n": len(y_true),
        "labels": label_list,
        "accuracy": float(accuracy_score(y_true, y_pred, sample_weight=weight)),
        "macro_f1": float(
            f1_score(
                y_true,
                y_pred,
                labels=label_list,
                average="macro",
                zero_division=0,
                sample_weight=weight,
            )
        ),
        "weighted_f1": float(
            f1_score(
                y_true,
                y_pred,
                labels=label_list,
                average="weighted",
                zero_division=0,
                sample_weight=weight,
            )
        ),
        "per_class": {
            label: {
                "precision": float(precision[i]),
                "recall": float(recall[i]),
                "f1": float(f1[i]),
                "support": int(support[i]) if weight is None else round(float(support[i]), 3),
            }
            for i, label in enumerate(label_list)
        },
        "confusion_matrix": confusion_matrix(y_true, y_pred, labels=label_list).tolist(),
    }


def format_report(metrics: Mapping[str, Any]) -> str:
    """A plain-text table of the metrics, for the terminal."""
    labels = metrics["labels"]
    width = max(10, *(len(label) for label in labels))
    lines = [f"{'':<{width}}  precision  recall     f1  support"]
    for label in labels:
        row = metrics["per_class"][label]
        lines.append(
            f"{label:<{width}}  {row['precision']:9.3f}  {row['recall']:6.3f}  {row['f1']:5.3f}"
            f"  {row['support']:7d}"
        )
    lines.append("")
    lines.append(f"{'accuracy':<{width}}  {metrics['accuracy']:.4f}  (n={metrics['n']})")
    lines.append(f"{'macro F1':<{width}}  {metrics['macro_f1']:.4f}")
    lines.append(f"{'weighted F1':<{width}}  {metrics['weighted_f1']:.4f}")
    lines.append("")
    lines.append("confusion matrix (rows: true, columns: predicted)")
    lines.append(" " * (width + 2) + " ".join(f"{label[:8]:>8}" for label in labels))
    for label, row in zip(labels, metrics["confusion_matrix"], strict=True):
        lines.append(f"{label:<{width}}  " + " ".join(f"{count:8d}" for count in row))
    return "\n".join(lines)


def plot_confusion_matrix(metrics: Mapping[str, Any], path: Path, title: str) -> None:
    """Write the confusion matrix as a PNG (row-normalised colours, raw counts as text)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = metrics["labels"]
    counts = np.asarray(metrics["confusion_matrix"], dtype=float)
    rows = counts.sum(axis=1, keepdims=True)
    share = np.divide(counts, rows, out=np.zeros_like(counts), where=rows > 0)
    size = 1.2 + 1.1 * len(labels)
    figure, axes = plt.subplots(figsize=(size + 1, size))
    image = axes.imshow(share, cmap="Blues", vmin=0, vmax=1)
    axes.set_xticks(range(len(labels)), labels=labels, rotation=30, ha="right")
    axes.set_yticks(range(len(labels)), labels=labels)
    axes.set_xlabel("predicted")
    axes.set_ylabel("true")
    axes.set_title(title, fontsize=10)
    for i in range(len(labels)):
        for j in range(len(labels)):
            axes.text(
                j,
                i,
                f"{int(counts[i, j])}",
                ha="center",
                va="center",
                color="white" if share[i, j] > 0.5 else "black",
            )
    figure.colorbar(image, ax=axes, fraction=0.046, pad=0.04, label="share of true row")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


def model_card(
    *,
    task: str,
    version: str,
    labels: Sequence[str],
    base_encoder: Mapping[str, Any],
    hyperparameters: Mapping[str, Any],
    data: Mapping[str, Any],
    metrics: Mapping[str, Any],
    training: Mapping[str, Any],
) -> str:
    """A Markdown model card: what the model is, what it was trained on, how well it does."""
    eval_metrics = metrics.get("eval") or {}
    lines = [
        f"# {task} classifier, version {version}",
        "",
        f"Labels: {', '.join(labels)}. Input: raw text (UTF-8); the SavedModel's "
        "`serving_default` signature maps a batch of strings to per-label probabilities.",
        "",
        "## Base encoder",
        "",
        "```json",
        json.dumps(dict(base_encoder), indent=2, sort_keys=True, default=str),
        "```",
        "",
        "## Data",
        "",
        "```json",
        json.dumps(dict(data), indent=2, sort_keys=True, default=str),
        "```",
        "",
        "## Hyper-parameters",
        "",
        "```json",
        json.dumps(dict(hyperparameters), indent=2, sort_keys=True, default=str),
        "```",
        "",
        "## Training",
        "",
        "```json",
        json.dumps(dict(training), indent=2, sort_keys=True, default=str),
        "```",
        "",
    ]
    if eval_metrics:
        lines += [
            "## Held-out evaluation",
            "",
            "```",
            format_report(eval_metrics),
            "```",
            "",
            "![confusion matrix](confusion_matrix.png)",
            "",
        ]
    calibration = metrics.get("calibration")
    if calibration:
        lines += (
            ["## Calibration", ""]
            + calibration_lines(calibration)
            + [
                "",
                "![reliability diagram](reliability_diagram.png)",
                "",
            ]
        )
    return "\n".join(lines)


def calibration_lines(calibration: Mapping[str, Any]) -> list[str]:
    """How sure the model says it is against how often it is right, before and after T."""
    lines = [
        f"Probabilities are `softmax(logits / T)` with T = {calibration['temperature']:.3f}, "
        "fitted on the validation split (temperature scaling: the winning label never "
        f"changes). ECE over {calibration.get('bins', 15)} equal-width confidence bins:",
        "",
        "| split | n | ECE raw | ECE calibrated | Brier raw | Brier calibrated |",
        "|---|---|---|---|---|---|",
    ]
    for split in ("validation", "eval"):
        row = calibration.get(split)
        if row:
            lines.append(
                f"| {split} | {row['n']} | {row['ece_before']:.4f} | {row['ece_after']:.4f} "
                f"| {row['brier_before']:.4f} | {row['brier_after']:.4f} |"
            )
    return lines
