"""Rewrite bench/RESULTS.md from bench/results/*.json (run by `make bench` after the benches).

python bench/report.py
"""

from __future__ import annotations

import json
import sys
from typing import Any

from common import RESULTS_DIR, ROOT
from report_labels import active_learning, poisoning


def _load(name: str) -> dict[str, Any] | None:
    path = RESULTS_DIR / f"{name}.json"
    return json.loads(path.read_text()) if path.exists() else None


NOTES_STAMP = "<!-- for the run of "


def notes_for(text: str, run_date: str | None) -> str | None:
    """The reading of a section, or None when it was written for another run.

    A notes file (bench/results/<name>-notes.md) is hand-written after looking at a run's
    figures and quotes them, so it starts with `<!-- for the run of <machine date> -->`. It is
    shown only while the section's figures still come from that run: after a re-run the old
    reading would quote figures that are no longer in the table.
    """
    first, _, rest = text.strip().partition("\n")
    if not first.startswith(NOTES_STAMP):
        return text.strip() if run_date is None else None
    stamp = first[len(NOTES_STAMP) :].removesuffix("-->").strip()
    if run_date is not None and stamp != run_date:
        return None
    return rest.strip()


def _notes(lines: list[str], name: str, data: dict[str, Any] | None = None) -> None:
    notes = RESULTS_DIR / f"{name}-notes.md"
    if not notes.exists():
        return
    run_date = data["machine"]["date"] if data else None
    text = notes_for(notes.read_text(), run_date)
    if text is None:
        lines += [
            f"_(The reading in `bench/results/{notes.name}` was written for an earlier run "
            "and is left out until it is rewritten for these figures.)_",
            "",
        ]
    else:
        lines += [text, ""]


SECTION_FILES = (
    "quality-spam",
    "quality-sentiment",
    "inference",
    "explain",
    "train-speed",
    "loop",
    "drift",
    "slack-http",
    "inbox",
    "throughput",
    "cores",
    "retrain-scale",
    "make-run",
    "calibration",
    "active_learning",
    "poisoning",
)


def from_other_runs(run: dict[str, Any], dates: dict[str, str]) -> list[str]:
    """The result files whose machine date falls outside the run (dates sort as strings)."""
    start, end = run["machine"]["date"], run.get("ended", "9999")
    return [name for name, date in dates.items() if not start <= date <= end]


def _run(lines: list[str]) -> None:
    run = _load("run")
    lines += ["## How this run was made", ""]
    if run is None:
        _notes(lines, "run")
        return
    failed = [s["name"] for s in run["steps"] if s["status"] != "ok"]
    if not run.get("finished"):
        outcome = "**did not finish** (interrupted; the table shows how far it got)"
    elif failed:
        outcome = f"**{len(failed)} step(s) did not pass: {', '.join(failed)}**"
    else:
        outcome = "every step passed (exit 0)"
    postgres = "with" if run.get("postgres") else "**without**"
    lines += [
        f"`make bench` (`python bench/run.py`, {postgres} PostgreSQL from `.ci/postgres.sh`) "
        f"started {_when(run)}, revision {run['revision']}, and ran "
        f"{run.get('seconds', 0) / 60:.0f} min: {outcome}.",
        "",
        "| step | command | minutes | result |",
        "|---|---|---|---|",
    ]
    for step in run["steps"]:
        minutes = f"{step['seconds'] / 60:.1f}" if "seconds" in step else ""
        result = step["status"] + (f" (exit {step['exit']})" if step.get("exit") else "")
        if "why" in step:
            result += f": {step['why']}"
        lines.append(f"| {step['name']} | `{step['command']}` | {minutes} | {result} |")
    lines.append("")
    dates = {
        name: data["machine"]["date"] for name in SECTION_FILES if (data := _load(name)) is not None
    }
    others = from_other_runs(run, dates)
    if others:
        lines += [
            "Sections from other runs (not part of this one): "
            + ", ".join(f"`{name}.json` ({dates[name]})" for name in others)
            + ".",
            "",
        ]
    _notes(lines, "run", run)


def _when(data: dict[str, Any]) -> str:
    machine = data["machine"]
    return f"{machine['date']}, {machine['cpu']} x{machine['cores']}"


