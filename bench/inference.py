"""Inference speed and memory: bertbot's exported models as shipped on this CPU (dynamic
padding, length-sorted batches, the serving precision measured for this CPU) against the same
weights in the other precision, the same model with fixed padding to 128 (the tutorial way),
TF-IDF + logistic regression as the floor, and the same checkpoint served with PyTorch +
transformers (float32 and bfloat16 autocast); plus the int8 experiment (TensorFlow Lite,
dynamic-range int8) with its held-out macro-F1.

    make bench-peer                                          # once: .venv-peer
    python bench/inference.py --models production --retune  # the full run

``--models production`` uses the production models `bertbot setup` registered (speed does not
depend on how long a model trained); ``--models bench`` (the default) the models of
bench/quality.py under $BERTBOT_HOME/bench-models/{spam,sentiment}. ``--retune`` measures the
serving precision again on this (quiet) machine and records it, as `bertbot encoder
tune-precision` does; every run re-measures the candidates, XLA ones included, and prints
which precision this CPU got and why. Texts are the held-out SMS and tweet splits. Short runs:
``--texts 300 --single-calls 50``. Writes bench/results/inference.json and rewrites
bench/RESULTS.md (bench/report.py).
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
from common import ROOT, current_rss_mb, home, load_split, run_peer_script, save

SINGLE_CALLS = 300
REQUEST_BATCH = 256  # texts per predict() call in the batched figures
PEER_MODES = ("float32", "bfloat16")
INT8_MAX_F1_DROP = 0.005

Predict = Callable[[Sequence[str]], np.ndarray]  # texts -> probabilities [texts, labels]


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def timed_batches(predict: Predict, texts: list[str]) -> tuple[float, np.ndarray]:
    """Messages per second over all texts, REQUEST_BATCH texts per call (after a warm-up
    call), and the probabilities of every text."""
    predict(texts[:REQUEST_BATCH])
    outputs = []
    started = time.perf_counter()
    for start in range(0, len(texts), REQUEST_BATCH):
        outputs.append(predict(texts[start : start + REQUEST_BATCH]))
    return len(texts) / (time.perf_counter() - started), np.concatenate(outputs)


def timed_singles(predict: Predict, texts: list[str], calls: int) -> dict[str, float]:
    for text in texts[:20]:
        predict([text])
    latencies = []
    for text in texts[:calls]:
        started = time.perf_counter()
        predict([text])
        latencies.append((time.perf_counter() - started) * 1000)
    return {
        "p50_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(percentile(latencies, 0.95), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
    }


def macro_f1(gold: list[str], probabilities: np.ndarray, labels: Sequence[str]) -> float:
    from sklearn.metrics import f1_score

    predicted = [labels[i] for i in probabilities.argmax(axis=1)]
    return round(float(f1_score(gold, predicted, labels=list(labels), average="macro")), 4)


# Models ---------------------------------------------------------------------------------------


def source_models(kind: str, tasks: Sequence[str]) -> dict[str, tuple[Path, str]]:
    """Per task: the artifact to measure and a name for it (``production v3``, ``bench``)."""
    if kind == "bench":
        models = {task: (home() / "bench-models" / task, "bench") for task in tasks}
        missing = [str(p) for p, _ in models.values() if not (p / "manifest.json").exists()]
        if missing:
            raise SystemExit(
                f"missing {', '.join(missing)}: run bench/quality.py, or use --models production"
            )
        return models
    from bertbot.settings import load_settings
    from storage.db import Database
    from trainer.serving import registry_resolver

    settings = load_settings()
    resolve = registry_resolver(Database.connect(settings.db_url), settings.home_dir)
    models = {}
    for task in tasks:
        ref = resolve(task)
        if ref is None:
            raise SystemExit(f"no production {task} model: run `bertbot setup` first")
        models[task] = (ref.path, f"production v{ref.version}")
    return models


def artifact_precision(artifact: Path) -> str:
    training = json.loads((artifact / "training.json").read_text())
    return (
        "bfloat16" if str(training.get("serving_encoder", "")).endswith("_serving") else "float32"
    )


def artifact_in(task: str, source: Path, name: str, precision: str) -> Path:
    """The source model exported with ``precision`` (the source itself, or a re-export of its
    weights made once under $BERTBOT_HOME/bench-models/)."""
    if artifact_precision(source) == precision:
        return source
    target = home() / "bench-models" / f"{task}-{name.replace(' ', '-')}-{precision}"
    if not (target / "manifest.json").exists() or (
        target.stat().st_mtime < (source / "manifest.json").stat().st_mtime
    ):
        import shutil

        shutil.rmtree(target, ignore_errors=True)
        # In a child process, so its memory does not count in this process's RSS figures.
        code = (
            "import sys; from pathlib import Path; from trainer.export import reexport; "
            "reexport(Path(sys.argv[1]), Path(sys.argv[2]), serving_precision=sys.argv[3])"
        )
        subprocess.run(
            [sys.executable, "-c", code, str(source), str(target), precision],
            check=True,
            cwd=ROOT,
        )
    return target


def bertbot_predictor(classifier: Any) -> Predict:
    labels = classifier.labels

    def predict(texts: Sequence[str]) -> np.ndarray:
        return np.array(
            [[p.probabilities[label] for label in labels] for p in classifier.predict(texts)]
        )

    return predict


def fixed_padding_predictor(artifact: Path) -> Predict:
    """The same trained weights, fed [batch, 128] inputs as TF Hub's tutorial does."""
    from trainer.layers import load_keras_classifier
    from trainer.tf_runtime import tf

    model = load_keras_classifier(str(artifact))
    preprocessor = model.get_layer("preprocessor").resolved_object
    encoder = model.get_layer("encoder")
    pool = model.get_layer("mean_pool")
    head = model.get_layer("classifier")

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string)])
    def predict(texts: Any) -> Any:
        packed = preprocessor.bert_pack_inputs([preprocessor.tokenize(texts)], tf.constant(128))
        outputs = encoder(packed)
        pooled = pool([outputs["sequence_output"], packed["input_mask"]])
        return tf.nn.softmax(head(pooled), axis=-1)

    return lambda texts: predict(tf.constant(list(texts))).numpy()


