"""Inference speed and memory: the exported model (dynamic padding) against the same model
with fixed padding to 128 (the tutorial way), and TF-IDF + logistic regression as the floor.

    python bench/inference.py

Needs the models from bench/quality.py under $BERTBOT_HOME/bench-models/{spam,sentiment}.
Texts are the held-out SMS and tweet splits (real short messages). Prints the figures and
writes bench/results/inference.json.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from typing import Any

from common import ROOT, current_rss_mb, home, load_split, save

SINGLE_CALLS = 300
REQUEST_BATCH = 256  # texts per predict() call in the batched figures


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def timed_batches(predict: Any, texts: list[str], batch: int) -> float:
    """Messages per second over all texts, ``batch`` texts per call (after a warm-up call)."""
    predict(texts[:batch])
    started = time.perf_counter()
    for start in range(0, len(texts), batch):
        predict(texts[start : start + batch])
    return len(texts) / (time.perf_counter() - started)


def serves_bfloat16() -> bool:
    """Whether bertbot serves in bfloat16 here: the imported encoder has the bfloat16
    serving variant, which ``bertbot encoder import`` builds only where the CPU multiplies
    bfloat16 in hardware (AMX or AVX512-BF16); elsewhere it serves float32."""
    from bertbot.settings import load_settings
    from trainer.encoder import load_encoder_info

    settings = load_settings()
    return load_encoder_info(settings.encoders_dir / settings.encoder).bfloat16_variant


def shipped_artifact(task: str, *, bfloat16: bool) -> Any:
    """The quality bench's model, exported as bertbot ships it on this CPU: re-exported
    with the bfloat16 serving encoder from the same trained weights where the CPU has it,
    else the float32 model itself."""
    source = home() / "bench-models" / task
    if not bfloat16:
        return source
    target = home() / "bench-models" / f"{task}-bf16"
    if not (target / "manifest.json").exists() or (
        target.stat().st_mtime < (source / "manifest.json").stat().st_mtime
    ):
        import shutil

        shutil.rmtree(target, ignore_errors=True)
        # In a child process, so its memory does not count in this process's RSS figures.
        code = (
            "import sys; from pathlib import Path; from trainer.export import reexport; "
            "reexport(Path(sys.argv[1]), Path(sys.argv[2]), serving_precision='bfloat16')"
        )
        subprocess.run([sys.executable, "-c", code, str(source), str(target)], check=True, cwd=ROOT)
    return target


def timed_singles(predict: Any, texts: list[str]) -> dict[str, float]:
    for text in texts[:20]:
        predict([text])
    latencies = []
    for text in texts[:SINGLE_CALLS]:
        started = time.perf_counter()
        predict([text])
        latencies.append((time.perf_counter() - started) * 1000)
    return {
        "p50_ms": round(statistics.median(latencies), 2),
        "p95_ms": round(percentile(latencies, 0.95), 2),
        "p99_ms": round(percentile(latencies, 0.99), 2),
    }


def fixed_padding_predictor(artifact: str) -> Any:
    """The same trained weights, fed [batch, 128] inputs as TF Hub's tutorial does."""
    from trainer.layers import load_keras_classifier
    from trainer.tf_runtime import tf

    model = load_keras_classifier(artifact)
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

    return lambda texts: predict(tf.constant(texts)).numpy()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64, help="texts per model call")
    args = parser.parse_args()

    rss_start = current_rss_mb()
    from trainer.serving import SavedModelClassifier
    from trainer.tf_runtime import tf  # noqa: F401 - import cost is not load time

    rss_tf = current_rss_mb()
    bfloat16 = serves_bfloat16()
    print(
        "serving precision here: "
        + ("bfloat16 (the CPU has it)" if bfloat16 else "float32 (no bfloat16 in this CPU)"),
        flush=True,
    )
    shipped = {task: shipped_artifact(task, bfloat16=bfloat16) for task in ("spam", "sentiment")}
    classifiers = {}
    load_seconds = {}
    for task in ("spam", "sentiment"):
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
        "load_seconds": load_seconds,
        "rss_mb": {
            "start": round(rss_start),
            "tensorflow_imported": round(rss_tf),
            "both_models_loaded": round(rss_loaded),
        },
        "serving_precision": "bfloat16" if bfloat16 else "float32",
        "batch": args.batch,
        "request_batch": REQUEST_BATCH,
        "tasks": {},
    }
    for task, classifier in classifiers.items():
        train, held_out = load_split(task)
        texts = [e.text for e in held_out]
        print(f"\n{task}: {len(texts)} held-out texts", flush=True)
        fixed = fixed_padding_predictor(str(home() / "bench-models" / task))
        row: dict[str, Any] = {"texts": len(texts)}
        variants = [("dynamic (bertbot)", classifier.predict)]
        if bfloat16:  # the float32 export of the same weights, for comparison
            float32 = SavedModelClassifier.load(
                home() / "bench-models" / task, batch_size=args.batch
            )
            agree = sum(
                a.label == b.label
                for a, b in zip(classifier.predict(texts), float32.predict(texts), strict=True)
            )
            row["bf16_float32_label_agreement"] = round(agree / len(texts), 4)
            variants.append(("dynamic float32", float32.predict))
        variants.append(("fixed 128 (tutorial)", fixed))
        for name, predict in variants:
            rate = timed_batches(predict, texts, REQUEST_BATCH)
            single = timed_singles(predict, texts)
            row[name] = {"batched_per_s": round(rate, 1), **single}
            print(
                f"  {name:<22} batched {rate:7.1f} msg/s   single p50 {single['p50_ms']:6.2f} ms"
                f"  p95 {single['p95_ms']:6.2f} ms",
                flush=True,
            )
        row["speedup_batched"] = round(
            row["dynamic (bertbot)"]["batched_per_s"]
            / row["fixed 128 (tutorial)"]["batched_per_s"],
            2,
        )
        row["speedup_single_p50"] = round(
            row["fixed 128 (tutorial)"]["p50_ms"] / row["dynamic (bertbot)"]["p50_ms"], 2
        )
        dynamic_float32 = row["dynamic float32" if bfloat16 else "dynamic (bertbot)"]
        row["padding_only_speedup_batched"] = round(
            dynamic_float32["batched_per_s"] / row["fixed 128 (tutorial)"]["batched_per_s"], 2
        )

        from sklearn.feature_extraction.text import TfidfVectorizer
        from sklearn.linear_model import LogisticRegression
        from sklearn.pipeline import make_pipeline

        floor = make_pipeline(
            TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True),
            LogisticRegression(max_iter=3000, C=4.0, class_weight="balanced"),
        ).fit([e.text for e in train], [e.label for e in train])
        rate = timed_batches(floor.predict_proba, texts, REQUEST_BATCH)
        single = timed_singles(floor.predict_proba, texts)
        row["tfidf_logreg (floor)"] = {"batched_per_s": round(rate, 1), **single}
        print(
            f"  {'TF-IDF + LR (floor)':<22} batched {rate:7.1f} msg/s   single p50 "
            f"{single['p50_ms']:6.2f} ms  p95 {single['p95_ms']:6.2f} ms"
        )
        agreement = (
            f"; bf16/float32 labels agree on {row['bf16_float32_label_agreement']:.2%}"
            if bfloat16
            else ""
        )
        print(
            f"  bertbot vs tutorial: {row['speedup_batched']}x batched, "
            f"{row['speedup_single_p50']}x single-message p50 (dynamic padding alone: "
            f"{row['padding_only_speedup_batched']}x batched){agreement}"
        )
        results["tasks"][task] = row
    path = save("inference", results)
    print(f"\nresults: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