def _quality(lines: list[str]) -> None:
    lines += ["## Quality (held-out splits)", ""]
    lines += [
        "| task | train / held out | fine-tuned BERT | TF-IDF + log. reg. | target | "
        "training time | examples/s | stopped by |",
        "|---|---|---|---|---|---|---|---|",
    ]
    commands = []
    for task, target in (
        ("spam", "F1(spam) ≥ 0.96 within 15 min"),
        ("sentiment", "macro-F1 ≥ 0.78 within 30 min"),
    ):
        data = _load(f"quality-{task}")
        if data is None:
            lines.append(f"| {task} | not run | | | {target} | | | |")
            continue
        bert, base = data["bert"], data["tfidf_logreg"]
        if task == "spam":
            spam_f1 = bert["per_class"]["spam"]["f1"]
            ours = f"F1(spam) **{spam_f1:.4f}**, macro-F1 {bert['macro_f1']:.4f}"
            theirs = (
                f"F1(spam) {base['per_class']['spam']['f1']:.4f}, macro-F1 {base['macro_f1']:.4f}"
            )
        else:
            ours = f"macro-F1 **{bert['macro_f1']:.4f}**"
            theirs = f"macro-F1 {base['macro_f1']:.4f}"
        lines.append(
            f"| {task} | {data['train_examples']} / {data['held_out_examples']} | {ours} | "
            f"{theirs} | {target} | {bert['train_seconds'] / 60:.1f} min | "
            f"{bert['examples_per_second']} | {bert['stopped_by']} |"
        )
        commands.append((data["command"], data["machine"]["date"], bert.get("peak_rss_mb")))
    lines.append("")
    for command, date, rss in commands:
        lines.append(f"- `python {command}` ({date}; training peak RSS {rss} MB)")
    lines.append("")


INFERENCE_ROWS = (
    ("dynamic (bertbot)", "bertbot as shipped ({precision})"),
    ("dynamic float32", "bertbot, float32"),
    ("dynamic bfloat16", "bertbot, bfloat16"),
    ("fixed 128 (tutorial)", "fixed 128 (tutorial, float32)"),
    ("pytorch float32", "PyTorch float32"),
    ("pytorch bfloat16", "PyTorch bfloat16 autocast"),
    ("tflite float32", "TFLite float32 (not shipped)"),
    ("tflite int8", "TFLite int8 dynamic range (not shipped)"),
    ("tfidf_logreg (floor)", "TF-IDF + log. reg. (floor)"),
)


def _inference(lines: list[str]) -> None:
    data = _load("inference")
    lines += ["## Inference speed and memory", ""]
    if data is None:
        lines += ["not run", ""]
        return
    precision = data.get("serving_precision", "bfloat16")
    models = data.get("models")
    lines += [
        f"Command: `python {data['command']}` ({_when(data)}), "
        + (f"models: {', '.join(f'{t} {n}' for t, n in models.items())}, " if models else "")
        + f"batch {data['batch']} (requests of {data.get('request_batch', 256)} texts, sorted "
        f"by length, each batch padded to its longest text), TensorFlow intra-op threads "
        f"{data.get('threads', '?')}, serving precision as shipped on this CPU: {precision}; "
        f"texts = the held-out splits; single = one text per call, "
        f"{data.get('single_calls', 300)} calls.",
        "",
    ]
    _precision(lines, data.get("precision"))
    peer = next((row["pytorch"] for row in data["tasks"].values() if "pytorch" in row), None)
    if peer:
        lines += [
            f"Peer: PyTorch {peer['torch']} + transformers {peer['transformers']} on the same "
            f"checkpoint, texts and batching, {peer['threads']} threads, "
            "`torch.inference_mode()`, the fast tokenizer padding each batch to its longest text "
            f"(timed, as bertbot's in-graph tokenizer is); head: {peer['head']} (speed only).",
            "",
        ]
    lines += [
        "| task | model | batched msg/s | single p50 ms | p95 ms | p99 ms | macro-F1 |",
        "|---|---|---|---|---|---|---|",
    ]
    for task, row in data["tasks"].items():
        for key, label in INFERENCE_ROWS:
            if key not in row:
                continue
            r = row[key]
            f1 = r.get("macro_f1")
            lines.append(
                f"| {task} ({row['texts']}) | {label.format(precision=precision)} | "
                f"{r['batched_per_s']} | {r['p50_ms']} | {r['p95_ms']} | {r['p99_ms']} | "
                f"{'' if f1 is None else f1} |"
            )
        lines.append(
            f"| {task} | **dynamic vs fixed** | **{row['speedup_batched']}x** | "
            f"**{row['speedup_single_p50']}x faster** | | | |"
        )
        if "vs_pytorch_best" in row:
            versus = row["vs_pytorch_best"]
            lines.append(
                f"| {task} | **bertbot as shipped vs PyTorch's best** | **{versus['batched']}x** "
                f"| **{versus['single_p50']}x** (>1: bertbot faster) | | | |"
            )
    verdict = data.get("int8_verdict")
    if verdict:
        usable = verdict["within_f1_limit"] and verdict["faster_batched"]
        lines += [
            "",
            f"int8 (TensorFlow Lite dynamic range, after the in-graph tokenizer): "
            f"{verdict['summary']}; macro-F1 within {verdict['max_f1_drop']} of float32 on "
            f"every task: {verdict['within_f1_limit']}; faster batched: "
            f"{verdict['faster_batched']}; **{'passes' if usable else 'fails'} the usability "
            "bar** (not shipped either way; see the reading below).",
        ]
    rss = data["rss_mb"]
    lines += [
        "",
        f"Load (checksums + load + warm-up): {data['load_seconds']} s. Resident "
        f"memory: {rss['start']} MB at start, {rss['tensorflow_imported']} MB with "
        f"TensorFlow, **{rss['both_models_loaded']} MB with both task models loaded** "
        "(target ≤ 1,500 MB).",
        "",
    ]
    _notes(lines, "inference", data)