# Precision ------------------------------------------------------------------------------------


def precision_report(retune: bool) -> dict[str, Any]:
    """Measure the serving candidates here (XLA ones too), print which precision this CPU got
    and why; with ``retune`` record this run's choice. Returns the figures, the verdicts and
    the precision the shipped models serve with."""
    from bertbot.settings import load_settings
    from trainer.encoder import load_encoder_info
    from trainer.encoder.info import record_precision
    from trainer.encoder.precision import CANDIDATES, choose_precision
    from trainer.encoder.tuning import XLA_CANDIDATES, decide, measure_candidates

    settings = load_settings()
    encoder_dir = settings.encoders_dir / settings.encoder
    info = load_encoder_info(encoder_dir)
    print("measuring the serving candidates on this CPU (XLA included)...", flush=True)
    figures = measure_candidates(info, (*CANDIDATES, *XLA_CANDIDATES), rounds=3)
    this_run = decide(figures, CANDIDATES)
    with_xla = choose_precision(figures)
    if retune:
        record_precision(encoder_dir, this_run)
    recorded = load_encoder_info(encoder_dir).serving_precision
    if recorded is None:
        print(
            "serving precision: float32, not measured for this encoder "
            "(`bertbot encoder tune-precision` measures it)"
        )
    else:
        print("\n".join(recorded.summary()))
    print("\nthis run's measurement (XLA candidates are measured, not served):")
    print("\n".join(this_run.summary()[1:]))
    for f in figures:
        if f.jit and not f.error:
            print(
                f"  {f.name:<14} single p50 {f.single_p50_ms:7.2f} ms   batch-32 "
                f"{f.batch32_per_s:7.1f} texts/s   max prob diff {f.max_abs_diff:.4f}   "
                f"warm-up {f.warmup_s:.1f} s"
            )
    print(f"the rule with XLA allowed would pick: {with_xla.choice}", flush=True)
    return {
        "recorded": recorded.to_json() if recorded else None,
        "this_run": this_run.to_json() | {"xla": [asdict(f) for f in figures if f.jit]},
        "with_xla_choice": with_xla.choice,
        "with_xla_reason": with_xla.reason,
        "shipped": recorded.weights if recorded else "float32",
    }


