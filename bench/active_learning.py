"""Active learning on real data: do 150 labels chosen by the review queue teach the model
more than 150 chosen at random?

    python bench/active_learning.py [--labels 150] [--seeds 3] [--pool 6000]
        [--first-minutes 9] [--retrain-minutes 6] [--rebuild-base]

1. Production is trained on the CrowdFlower topics other than the airline job (the loop
   bench's set-up; bench/label_loop.py builds it once and reuses it).
2. The airline tweets on the train side of the stable split (at most --pool, seeded) are
   stored as channel messages with production's predictions (`bertbot messages import`):
   the unlabelled traffic a moderator could be asked about. The airline tweets on the eval
   side are the measurement set: never stored, never labelled.
3. For each strategy, from a fresh copy of that home: `bertbot review next --task sentiment
   --limit N --strategy S --json` chooses N messages; each gets its true label as a
   moderator's correction; a retrain (warm start, the product's defaults) trains a
   candidate. Its macro-F1 on the measurement set minus production's is the strategy's
   gain. `active` runs once (it is deterministic); `random` runs --seeds times (seeds 0..);
   with --with-uncertainty, `uncertainty` once, for reference. The queue's candidate pool
   (BERTBOT_REVIEW__POOL_SIZE) is every stored tweet unless --queue-pool says otherwise.
4. Verdict: active's gain >= 1.3x the mean of random's gains.

Writes bench/results/active_learning.json.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
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


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--labels", type=int, default=150, help="labels per strategy")
    parser.add_argument("--seeds", type=int, default=3, help="random choices to average")
    parser.add_argument("--pool", type=int, default=6000, help="airline tweets stored")
    parser.add_argument(
        "--queue-pool",
        type=int,
        default=None,
        help="BERTBOT_REVIEW__POOL_SIZE (default: the whole pool, so random samples all of it)",
    )
    parser.add_argument(
        "--with-uncertainty", action="store_true", help="also run --strategy uncertainty"
    )
    parser.add_argument("--first-minutes", type=float, default=9.0)
    parser.add_argument("--retrain-minutes", type=float, default=6.0)
    parser.add_argument("--rebuild-base", action="store_true", help="retrain the base model")
    args = parser.parse_args()

    tweets = Tweets.load()
    pool = [r for r in tweets.airline if split_of(r["text"]) == "train"]
    pool = random.Random(0).sample(pool, min(args.pool, len(pool)))
    measure = [r for r in tweets.airline if split_of(r["text"]) == "eval"]
    label_of = {r["text"]: r["label"] for r in pool}
    say(
        f"seed: {len(tweets.seed)} non-airline tweets; pool: {len(pool)} airline tweets as "
        f"channel messages; measured on {len(measure)} airline tweets never labelled"
    )

    base = base_home(tweets, args.first_minutes, rebuild=args.rebuild_base)
    production = production_of(base)
    base_f1 = macro_f1(base, production.artifact_uri, measure)
    say(f"production {production.version}: airline macro-F1 {base_f1:.4f}")

    stored = fresh_home(base, "pool")
    started = time.monotonic()
    message_ids = import_messages(stored, pool, "airline")
    import_seconds = round(time.monotonic() - started, 1)

    plan: list[tuple[str, str, int | None]] = [("active", "active", None)]
    plan += [(f"random-{seed}", "random", seed) for seed in range(args.seeds)]
    if args.with_uncertainty:
        plan += [("uncertainty", "uncertainty", None)]
    queue_pool = args.queue_pool or len(pool)
    runs = []
    for name, strategy, seed in plan:
        say(f"\n{name}: choosing {args.labels} with --strategy {strategy}")
        run_home = fresh_home(stored, name)
        env = {"BERTBOT_REVIEW__POOL_SIZE": str(queue_pool)}
        started = time.monotonic()
        extra = ["--seed", str(seed)] if seed is not None else []
        items = bertbot(
            run_home,
            "review",
            "next",
            "--task",
            "sentiment",
            "--limit",
            str(args.labels),
            "--strategy",
            strategy,
            *extra,
            "--json",
            **env,
        )
        choose_seconds = round(time.monotonic() - started, 1)
        chosen = [item["text"] for item in items]
        if len(chosen) != args.labels:
            raise SystemExit(f"{name}: the queue offered {len(chosen)} of {args.labels}")
        mix: dict[str, int] = {}
        for text in chosen:
            mix[label_of[text]] = mix.get(label_of[text], 0) + 1
        add_corrections(
            run_home,
            [(text, label_of[text], "U0MODERATOR") for text in chosen],
            message_ids,
        )
        started = time.monotonic()
        outcome = retrain_in(run_home, args.retrain_minutes)
        row: dict[str, Any] = {
            "run": name,
            "strategy": strategy,
            "seed": seed,
            "choose_seconds": choose_seconds,
            "retrain_seconds": round(time.monotonic() - started),
            "chosen_labels": dict(sorted(mix.items())),
            "reasons": _reason_counts(items),
        }
        row |= outcome_row(run_home, outcome, measure)
        row["gain"] = round(row.get("candidate_macro_f1", base_f1) - base_f1, 4)
        say(
            f"  -> {row['status']}; candidate airline macro-F1 "
            f"{row.get('candidate_macro_f1')} (gain {row['gain']:+.4f}); "
            f"labels {row['chosen_labels']}"
        )
        runs.append(row)

    active_gain = next(r["gain"] for r in runs if r["strategy"] == "active")
    random_gains = [r["gain"] for r in runs if r["strategy"] == "random"]
    random_mean = statistics.fmean(random_gains)
    ratio = active_gain / random_mean if random_mean > 0 else float("inf")
    verdict = {
        "active_gain": active_gain,
        "random_mean_gain": round(random_mean, 4),
        "ratio": round(ratio, 3),
        "active_at_least_1_3x_random": random_mean > 0 and active_gain >= 1.3 * random_mean,
    }
    path = save(
        "active_learning",
        {
            "labels": args.labels,
            "pool": len(pool),
            "queue_pool": queue_pool,
            "measured_on": len(measure),
            "seed": len(tweets.seed),
            "production": production.version,
            "production_macro_f1": round(base_f1, 4),
            "import_seconds": import_seconds,
            "runs": runs,
            "verdict": verdict,
        },
    )
    say(f"\nverdict: {verdict}\nresults: {path}")
    return 0 if verdict["active_at_least_1_3x_random"] else 1


def _reason_counts(items: list[dict[str, Any]]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for item in items:
        key = str(item.get("reason", "")).split(":", 1)[0]
        counts[key] = counts.get(key, 0) + 1
    return counts


if __name__ == "__main__":
    sys.exit(main())