def _explain(lines: list[str]) -> None:
    data = _load("explain")
    lines += ['## Explanations ("Why?")', ""]
    if data is None:
        lines += ["not run", ""]
        return
    lines += [
        f"Command: `python {data['command']}` ({_when(data)}); integrated gradients with "
        f"{data['steps']} steps in one batched call (fewer for long texts: a token budget of "
        f"{data.get('token_budget', 0)}), top {data['top_words']} words, "
        f"{data['neighbours']} neighbours. Faithfulness: the mean drop of the predicted "
        "label's probability when the 3 most positive words are deleted, against 3 random "
        "words of the same message (target: at least 2x). Latency: one explanation at a "
        "time, after a warm-up (target p95 <= 500 ms).",
        "",
        "| task | messages | drop, top-3 words | drop, 3 random words | ratio | top-3 beats "
        "random | p50 | p95 | other steps (p50 / p95) | completeness gap, median (relative) "
        "| model |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for task, row in data["tasks"].items():
        faith, latency = row["faithfulness"], row["latency_ms"]
        ratio = "–" if faith["ratio"] is None else f"**{faith['ratio']}x**"
        if row.get("encoder_reimported"):
            model = "re-exported at bench time on a re-imported encoder"
        elif row.get("reexported"):
            model = "re-exported at bench time (index added)"
        else:
            model = "as trained"
        others = ", ".join(
            f"{o['steps']}"
            + (f" (~{o['steps_used_mean']:.0f} used)" if "steps_used_mean" in o else "")
            + f": {o['p50']:.0f} / {o['p95']:.0f} ms"
            for o in row.get("latency_other_steps", [])
        )
        gap = row["completeness_gap"]
        relative = f" ({gap['relative_median']:.2%})" if "relative_median" in gap else ""
        if "steps_used" in row:
            task_name = f"{task} (~{row['steps_used']['mean']:.0f} steps used)"
        else:
            task_name = task
        lines.append(
            f"| {task_name} | {faith['scored']} | {faith['mean_drop_top3']:.4f} | "
            f"{faith['mean_drop_random3']:.4f} | {ratio} | "
            f"{faith['top3_beats_random_share']:.0%} | {latency['p50']:.0f} ms | "
            f"**{latency['p95']:.0f} ms** | {others or '–'} | {gap['median']:.4f}{relative} "
            f"| {model} |"
        )
    lines.append("")
    _notes(lines, "explain", data)


def _precision(lines: list[str], precision: dict[str, Any] | None) -> None:
    if not precision:
        return
    recorded, run = precision.get("recorded"), precision["this_run"]
    if recorded:
        lines += [
            f"**Serving precision on this CPU: {recorded['choice']}** (recorded in encoder.json, "
            f"measured {recorded['measured_at']} on {recorded['cpu']}, {recorded['threads']} "
            f"threads, bfloat16 in hardware: {'yes' if recorded['cpu_bfloat16'] else 'no'}). "
            f"Why: {recorded['reason']}.",
            "",
        ]
    else:
        lines += ["**Serving precision: float32, never measured for this encoder.**", ""]
    reference = next(c for c in run["candidates"] if c["name"] == "float32")
    lines += [
        f"This run measured every candidate again ({run['texts']} fixed messages, one per call "
        "and 32 per call, interleaved rounds; XLA candidates measured, not served): the rule "
        f"picks **{run['choice']}** (with XLA allowed: {precision['with_xla_choice']}).",
        "",
        "| candidate | single p50 ms | batch-32 texts/s | speed vs float32 | max prob. diff "
        "| same class | warm-up s |",
        "|---|---|---|---|---|---|---|",
    ]
    for c in [*run["candidates"], *run.get("xla", [])]:
        if c.get("error"):
            lines.append(f"| {c['name']} | error: {c['error']} | | | | | |")
            continue
        single = reference["single_p50_ms"] / c["single_p50_ms"]
        batch = c["batch32_per_s"] / reference["batch32_per_s"]
        lines.append(
            f"| {c['name']} | {c['single_p50_ms']} | {c['batch32_per_s']} | "
            f"{(single * batch) ** 0.5:.2f}x (single {single:.2f}x, batch {batch:.2f}x) | "
            f"{c['max_abs_diff']} | {c['argmax_agreement']:.1%} | {c['warmup_s']} |"
        )
    lines.append("")


def _train_speed(lines: list[str]) -> None:
    data = _load("train-speed")
    lines += ["## Training speed against PyTorch + transformers", ""]
    if data is None:
        lines += ["not run", ""]
        return
    peer = data["pytorch"]
    lines += [
        f"Command: `make bench-peer && python {data['command']}` "
        f"({_when(data)}); same tweets, batch {data['batch_size']}, max "
        f"{data['max_length']} tokens, dynamic padding on both sides.",
        "",
    ]
    lines += [
        "| trainer | examples/s | vs PyTorch |",
        "|---|---|---|",
        f"| PyTorch {peer['torch']} + transformers Trainer, DataCollatorWithPadding "
        f"({peer['threads']} threads) | {peer['examples_per_second']:.1f} | 1.00x |",
    ]
    for row in data["bertbot"]:
        lines.append(
            f"| {row['variant']} | {row['examples_per_second']} | **{row['ratio_vs_pytorch']}x** |"
        )
    lines.append("")


def _loop(lines: list[str]) -> None:
    data = _load("loop")
    lines += ["## The learning loop on real data", ""]
    if data is None:
        lines += ["not run", ""]
        return
    lines += [
        f"Command: `python {data['command']}` ({_when(data)}). Seed: "
        f"{data['seed']} non-airline tweets; {data['corrections']} airline tweets as "
        f"moderator corrections; {data['held_out_airline']} held-out airline tweets.",
        "",
    ]
    lines += [
        "| step | outcome | gate (where judged) | candidate's airline held-out macro-F1 "
        "| production after | its airline held-out macro-F1 | time |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in data["steps"]:
        numbers = ""
        if "delta_macro_f1" in row:
            p = row.get("p_improvement")
            numbers = f"delta {row['delta_macro_f1']:+.4f}" + (
                f", P {p:.3f}" if p is not None else ""
            )
            corrections = row.get("corrections_eval") or {}
            if row.get("gate_scope") == "corrections":
                numbers += (
                    f" on {corrections.get('n')} corrections; permutation p "
                    f"{corrections.get('permutation_p', float('nan')):.3f}"
                )
                seed = row.get("seed_eval") or {}
                if seed:
                    drop = seed["production_macro_f1"] - seed["candidate_macro_f1"]
                    numbers += f"; seed eval drop {drop:+.4f}"
            elif row.get("gate_scope"):
                numbers += f" on all {row.get('eval_size')}"
        candidate = row.get("candidate_airline_heldout_macro_f1")
        lines.append(
            f"| {row['step']} | {row['status']} | {numbers} | "
            f"{'' if candidate is None else f'{candidate:.4f}'} | v{row['production_after']} "
            f"| {row['airline_heldout_macro_f1']:.4f} | {row['seconds'] / 60:.1f} min |"
        )
    verdict = data["verdict"]
    lines += [
        "",
        f"Verdict: promoted with corrections: {verdict['promoted_with_corrections']}; "
        f"airline macro-F1 rise **{verdict['airline_rise']:+.4f}** (target ≥ +0.05); "
        f"shuffled labels rejected: {verdict['shuffled_rejected']}; production unchanged "
        f"after the shuffled batch: {verdict['production_unchanged_after_shuffled']}.",
        "",
    ]
    _notes(lines, "loop", data)


def _drift(lines: list[str]) -> None:
    data = _load("drift")
    lines += ["## Drift watch on real data", ""]
    if data is None:
        lines += ["not run", ""]
        return
    model, f1 = data["model"], data["expected_f1"]
    samples, n = data["samples"], data["sample_size"]
    lines += [
        f"Command: `python {data['command']}` ({_when(data)}). A sentiment model trained "
        f"without the airline job ({model['seed_labels']} seed labels, "
        f"{model['train_minutes_budget']:g} min budget, temperature {model['temperature']:.2f}); "
        f"reference = its eval split ({model['eval_split']} non-airline tweets, never trained "
        f"on); samples of {n}; MMD on pooled embeddings and chi-square on predicted labels, "
        f"{data['permutations']} permutations each, Bonferroni, alpha {data['alpha']}.",
        "",
        "| comparison | drifted | target | p-values |",
        "|---|---|---|---|",
        f"| reference vs {samples} samples of airline tweets | **{data['airline']['drifted']} of "
        f"{samples}** | {samples} of {samples} | largest {data['airline']['max_p_value']:.4f} |",
        f"| reference vs {samples} fresh reference samples | "
        f"**{data['fresh_reference']['drifted']} of {samples}** | at most 1 of 20 | smallest "
        f"{data['fresh_reference']['min_p_value']:.4f} |",
        "",
        "Expected macro-F1 without labels: the confidence-based estimate from calibrated "
        "probabilities (uncorrected), and as served, corrected by that estimate's error on the "
        "labelled reference pool.",
        "",
        "| texts | uncorrected | served (corrected) | true macro-F1 | difference served |",
        "|---|---|---|---|---|",
        f"| airline pool ({data['airline_pool']}) | "
        f"{f1.get('airline_expected_macro_f1_uncorrected', float('nan')):.4f} | "
        f"{f1['airline_expected_macro_f1']:.4f} | {f1['airline_true_macro_f1']:.4f} | **"
        f"{f1['airline_expected_macro_f1'] - f1['airline_true_macro_f1']:+.4f}** (target within "
        f"0.05; per sample of {n}: mean abs {f1['per_sample_mean_abs_difference']:.4f}, "
        "uncorrected "
        f"{f1.get('per_sample_mean_abs_difference_uncorrected', float('nan')):.4f}) |",
        f"| reference pool ({data['reference_pool']}) | {f1['reference_expected_macro_f1']:.4f} "
        f"| (the correction) | {f1['reference_true_macro_f1']:.4f} | "
        f"{f1['reference_expected_macro_f1'] - f1['reference_true_macro_f1']:+.4f} "
        "uncorrected |",
        "",
    ]
    check = data.get("product_check")
    if check:
        lines += [
            f"The product path: `bertbot messages import` of {check['imported']} airline tweets "
            f"({check['import_seconds']} s), then `bertbot drift --task sentiment --json`: "
            f"p {check['p_value']:.4g}, drifted {check['drifted']}, expected macro-F1 "
            f"{check['expected_macro_f1']:.3f} on {check['n_recent']} messages vs "
            f"{check['n_reference']} eval-split tweets, {check['seconds']} s in the check "
            f"({check['command_seconds']} s with the command's start).",
            "",
        ]
    _notes(lines, "drift", data)


def _slack_http(lines: list[str]) -> None:
    data = _load("slack-http")
    lines += ["## The bot over HTTP: /classify and channel ingestion", ""]
    if data is None:
        lines += ["not run", ""]
        return
    lines += [
        f"Command: `python {data['command']}` ({_when(data)}). "
        "`bertbot serve --http` (waitress, 8 threads) in its own process with the production "
        "spam and sentiment models, a local fake Slack, signed requests. Answer latency = from "
        "sending `/classify` to the bot's reply arriving at the response_url (both tasks).",
        "",
        "| store | concurrency | requests | answered ≤ 3 s | req/s | answer p50 / p95 / p99 ms "
        "| ack p99 ms |",
        "|---|---|---|---|---|---|---|",
    ]
    for store, row in data["stores"].items():
        for run in row["classify"]:
            answer = run["answer"] or {}
            lines.append(
                f"| {store} | {run['concurrency']} | {run['requests']} | {run['within_3s']} | "
                f"{run['requests_per_s']} | {answer.get('p50_ms')} / {answer.get('p95_ms')} / "
                f"**{answer.get('p99_ms')}** | {run['ack']['p99_ms']} |"
            )
    alone = data["model_alone"]["both_tasks_ms"]
    lines += [
        "",
        f"Side by side: both models alone in one process, one text at a time: p50 "
        f"{alone['p50']:.1f} ms, p99 {alone['p99']:.1f} ms; end-to-end `/classify` p50 is "
        f"**{data['overhead_ratio_p50']}x** that (HTTP, signature check, storage, the "
        "response_url round trip).",
        "",
        "| store | messages | acked | stored (messages / predictions) | messages/s | "
        "bot RSS after / peak MB | bot start s |",
        "|---|---|---|---|---|---|---|",
    ]
    for store, row in data["stores"].items():
        ingest, memory = row["ingest"], row["bot_memory"]
        lines.append(
            f"| {store} | {ingest['messages']} | {ingest['acked_200']} | "
            f"{ingest['stored_messages']} / {ingest['stored_predictions']} | "
            f"**{ingest['messages_per_s']}** | {memory['rss_mb']} / {memory['peak_rss_mb']} | "
            f"{row['bot_start_seconds']} |"
        )
    if "ingest_postgres_vs_sqlite" in data:
        lines += [
            "",
            f"Ingestion on PostgreSQL vs SQLite: **{data['ingest_postgres_vs_sqlite']}x**.",
        ]
    lines.append("")
    _notes(lines, "slack-http", data)


def _inbox(lines: list[str]) -> None:
    data = _load("inbox")
    lines += ["## The events inbox: what storing before the ack costs", ""]
    if data is None:
        lines += ["not run", ""]
        return
    lines += [
        f"Command: `python {data['command']}` ({_when(data)}). The same production models, "
        f"fake Slack and signed events, served by the code before the inbox "
        f"({data['baseline']}) and by this checkout, one after the other. Ingestion: events "
        "from 8 senders until each message has a prediction per task. Ack: events from 32 "
        "senders at once, from sending to the 200.",
        "",
        "| store | code | messages/s | stored | ack p50 / p95 / p99 ms at 32 | 200s |",
        "|---|---|---|---|---|---|",
    ]
    for key, row in data["runs"].items():
        store, code = key.split("/")
        ingest, acks = row["ingest"], row["acks_at_32"]
        ack = acks["ack"]
        lines.append(
            f"| {store} | {code} | **{ingest['messages_per_s']}** | "
            f"{ingest['stored_messages']}/{ingest['messages']} | {ack['p50_ms']} / "
            f"{ack['p95_ms']} / **{ack['p99_ms']}** | {acks['acked_200']}/{acks['events']} |"
        )
    ratios = [
        f"{store}: **{data[f'{store}_inbox_vs_before']}x**"
        for store in ("sqlite", "postgresql")
        if f"{store}_inbox_vs_before" in data
    ]
    lines += ["", "Ingestion with the inbox vs before: " + "; ".join(ratios) + ".", ""]
    _notes(lines, "inbox", data)


def _throughput(lines: list[str]) -> None:
    data = _load("throughput")
    lines += ["## Throughput: the batcher across requests", ""]
    if data is None:
        lines += ["not run", ""]
        return
    alone = data["models_alone"]
    lines += [
        f"Command: `python {data['command']}` ({_when(data)}). First the two production "
        f"models in the bench's own process at batch {alone['batch']} on the ingestion texts: "
        f"{alone['per_task_msg_per_s']} msg/s, **{alone['both_tasks_msg_per_s']} msg/s for "
        "both tasks per message** (the ceiling). Then `bertbot serve --http` per store and "
        f"variant: `before` is the code before the batcher ({data['baseline']}); the others "
        "are this checkout (defaults, or the setting named). Sequential /classify: the "
        "answer's p50; 32 senders: its p99; ingestion: events from 8 senders until each "
        "message has both predictions.",
        "",
        "| store | variant | /classify p50 ms (sequential) | p99 ms at 32 | req/s at 32 "
        "| ingestion msg/s | share of the models' rate | event ack p99 ms |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for key, row in data["runs"].items():
        store, variant = key.split("/", 1)
        seq, burst = row["classify_sequential"]["answer"], row["classify_at_32"]
        lines.append(
            f"| {store} | {variant} | {seq['p50_ms']} | **{burst['answer']['p99_ms']}** | "
            f"{burst['requests_per_s']} | {row['ingest']['messages_per_s']} | "
            f"**{row['share_of_models_rate']:.0%}** | {row['ingest']['ack']['p99_ms']} |"
        )
    lines.append("")
    _notes(lines, "throughput", data)


def _calibration(lines: list[str]) -> None:
    data = _load("calibration")
    lines += ["## Calibration: does 80% mean 80%?", ""]
    if data is None:
        lines += ["not run", ""]
        return
    budgets = data["budgets_minutes"]
    lines += [
        f"Command: `python {data['command']}` ({_when(data)}); first models as `bertbot setup` "
        f"trains them (spam {budgets['spam']:g} min, sentiment {budgets['sentiment']:g} min, "
        "default settings, temperature fitted on each model's validation split), the "
        "sentiment model without the airline job. ECE over 15 equal-width bins of the "
        "top-class probability; raw = the softmax before the temperature, served = what "
        f"bertbot shows and thresholds. At >= {data['threshold']:g}: share of messages at or "
        "above that confidence, and how often those are right.",
        "",
        "| held-out set | n | T | ECE raw | ECE served | Brier raw | Brier served "
        f"| >= {data['threshold']:g} raw: share, right | served: share, right | macro-F1 |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]

    def share(row: dict[str, Any], when: str) -> str:
        right = row[f"accuracy_at_threshold_{when}"]
        right_text = "-" if right is None else f"{right:.1%}"
        return f"{row[f'share_at_threshold_{when}']:.1%}, {right_text}"

    for name, row in data["sets"].items():
        lines.append(
            f"| {name} | {row['n']} | {row['temperature']:.2f} | {row['ece_before']:.4f} | "
            f"**{row['ece_after']:.4f}** | {row['brier_before']:.4f} | {row['brier_after']:.4f} "
            f"| {share(row, 'before')} | {share(row, 'after')} | {row['macro_f1']:.4f} |"
        )
    lines.append("")
    _notes(lines, "calibration", data)


def _cores(lines: list[str]) -> None:
    data = _load("cores")
    lines += ["## Every core when alone: training and retrains", ""]
    if data is None:
        lines += ["not run", ""]
        return
    one, every = data["runs"]["one thread"], data["runs"]["all cores"]
    speed = data["speedup"]
    lines += [
        f"Command: `python {data['command']}` ({_when(data)}); {data['labels']} sentiment "
        f"labels, each run its own process, `--threads 1` against no flag ({data['cores']} "
        "cores).",
        "",
        "| run | one thread | all cores | speed-up |",
        "|---|---|---|---|",
    ]
    for key, name in (
        ("train_seconds", "`bertbot train`, one epoch"),
        ("first_retrain_seconds", "`bertbot retrain`, first model"),
        ("warm_retrain_seconds", "`bertbot retrain`, warm"),
    ):
        lines.append(f"| {name} | {one[key]:.0f} s | {every[key]:.0f} s | **{speed[key]}x** |")
    lines.append("")
    _notes(lines, "cores", data)


def _retrain_scale(lines: list[str]) -> None:
    data = _load("retrain-scale")
    lines += ["## Retrain cost as the labels grow", ""]
    if data is None:
        lines += ["not run", ""]
        return
    lines += [
        f"Command: `python {data['command']}` ({_when(data)}); each retrain a "
        f"`bertbot retrain` process with {data['threads']} TensorFlow threads; peak RSS from "
        "the kernel. First model: one epoch over the training split. Warm retrain: the "
        "product's defaults after 50 corrections (start from production, replay ≤ 6,000 "
        "seed labels, two epochs).",
        "",
        "| labelled tweets | first model | vs 1k | peak RSS | warm retrain | vs 1k | peak RSS |",
        "|---|---|---|---|---|---|---|",
    ]
    for row in data["sizes"]:
        cold, warm = row["first_model"], row["warm_retrain"]
        lines.append(
            f"| {row['labelled']} | {cold['seconds'] / 60:.1f} min | {cold['cost_vs_smallest']}x "
            f"| {cold['peak_rss_mb']} MB | {warm['seconds'] / 60:.1f} min | "
            f"{warm['cost_vs_smallest']}x | {warm['peak_rss_mb']} MB |"
        )
    lines.append("")
    _notes(lines, "retrain-scale", data)


def _make_run(lines: list[str]) -> None:
    lines += ["## `make run` from a fresh clone", ""]
    found = False
    for name in ("make-run", "make-run-fast"):
        data = _load(name)
        if data is None:
            continue
        found = True
        first, second = data["first"], data["second"]
        # "serve" is left out: the time the emulator answered is the figure for it.
        starts = sorted((v, k) for k, v in first["phase_starts_s"].items() if k != "serve")
        phases = ", ".join(f"{k} at {v:.0f} s" for v, k in starts)
        lines += [
            f"Command: `python {data['command']}` ({_when(data)}, revision "
            f"{data['revision']}{', FAST=1' if data['fast'] else ''}): a new clone, its own "
            "virtualenv (pip's cache warm), an empty BERTBOT_HOME.",
            "",
            f"- first run: the emulator answered after **{first['serving_after_s'] / 60:.1f} min** "
            f"(target ≤ 20 min); phases started: {phases}; the longest stretch without output "
            f"was {first['longest_silence_s']:.0f} s.",
            f"- second run: serving after **{second['serving_after_s']:.0f} s** (target < 1 min).",
            "",
        ]
    if not found:
        lines += ["not run", ""]


def _reliability(lines: list[str]) -> None:
    path = RESULTS_DIR / "reliability.jsonl"
    lines += ["## Reliability suite (counts printed by the tests)", ""]
    if not path.exists():
        lines += ["not run", ""]
        return
    lines += [
        "Command: `source .ci/postgres.sh; BERTBOT_RELIABILITY_REPORT="
        "bench/results/reliability.jsonl python -m pytest -q tests/reliability` (also part of "
        "`make test`, where CI runs it). One row per test, as the test recorded it.",
        "",
        "| test | counts |",
        "|---|---|",
    ]
    for raw in path.read_text().splitlines():
        if not raw.strip():
            continue
        row = json.loads(raw)
        name = str(row.pop("test", "?")).rsplit("/", 1)[-1].replace(".py::", ": ")
        counts = ", ".join(
            f"{k.replace('_', ' ')} {round(v, 3) if isinstance(v, float) else v}"
            for k, v in row.items()
            if not isinstance(v, list | dict)
        )
        lines.append(f"| {name} | {counts} |")
    lines.append("")


def main() -> int:
    machine = None
    for name in ("quality-sentiment", "quality-spam", "inference", "train-speed", "loop"):
        data = _load(name)
        if data:
            machine = data["machine"]
            break
    lines = [
        "# Benchmark results",
        "",
        "Written by `python bench/report.py` from `bench/results/*.json`; each section names "
        "the command that produced it. Peers are measured in the same run.",
        "",
    ]
    if machine:
        lines += [
            f"Machine: {machine['cores']} cores, Python {machine['python']}; each section names "
            "the CPU it ran on (sessions may land on different machines of the same size).",
            "",
        ]
    _run(lines)
    _quality(lines)
    _inference(lines)
    _explain(lines)
    _train_speed(lines)
    _loop(lines)
    active_learning(lines, _notes)
    poisoning(lines, _notes)
    _calibration(lines)
    _drift(lines)
    _make_run(lines)
    _slack_http(lines)
    _inbox(lines)
    _throughput(lines)
    _cores(lines)
    _retrain_scale(lines)
    _reliability(lines)
    (ROOT / "bench" / "RESULTS.md").write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