def precision_in_child(retune: bool) -> dict[str, Any]:
    """precision_report in a child process, so the candidates it loads do not count in this
    process's memory figures."""
    child = subprocess.run(
        [sys.executable, __file__, "--precision-child", *(["--retune"] if retune else [])],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
        check=True,
    )
    *shown, last = child.stdout.strip().splitlines()
    print("\n".join(shown), flush=True)
    return json.loads(last)


# The PyTorch peer -----------------------------------------------------------------------------


def run_peer(
    peer_python: str, checkpoint: Path, task: str, texts: list[str], labels: int, args: Any
) -> dict[str, Any]:
    request = {
        "checkpoint": str(checkpoint),
        "max_length": 128,
        "threads": args.threads,
        "batch": args.batch,
        "request_batch": REQUEST_BATCH,
        "single_calls": args.single_calls,
        "warmup_calls": 20,
        "modes": list(PEER_MODES),
        "tasks": {task: {"num_labels": labels, "texts": texts}},
    }
    return run_peer_script(peer_python, "peer_torch_infer.py", request)


# Main -----------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", choices=("bench", "production"), default="bench")
    parser.add_argument("--retune", action="store_true", help="record this run's precision")
    parser.add_argument("--batch", type=int, default=64, help="texts per model call")
    parser.add_argument("--texts", type=int, default=0, help="held-out texts per task (0: all)")
    parser.add_argument("--single-calls", type=int, default=SINGLE_CALLS)
    parser.add_argument("--tasks", default="spam,sentiment")
    parser.add_argument("--peer-python", default=str(ROOT / ".venv-peer" / "bin" / "python"))
    parser.add_argument("--skip-peer", action="store_true", help="no PyTorch peer")
    parser.add_argument("--skip-int8", action="store_true", help="no TFLite int8 experiment")
    parser.add_argument("--precision-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.precision_child:
        print(json.dumps(precision_report(args.retune)))
        return 0
    tasks = [t.strip() for t in args.tasks.split(",") if t.strip()]

    rss_start = current_rss_mb()
    from bertbot.settings import load_settings
    from trainer.encoder.tuning import intra_op_threads
    from trainer.serving import SavedModelClassifier
    from trainer.tf_runtime import tf  # noqa: F401 - import cost is not load time

    rss_tf = current_rss_mb()
    args.threads = intra_op_threads()
    settings = load_settings()
    checkpoint = settings.cache_dir / "checkpoints" / settings.encoder
    if not args.skip_peer and not Path(args.peer_python).exists():
        raise SystemExit(f"{args.peer_python} is missing: `make bench-peer` (or --skip-peer)")

    precision = precision_in_child(args.retune)
    shipped_precision = precision["shipped"]
    other_precision = "float32" if shipped_precision == "bfloat16" else "bfloat16"
    sources = source_models(args.models, tasks)
    print(
        f"\nmodels: {', '.join(f'{t} {n} ({p})' for t, (p, n) in sources.items())}; "
        f"shipped precision {shipped_precision}; {args.threads} TensorFlow intra-op threads",
        flush=True,
    )
    shipped = {t: artifact_in(t, p, n, shipped_precision) for t, (p, n) in sources.items()}
    classifiers = {}
    load_seconds = {}
    for task in tasks:
        started = time.perf_counter()
        classifiers[task] = SavedModelClassifier.load(shipped[task], batch_size=args.batch)
        load_seconds[task] = round(time.perf_counter() - started, 2)
    rss_loaded = current_rss_mb()
    print(f"load (verify checksums + load + warm-up): {load_seconds} s")
    print(
        f"RSS: {rss_start:.0f} MB at start, {rss_tf:.0f} MB with TensorFlow, "
        f"{rss_loaded:.0f} MB with both models loaded",
        flush=True,
    )

    results: dict[str, Any] = {
        "models": {t: n for t, (_, n) in sources.items()},
        "load_seconds": load_seconds,
        "rss_mb": {
            "start": round(rss_start),
            "tensorflow_imported": round(rss_tf),
            "both_models_loaded": round(rss_loaded),
        },
        "serving_precision": shipped_precision,
        "precision": precision,
        "threads": args.threads,
        "batch": args.batch,
        "request_batch": REQUEST_BATCH,
        "single_calls": args.single_calls,
        "tasks": {},
    }
    for task, classifier in classifiers.items():
        results["tasks"][task] = measure_task(
            task, classifier, sources[task], shipped_precision, other_precision, checkpoint, args
        )
    if not args.skip_int8:
        results["int8_verdict"] = int8_verdict(results["tasks"])
        print(f"\nint8 (TFLite dynamic range): {results['int8_verdict']['summary']}")
    path = save("inference", results)
    subprocess.run(
        [sys.executable, str(ROOT / "bench" / "report.py")],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        check=True,
    )
    print(f"\nresults: {path}; bench/RESULTS.md rewritten")
    return 0


def measure_task(
    task: str,
    classifier: Any,
    source: tuple[Path, str],
    shipped_precision: str,
    other_precision: str,
    checkpoint: Path,
    args: Any,
) -> dict[str, Any]:
    from trainer.serving import SavedModelClassifier

    train, held_out = load_split(task)
    if args.texts:
        held_out = held_out[: args.texts]
    texts, gold = [e.text for e in held_out], [e.label for e in held_out]
    labels = classifier.labels
    print(f"\n{task}: {len(texts)} held-out texts", flush=True)
    float32 = artifact_in(task, source[0], source[1], "float32")
    variants: list[tuple[str, Predict]] = [("dynamic (bertbot)", bertbot_predictor(classifier))]
    try:
        other = SavedModelClassifier.load(
            artifact_in(task, source[0], source[1], other_precision), batch_size=args.batch
        )
        variants.append((f"dynamic {other_precision}", bertbot_predictor(other)))
    except (subprocess.CalledProcessError, OSError) as exc:
        print(f"  no {other_precision} export of this model: {exc}")
    variants.append(("fixed 128 (tutorial)", fixed_padding_predictor(float32)))
    if not args.skip_int8:
        from int8_tflite import TFLiteClassifier, convert

        for quantize, name in ((False, "tflite float32"), (True, "tflite int8")):
            flat, preprocessor = convert(float32, quantize=quantize)
            lite = TFLiteClassifier(flat, preprocessor, batch=args.batch, threads=args.threads)
            variants.append((name, lite.predict))

    row: dict[str, Any] = {"texts": len(texts), "labels": list(labels)}
    probabilities: dict[str, np.ndarray] = {}
    for name, predict in variants:
        rate, probabilities[name] = timed_batches(predict, texts)
        single = timed_singles(predict, texts, args.single_calls)
        row[name] = {
            "batched_per_s": round(rate, 1),
            **single,
            "macro_f1": macro_f1(gold, probabilities[name], labels),
        }
        print(
            f"  {name:<26} batched {rate:7.1f} msg/s   single p50 {single['p50_ms']:6.2f} ms"
            f"  p95 {single['p95_ms']:6.2f} ms   macro-F1 {row[name]['macro_f1']:.4f}",
            flush=True,
        )
    reference = probabilities.get("dynamic float32", probabilities["dynamic (bertbot)"])
    for name in ("dynamic (bertbot)", "dynamic bfloat16", "tflite float32", "tflite int8"):
        if name in probabilities and probabilities[name] is not reference:
            row[name]["vs_float32"] = {
                "max_abs_probability_diff": round(
                    float(np.abs(probabilities[name] - reference).max()), 4
                ),
                "label_agreement": round(
                    float((probabilities[name].argmax(1) == reference.argmax(1)).mean()), 4
                ),
            }

    fixed = row["fixed 128 (tutorial)"]
    row["speedup_batched"] = round(
        row["dynamic (bertbot)"]["batched_per_s"] / fixed["batched_per_s"], 2
    )
    row["speedup_single_p50"] = round(fixed["p50_ms"] / row["dynamic (bertbot)"]["p50_ms"], 2)
    dynamic_float32 = row.get("dynamic float32", row["dynamic (bertbot)"])
    row["padding_only_speedup_batched"] = round(
        dynamic_float32["batched_per_s"] / fixed["batched_per_s"], 2
    )

    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline

    floor = make_pipeline(
        TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
        LogisticRegression(max_iter=3000, C=4.0, class_weight="balanced"),
    ).fit([e.text for e in train], [e.label for e in train])
    rate, _ = timed_batches(floor.predict_proba, texts)
    single = timed_singles(floor.predict_proba, texts, args.single_calls)
    row["tfidf_logreg (floor)"] = {"batched_per_s": round(rate, 1), **single}
    print(
        f"  {'TF-IDF + LR (floor)':<26} batched {rate:7.1f} msg/s   single p50 "
        f"{single['p50_ms']:6.2f} ms  p95 {single['p95_ms']:6.2f} ms"
    )
    print(
        f"  bertbot vs tutorial: {row['speedup_batched']}x batched, "
        f"{row['speedup_single_p50']}x single-message p50 (dynamic padding alone: "
        f"{row['padding_only_speedup_batched']}x batched)"
    )

    if not args.skip_peer:
        peer = run_peer(args.peer_python, checkpoint, task, texts, len(labels), args)
        row["pytorch"] = {k: v for k, v in peer.items() if k != "tasks"}
        for mode in PEER_MODES:
            row[f"pytorch {mode}"] = peer["tasks"][task][mode]
            r = row[f"pytorch {mode}"]
            print(
                f"  {'PyTorch ' + mode + (' autocast' if mode == 'bfloat16' else ''):<26} "
                f"batched {r['batched_per_s']:7.1f} msg/s   single p50 {r['p50_ms']:6.2f} ms"
                f"  p95 {r['p95_ms']:6.2f} ms",
                flush=True,
            )
        best_rate = max(row[f"pytorch {m}"]["batched_per_s"] for m in PEER_MODES)
        best_p50 = min(row[f"pytorch {m}"]["p50_ms"] for m in PEER_MODES)
        ours = row["dynamic (bertbot)"]
        row["vs_pytorch_best"] = {
            "batched": round(ours["batched_per_s"] / best_rate, 2),
            "single_p50": round(best_p50 / ours["p50_ms"], 2),
        }
        print(
            f"  bertbot as shipped vs PyTorch's best: {row['vs_pytorch_best']['batched']}x "
            f"batched, {row['vs_pytorch_best']['single_p50']}x single-message p50 (>1: bertbot "
            "faster)"
        )
    return row


def int8_verdict(tasks: dict[str, Any]) -> dict[str, Any]:
    """Usable only if macro-F1 stays within INT8_MAX_F1_DROP of float32 on every task and it
    is faster than bertbot as shipped."""
    per_task = {}
    for task, row in tasks.items():
        reference = row.get("dynamic float32", row["dynamic (bertbot)"])
        int8, shipped = row["tflite int8"], row["dynamic (bertbot)"]
        per_task[task] = {
            "f1_change": round(int8["macro_f1"] - reference["macro_f1"], 4),
            "batched_vs_shipped": round(int8["batched_per_s"] / shipped["batched_per_s"], 2),
            "single_p50_vs_shipped": round(shipped["p50_ms"] / int8["p50_ms"], 2),
        }
    accurate = all(abs(t["f1_change"]) <= INT8_MAX_F1_DROP for t in per_task.values())
    faster = all(t["batched_vs_shipped"] > 1 for t in per_task.values())
    summary = "; ".join(
        f"{task}: macro-F1 {t['f1_change']:+.4f} vs float32, {t['batched_vs_shipped']}x batched "
        f"and {t['single_p50_vs_shipped']}x single p50 vs bertbot as shipped"
        for task, t in per_task.items()
    )
    return {
        "tasks": per_task,
        "within_f1_limit": accurate,
        "faster_batched": faster,
        "max_f1_drop": INT8_MAX_F1_DROP,
        "summary": summary,
    }


if __name__ == "__main__":
    sys.exit(main())
