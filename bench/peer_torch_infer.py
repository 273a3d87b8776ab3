"""The peer of bench/inference.py: the same checkpoint served with PyTorch + transformers,
as their users run it (fast tokenizer padding to the longest text of each batch,
``torch.inference_mode()``), on the same texts, batching and threads as bertbot.

Run by bench/inference.py inside the bench-only venv .venv-peer (`make bench-peer`); never a
product dependency. Reads a JSON request on stdin, prints one JSON line:

    {"checkpoint": DIR, "max_length": 128, "threads": 2, "batch": 64, "request_batch": 256,
     "single_calls": 300, "warmup_calls": 20, "modes": ["float32", "bfloat16"],
     "tasks": {"spam": {"num_labels": 2, "texts": [...]}, ...}}

The classification head is AutoModelForSequenceClassification's, freshly initialised with the
task's ``num_labels`` outputs (untrained: the figures are speed only). Each call does what bertbot's
``SavedModelClassifier.predict`` does: sort the request's texts by character length (stable),
cut them into batches of ``batch``, tokenize each batch padded to its longest text, run the
model, softmax; tokenization is timed on both sides (bertbot tokenizes in-graph).
"""

from __future__ import annotations

import json
import os
import statistics
import sys
import time
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(share * (len(ordered) - 1))))]


def main() -> int:
    request = json.load(sys.stdin)
    import torch
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()  # the untrained head's warning is expected
    torch.set_num_threads(int(request["threads"]))
    torch.manual_seed(0)
    checkpoint = request["checkpoint"]
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    batch, max_length = int(request["batch"]), int(request["max_length"])

    def predict(model: Any, texts: list[str], bfloat16: bool) -> list[Any]:
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        results: list[Any] = [None] * len(texts)
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=bfloat16):
            for start in range(0, len(order), batch):
                index = order[start : start + batch]
                encoded = tokenizer(
                    [texts[i] for i in index],
                    padding="longest",
                    truncation=True,
                    max_length=max_length,
                    return_tensors="pt",
                )
                probabilities = torch.softmax(model(**encoded).logits.float(), dim=-1).numpy()
                for row, i in enumerate(index):
                    results[i] = probabilities[row]
        return results

    def batched(model: Any, texts: list[str], bfloat16: bool) -> float:
        step = int(request["request_batch"])
        predict(model, texts[:step], bfloat16)
        started = time.perf_counter()
        for start in range(0, len(texts), step):
            predict(model, texts[start : start + step], bfloat16)
        return len(texts) / (time.perf_counter() - started)

    def singles(model: Any, texts: list[str], bfloat16: bool) -> dict[str, float]:
        for text in texts[: int(request["warmup_calls"])]:
            predict(model, [text], bfloat16)
        latencies = []
        for text in texts[: int(request["single_calls"])]:
            started = time.perf_counter()
            predict(model, [text], bfloat16)
            latencies.append((time.perf_counter() - started) * 1000)
        return {
            "p50_ms": round(statistics.median(latencies), 2),
            "p95_ms": round(percentile(latencies, 0.95), 2),
            "p99_ms": round(percentile(latencies, 0.99), 2),
        }

    tasks: dict[str, Any] = {}
    for task, spec in request["tasks"].items():
        texts = spec["texts"]
        model = AutoModelForSequenceClassification.from_pretrained(
            checkpoint, num_labels=spec["num_labels"], dtype=torch.float32
        )
        model.eval()
        row: dict[str, Any] = {"num_labels": spec["num_labels"]}
        reference = None
        for mode in request["modes"]:
            bfloat16 = mode == "bfloat16"
            probabilities = predict(model, texts[:256], bfloat16)
            row[mode] = {
                "batched_per_s": round(batched(model, texts, bfloat16), 1),
                **singles(model, texts, bfloat16),
            }
            if reference is None:
                reference = probabilities
            else:  # how far bfloat16 autocast moves the (untrained) head's probabilities
                row[mode]["max_abs_probability_diff_vs_float32"] = round(
                    max(
                        float(abs(a - b).max())
                        for a, b in zip(reference, probabilities, strict=True)
                    ),
                    4,
                )
        tasks[task] = row
    print(
        json.dumps(
            {
                "torch": torch.__version__,
                "transformers": __import__("transformers").__version__,
                "threads": torch.get_num_threads(),
                "head": "AutoModelForSequenceClassification with the task's labels, untrained "
                "(random init, seed 0); [CLS] + pooler (bertbot: masked mean)",
                "tasks": tasks,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
