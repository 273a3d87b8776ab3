"""Explanations: how faithful the words are, and how long a "Why?" takes.

    python bench/explain.py [--tasks spam,sentiment] [--messages 200] [--quick]

For each task, the model of the quality bench ($BERTBOT_HOME/bench-models/<task>, else the
task's production model) explains held-out messages (the stable-hash eval split of
$BERTBOT_HOME/data/<task>.csv; a seeded sample of those with at least 4 words):

- faithfulness: deleting the 3 words with the largest positive attribution (the words that
  pushed the predicted label) lowers the predicted label's calibrated probability by how
  much, against deleting 3 words drawn at random (seeded) from the same message; the mean
  drop of each and their ratio (target: top-3 at least 2x random);
- latency of one explanation (integrated gradients, ``BERTBOT_EXPLAIN__STEPS`` steps in one
  batched call, plus the neighbour search), p50 and p95, one message at a time after a
  warm-up: what a "Why?" click costs on the listener's worker (target p95 <= 500 ms); and
  at 8 and 32 steps on the first 50 messages, to choose the setting;
- the completeness gap: |sum of attributions - (log-odds(text) - log-odds(baseline))|, the
  attributions being of the predicted label's calibrated log-odds; also relative to the
  change of log-odds.

A model exported before explanations existed (no ``explain`` signature or no neighbour
index) is re-exported at bench time into a scratch directory, its trained weights unchanged:
on a re-imported encoder (from the cached checkpoint, into the scratch directory) when its
encoder predates explanations, with a neighbour index of the task's training split (at most
``neighbour_index_size`` examples, stratified). The figures say whether that happened.
Writes bench/results/explain.json.
"""

from __future__ import annotations

import argparse
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from common import home, load_split, machine, save

from bertbot.settings import load_settings

MIN_WORDS = 4
DELETED = 3
OTHER_STEPS = (8, 32)  # latency only, on the first LATENCY_SAMPLE messages
LATENCY_SAMPLE = 50


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


def delete_words(text: str, spans: list[tuple[int, int]]) -> str:
    """The text without the given character spans (white space around them collapsed)."""
    kept, cursor = [], 0
    for start, end in sorted(spans):
        kept.append(text[cursor:start])
        cursor = max(cursor, end)
    kept.append(text[cursor:])
    return " ".join("".join(kept).split())


def _source_model(task: str, settings: Any) -> Path:
    bench_model = home() / "bench-models" / task
    if (bench_model / "saved_model.pb").is_file():
        return bench_model
    from storage import registry
    from storage.db import Database
    from trainer.artifact import resolve_artifact

    database = Database.connect(settings.db_url)
    try:
        with database.begin() as session:
            production = registry.get_alias(session=session, task=task)
    finally:
        database.dispose()
    if production is None:
        raise SystemExit(f"{task}: no bench model and no production model; run bench/quality.py")
    return resolve_artifact(settings.artifacts, production.artifact_uri)


def _explainable_encoder(settings: Any, scratch: Path) -> tuple[Path, bool]:
    """The configured encoder if it has the embedding-level functions, else a re-import."""
    from trainer.encoder import default_checkpoint_dir, import_hf_bert
    from trainer.encoder.info import load_encoder_info
    from trainer.tf_runtime import tf

    encoder = settings.encoders_dir / settings.encoder
    loaded = tf.saved_model.load(str(encoder / "encoder"))
    if hasattr(loaded, "call_with_embeddings"):
        return encoder, False
    info = load_encoder_info(encoder)
    out = scratch / "encoder"
    if not out.exists():
        print(f"{encoder} predates explanations: re-importing it into {out}", flush=True)
        checkpoint = default_checkpoint_dir(settings.cache_dir, progress=print)
        import_hf_bert(
            checkpoint,
            out,
            name=info.name,
            max_seq_length=info.max_seq_length,
            bfloat16_variant=False,
        )
    return out, True


