"""A rogue moderator on real data: do 150 corrections with negative and positive swapped
steer production, and is their author flagged?

    python bench/poisoning.py [--honest 300] [--rogue 150] [--first-minutes 9]
        [--retrain-minutes 6] [--rebuild-base]

1. Production is trained on the CrowdFlower topics other than the airline job (the same
   base as bench/active_learning.py, built once by bench/label_loop.py).
2. Honest: --honest random airline tweets with their true labels, from three moderators in
   turn, are stored as channel messages and corrected; a retrain (the product's defaults:
   label check, hold-outs, gate) runs. Production's macro-F1 on the airline tweets on the
   eval side that nobody labels is the honest figure.
3. Poisoned: the same honest corrections plus --rogue other airline tweets, negative or
   positive, labelled by one moderator with the two swapped; a retrain from the same base.
   Production must stay within 0.02 macro-F1 of the honest run, and `bertbot annotators
   --task sentiment --json` must flag the rogue and no honest moderator.
4. Rogue alone: the --rogue swapped corrections only; the retrain must not promote.

Writes bench/results/poisoning.json.
"""

from __future__ import annotations

import argparse
import random
import sys
from typing import Any

from common import save
from label_loop import (
    Tweets,
    add_corrections,
    base_home,
    bertbot,
    fresh_home,
    import_messages,
    macro_f1,
    outcome_row,
    production_of,
    retrain_in,
    say,
)

from storage.texts import split_of

HONEST = ("U0HONEST1", "U0HONEST2", "U0HONEST3")
ROGUE = "U0ROGUE"
SWAP = {"negative": "positive", "positive": "negative"}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--honest", type=int, default=300, help="honest corrections")
    parser.add_argument("--rogue", type=int, default=150, help="swapped corrections")
    parser.add_argument("--first-minutes", type=float, default=9.0)
    parser.add_argument("--retrain-minutes", type=float, default=6.0)
    parser.add_argument("--rebuild-base", action="store_true", help="retrain the base model")
    args = parser.parse_args()

    tweets = Tweets.load()
    rng = random.Random(7)
    shuffled = rng.sample(tweets.airline, len(tweets.airline))
    honest_rows = shuffled[: args.honest]
    rogue_rows = [r for r in shuffled[args.honest :] if r["label"] in SWAP][: args.rogue]
    labelled = {r["text"] for r in honest_rows + rogue_rows}
    measure = [
        r for r in tweets.airline if split_of(r["text"]) == "eval" and r["text"] not in labelled
    ]
    honest = [(r["text"], r["label"], HONEST[i % len(HONEST)]) for i, r in enumerate(honest_rows)]
    rogue = [(r["text"], SWAP[r["label"]], ROGUE) for r in rogue_rows]
    say(
        f"honest: {len(honest)} corrections from {len(HONEST)} moderators; rogue: {len(rogue)} "
        f"swapped; measured on {len(measure)} airline tweets nobody labels"
    )

    base = base_home(tweets, args.first_minutes, rebuild=args.rebuild_base)
    production = production_of(base)
    base_f1 = macro_f1(base, production.artifact_uri, measure)
    say(f"production {production.version}: airline macro-F1 {base_f1:.4f}")

    runs: dict[str, dict[str, Any]] = {}
    for name, labels in (
        ("honest", honest),
        ("poisoned", honest + rogue),
        ("rogue-alone", rogue),
    ):
        say(f"\n{name}: {len(labels)} corrections")
        run_home = fresh_home(base, f"poison-{name}")
        rows = [r for r in honest_rows + rogue_rows if r["text"] in {t for t, _, _ in labels}]
        message_ids = import_messages(run_home, rows, "airline")
        add_corrections(run_home, labels, message_ids)
        outcome = retrain_in(run_home, args.retrain_minutes)
        row = outcome_row(run_home, outcome, measure)
        row["annotators"] = bertbot(run_home, "annotators", "--task", "sentiment", "--json")
        flagged = sorted(a["annotator"] for a in _annotators(row["annotators"]) if a["flagged"])
        row["flagged"] = flagged
        say(
            f"  -> {row['status']}: production {row['production_after']} airline macro-F1 "
            f"{row['production_macro_f1']}; flagged {flagged or 'nobody'}"
        )
        runs[name] = row

    honest_f1 = runs["honest"]["production_macro_f1"]
    poisoned_f1 = runs["poisoned"]["production_macro_f1"]
    verdict = {
        "honest_macro_f1": honest_f1,
        "poisoned_macro_f1": poisoned_f1,
        "within_0_02_of_honest": abs(poisoned_f1 - honest_f1) <= 0.02 or poisoned_f1 >= honest_f1,
        "rogue_flagged": ROGUE in runs["poisoned"]["flagged"],
        "no_honest_flagged": not set(HONEST) & set(runs["poisoned"]["flagged"]),
        "rogue_alone_not_promoted": runs["rogue-alone"]["status"] != "succeeded",
    }
    path = save(
        "poisoning",
        {
            "honest": len(honest),
            "rogue": len(rogue),
            "measured_on": len(measure),
            "production": production.version,
            "production_macro_f1": round(base_f1, 4),
            "runs": runs,
            "verdict": verdict,
        },
    )
    say(f"\nverdict: {verdict}\nresults: {path}")
    checks = [v for k, v in verdict.items() if isinstance(v, bool)]
    return 0 if all(checks) else 1


def _annotators(payload: Any) -> list[dict[str, Any]]:
    if isinstance(payload, dict):
        return list(payload.get("annotators", []))
    return list(payload)


if __name__ == "__main__":
    sys.exit(main())
