"""Training speed: bertbot's TensorFlow fine-tuning against the same checkpoint fine-tuned
with PyTorch + transformers on the same CPU, data, batch size and maximum length.

    make bench-peer            # once: the bench-only venv .venv-peer (torch, transformers)
    python bench/train_speed.py

Both sides train on the same tweets (the sentiment training split), batch 32, max 128
tokens, dynamic padding; after warm-up steps, examples per second are timed over the same
number of steps. bertbot is measured as shipped (length-bucketed batches, bfloat16 mixed
precision where the CPU has it) and with each lever off. Writes bench/results/train-speed.json.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from common import ROOT, home, load_split, run_peer_script, save

from bertbot.settings import load_settings
from trainer.encoder import load_encoder_info


def tf_examples_per_second(
    config: Any, texts: list[str], labels: list[int], *, bucketed: bool, warmup: int, steps: int
) -> float:
    import numpy as np

    from trainer.model import Trainer
    from trainer.tf_runtime import tf
    from trainer.train_data import length_bucketed_batches

    trainer = Trainer(config, warmup + steps)
    rng = np.random.default_rng(0)
    if bucketed:
        batches = length_bucketed_batches(
            [len(t) for t in texts], config.batch_size, config.bucket_batches, rng
        )
    else:
        order = rng.permutation(len(texts))
        batches = [
            order[i : i + config.batch_size] for i in range(0, len(order), config.batch_size)
        ]
    batches = [b for b in batches if len(b) == config.batch_size][: warmup + steps]
    targets = np.asarray(labels, dtype=np.int32)
    weights = tf.ones([config.batch_size])
    started = 0.0
    for number, index in enumerate(batches):
        if number == warmup:
            started = time.perf_counter()
        trainer.train_step(
            tf.constant([texts[i] for i in index]), tf.constant(targets[index]), weights
        ).numpy()
    return steps * config.batch_size / (time.perf_counter() - started)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=40, help="timed steps per run")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--examples", type=int, default=6400, help="training texts drawn from")
    parser.add_argument("--peer-python", default=str(ROOT / ".venv-peer" / "bin" / "python"))
    args = parser.parse_args()

    from trainer.train import TrainConfig

    settings = load_settings()
    labels_names = ("negative", "neutral", "positive")
    train, _ = load_split("sentiment")
    train = train[: args.examples]
    texts = [e.text for e in train]
    labels = [labels_names.index(e.label) for e in train]
    encoder = settings.encoders_dir / settings.encoder
    base = TrainConfig(labels=labels_names, encoder_dir=str(encoder), batch_size=args.batch_size)
    needed = args.warmup + args.steps
    print(
        f"{len(texts)} tweets, batch {args.batch_size}, {args.warmup} warm-up + {args.steps} "
        f"timed steps, max 128 tokens",
        flush=True,
    )

    with tempfile.TemporaryDirectory() as scratch:
        request = {
            "checkpoint": str(home() / "cache" / "checkpoints" / settings.encoder),
            "texts": texts[: needed * args.batch_size * 2],
            "labels": labels[: needed * args.batch_size * 2],
            "num_labels": 3,
            "max_length": 128,
            "batch_size": args.batch_size,
            "warmup_steps": args.warmup,
            "steps": args.steps,
            "output_dir": scratch,
        }
        torch_result = run_peer_script(args.peer_python, "peer_torch_train.py", request)
    torch_rate = torch_result["examples_per_second"]
    print(
        f"PyTorch {torch_result['torch']} + transformers (Trainer, DataCollatorWithPadding): "
        f"{torch_rate:.1f} examples/s",
        flush=True,
    )

    # As shipped: bfloat16 mixed precision where the imported encoder has the variant
    # (built only on CPUs with AMX or AVX512-BF16), else float32.
    bfloat16 = load_encoder_info(Path(encoder)).bfloat16_variant
    variants: list[tuple[str, dict[str, Any], bool]] = (
        [
            (
                "bertbot as shipped (bucketing, bf16 mixed precision)",
                {"mixed_precision": None},
                True,
            ),
            ("bertbot, float32, bucketing", {"mixed_precision": False}, True),
        ]
        if bfloat16
        else [("bertbot as shipped (bucketing, float32: no bf16 in this CPU)", {}, True)]
    )
    variants += [
        (
            "bertbot, float32, no bucketing (same batching as peer)",
            {"mixed_precision": False},
            False,
        ),
    ]
    rows = []
    for name, overrides, bucketed in variants:
        config = replace(base, **overrides)
        rate = tf_examples_per_second(
            config, texts, labels, bucketed=bucketed, warmup=args.warmup, steps=args.steps
        )
        rows.append(
            {
                "variant": name,
                "examples_per_second": round(rate, 1),
                "ratio_vs_pytorch": round(rate / torch_rate, 2),
            }
        )
        print(f"{name}: {rate:.1f} examples/s = {rate / torch_rate:.2f}x PyTorch", flush=True)
    path = save(
        "train-speed",
        {
            "pytorch": torch_result,
            "bertbot": rows,
            "batch_size": args.batch_size,
            "max_length": 128,
        },
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