def prepare_model(task: str, settings: Any, scratch: Path, train: list[Any]) -> tuple[Any, dict]:
    """Load the task's model; re-export it with explanations and an index where it lacks them."""
    from trainer.explain import NeighbourIndex
    from trainer.export import reexport
    from trainer.serving import SavedModelClassifier

    source = _source_model(task, settings)
    classifier = SavedModelClassifier.load(source, warm_up=False)
    has_signature = classifier.explains
    has_index = NeighbourIndex.load(source) is not None
    how: dict[str, Any] = {"model": str(source), "reexported": False, "encoder_reimported": False}
    if has_signature and has_index:
        return classifier, how
    encoder_dir, reimported = (None, False)
    if not has_signature:
        encoder_dir, reimported = _explainable_encoder(settings, scratch)
    out = scratch / f"model-{task}"
    shutil.rmtree(out, ignore_errors=True)
    started = time.monotonic()
    print(f"{task}: re-exporting {source} with explanations and an index", flush=True)
    reexport(
        source,
        out,
        serving_precision="float32",
        encoder_dir=encoder_dir,
        index_examples=train,
    )
    how |= {
        "reexported": True,
        "encoder_reimported": reimported,
        "reexport_seconds": round(time.monotonic() - started, 1),
    }
    return SavedModelClassifier.load(out, warm_up=False), how


