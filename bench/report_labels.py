"""RESULTS.md sections of the label benches (bench/active_learning.py, bench/poisoning.py)."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from common import RESULTS_DIR

Notes = Callable[[list[str], str, dict[str, Any] | None], None]


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


def _when(data: dict[str, Any]) -> str:
    machine = data["machine"]
    return f"{machine['date']}, {machine['cpu']} x{machine['cores']}"


def _f1(value: Any) -> str:
    return "" if value is None else f"{value:.4f}"


def _held(row: dict[str, Any]) -> str:
    """Held out of the retrain: the count and why (the run summary's ``held_out``)."""
    held = row.get("held_out") or {}
    reasons = ", ".join(f"{k} {v}" for k, v in sorted((held.get("reasons") or {}).items()))
    return f"{held.get('n', 0)} ({reasons})" if reasons else str(held.get("n", 0))


def active_learning(lines: list[str], notes: Notes) -> None:
    data = _load("active_learning")
    lines += ["## Active learning: which messages to ask about", ""]
    if data is None:
        lines += ["not run", ""]
        return
    lines += [
        f"Command: `python {data['command']}` ({_when(data)}). Production "
        f"v{data['production']} trained on {data['seed']} non-airline tweets (airline macro-F1 "
        f"{data['production_macro_f1']:.4f}); {data['pool']} airline tweets stored as channel "
        f"messages ({data['import_seconds']} s to import and predict); each strategy's "
        f"{data['labels']} choices get their true labels and one retrain; macro-F1 on "
        f"{data['measured_on']} airline tweets nobody labels.",
        "",
        "| run | labels chosen | why chosen | retrain | candidate macro-F1 | gain | time |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in data["runs"]:
        labels = ", ".join(f"{k} {v}" for k, v in row["chosen_labels"].items())
        reasons = ", ".join(f"{k} {v}" for k, v in row["reasons"].items())
        lines.append(
            f"| {row['run']} | {labels} | {reasons} | {row['status']} | "
            f"{_f1(row.get('candidate_macro_f1'))} | **{row['gain']:+.4f}** | "
            f"{row['choose_seconds']:.0f} s + {row['retrain_seconds'] / 60:.1f} min |"
        )
    verdict = data["verdict"]
    lines += [
        "",
        f"Verdict: active gain {verdict['active_gain']:+.4f} vs random's mean "
        f"{verdict['random_mean_gain']:+.4f}: **{verdict['ratio']:.2f}x** (target ≥ 1.3x): "
        f"{'met' if verdict['active_at_least_1_3x_random'] else 'not met'}.",
        "",
    ]
    notes(lines, "active_learning", data)


def poisoning(lines: list[str], notes: Notes) -> None:
    data = _load("poisoning")
    lines += ["## A rogue moderator: swapped labels", ""]
    if data is None:
        lines += ["not run", ""]
        return
    lines += [
        f"Command: `python {data['command']}` ({_when(data)}). Production "
        f"v{data['production']} from the non-airline tweets (airline macro-F1 "
        f"{data['production_macro_f1']:.4f}); {data['honest']} honest airline corrections from "
        f"three moderators; {data['rogue']} from one moderator with negative and positive "
        f"swapped; macro-F1 on {data['measured_on']} airline tweets nobody labels.",
        "",
        "| run | retrain | held out | production after | its macro-F1 | flagged |",
        "|---|---|---|---|---|---|",
    ]
    for name, row in data["runs"].items():
        lines.append(
            f"| {name} | {row['status']} | {_held(row)} | v{row['production_after']} | "
            f"**{_f1(row['production_macro_f1'])}** | {', '.join(row['flagged']) or 'nobody'} |"
        )
    verdict = data["verdict"]
    lines += [
        "",
        f"Verdict: poisoned {verdict['poisoned_macro_f1']:.4f} vs honest "
        f"{verdict['honest_macro_f1']:.4f} (within 0.02: {verdict['within_0_02_of_honest']}); "
        f"rogue flagged: {verdict['rogue_flagged']}; no honest moderator flagged: "
        f"{verdict['no_honest_flagged']}; the rogue alone not promoted: "
        f"{verdict['rogue_alone_not_promoted']}.",
        "",
    ]
    notes(lines, "poisoning", data)