def measure(classifier: Any, texts: list[str], options: Any, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    for text in texts[:2]:  # warm-up: traces the signature at a first few lengths
        classifier.explain(text, options)
    latencies, gaps, relative_gaps, cases = [], [], [], []
    steps_used: list[int] = []
    for text in texts:
        started = time.perf_counter()
        explanation = classifier.explain(text, options)
        latencies.append((time.perf_counter() - started) * 1000.0)
        gaps.append(abs(explanation.completeness_gap))
        steps_used.append(explanation.steps)
        moved = abs(explanation.log_odds - explanation.baseline_log_odds)
        relative_gaps.append(abs(explanation.completeness_gap) / max(moved, 1e-6))
        placed = [w for w in explanation.words if w.start is not None and w.end is not None]
        if len(placed) < MIN_WORDS:
            continue
        ranked = sorted(placed, key=lambda w: -w.attribution)[:DELETED]
        chosen = rng.sample(placed, DELETED)
        cases.append(
            {
                "text": text,
                "label": explanation.label,
                "probability": explanation.probability,
                "top": delete_words(text, [(w.start, w.end) for w in ranked]),
                "random": delete_words(text, [(w.start, w.end) for w in chosen]),
            }
        )
    deleted = classifier.predict([c["top"] for c in cases] + [c["random"] for c in cases])
    top_drops, random_drops = [], []
    for i, case in enumerate(cases):
        top_p = deleted[i].probabilities[case["label"]]
        random_p = deleted[len(cases) + i].probabilities[case["label"]]
        top_drops.append(case["probability"] - top_p)
        random_drops.append(case["probability"] - random_p)
    mean_top = statistics.fmean(top_drops) if top_drops else 0.0
    mean_random = statistics.fmean(random_drops) if random_drops else 0.0
    return {
        "messages": len(texts),
        "faithfulness": {
            "scored": len(cases),
            "mean_drop_top3": round(mean_top, 4),
            "mean_drop_random3": round(mean_random, 4),
            "ratio": round(mean_top / mean_random, 2) if mean_random > 0 else None,
            "top3_beats_random_share": round(
                sum(t > r for t, r in zip(top_drops, random_drops, strict=True))
                / max(1, len(cases)),
                3,
            ),
        },
        "steps_used": {
            "mean": round(statistics.fmean(steps_used), 1),
            "min": min(steps_used),
            "full_share": round(sum(s == options.steps for s in steps_used) / len(texts), 3),
        },
        "latency_ms": {
            "p50": round(_percentile(latencies, 50), 1),
            "p95": round(_percentile(latencies, 95), 1),
            "max": round(max(latencies), 1),
        },
        "completeness_gap": {
            "median": round(statistics.median(gaps), 4),
            "p95": round(_percentile(gaps, 95), 4),
            "relative_median": round(statistics.median(relative_gaps), 4),
            "relative_p95": round(_percentile(relative_gaps, 95), 4),
        },
        "examples": [
            {k: case[k] for k in ("text", "label", "top", "random")} for case in cases[:3]
        ],
    }


def latency_at(classifier: Any, texts: list[str], options: Any, steps: int) -> dict[str, float]:
    """p50 and p95 of one explanation at another step count (same texts and token budget,
    after a warm-up), and the mean steps the budget left."""
    other = replace(options, steps=steps)
    classifier.explain(texts[0], other)
    latencies, used = [], []
    for text in texts:
        started = time.perf_counter()
        used.append(classifier.explain(text, other).steps)
        latencies.append((time.perf_counter() - started) * 1000.0)
    return {
        "steps": steps,
        "steps_used_mean": round(statistics.fmean(used), 1),
        "p50": round(_percentile(latencies, 50), 1),
        "p95": round(_percentile(latencies, 95), 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tasks", default="spam,sentiment", help="comma-separated tasks")
    parser.add_argument("--messages", type=int, default=200, help="held-out messages per task")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--quick",
        action="store_true",
        help="smoke test: 20 messages per task, an index of 300 examples; writes "
        "bench/results/explain-quick.json instead",
    )
    parser.add_argument("--scratch", help="keep re-imported encoders and re-exports here")
    args = parser.parse_args()

    settings = load_settings()
    options = settings.explain.options()
    messages = 20 if args.quick else args.messages
    scratch = Path(args.scratch or tempfile.mkdtemp(prefix="bertbot-explain-bench-"))
    scratch.mkdir(parents=True, exist_ok=True)
    print(
        f"CPU: {machine()['cpu']}; {options.steps} steps per explanation, token budget "
        f"{options.token_budget}",
        flush=True,
    )
    results: dict[str, Any] = {}
    try:
        for task in [t.strip() for t in args.tasks.split(",") if t.strip()]:
            train, held_out = load_split(task)
            if args.quick:
                train = random.Random(args.seed).sample(train, min(len(train), 300))
            candidates = [e.text for e in held_out if len(e.text.split()) >= MIN_WORDS]
            texts = random.Random(args.seed).sample(candidates, min(messages, len(candidates)))
            classifier, how = prepare_model(task, settings, scratch, train)
            started = time.monotonic()
            figures = measure(classifier, texts, options, args.seed)
            figures["latency_other_steps"] = [
                latency_at(classifier, texts[:LATENCY_SAMPLE], options, steps)
                for steps in OTHER_STEPS
                if steps != options.steps
            ]
            figures |= how | {"seconds": round(time.monotonic() - started, 1)}
            results[task] = figures
            faith, latency = figures["faithfulness"], figures["latency_ms"]
            print(
                f"{task}: {faith['scored']} messages: mean drop of p(predicted) deleting the "
                f"top-3 words {faith['mean_drop_top3']:.4f} vs 3 random words "
                f"{faith['mean_drop_random3']:.4f} (ratio {faith['ratio']}, target >= 2); "
                f"'Why?' latency p50 {latency['p50']:.0f} ms, p95 {latency['p95']:.0f} ms "
                f"(target p95 <= 500); completeness gap median "
                f"{figures['completeness_gap']['median']:.4f}",
                flush=True,
            )
    finally:
        if not args.scratch:
            shutil.rmtree(scratch, ignore_errors=True)
    payload = {
        "steps": options.steps,
        "token_budget": options.token_budget,
        "top_words": options.top_words,
        "neighbours": options.neighbours,
        "quick": args.quick,
        "tasks": results,
    }
    path = save("explain-quick" if args.quick else "explain", payload)
    print(json.dumps({t: r["faithfulness"] | r["latency_ms"] for t, r in results.items()}))
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
