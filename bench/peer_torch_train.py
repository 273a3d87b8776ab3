"""The peer of bench/train_speed.py: the same checkpoint fine-tuned with PyTorch +
transformers, as their users run it (Trainer, fast tokenizer, DataCollatorWithPadding).

Run by bench/train_speed.py inside the bench-only venv .venv-peer (`make bench-peer`);
never a product dependency. Reads a JSON request on stdin, prints one JSON line.
"""

from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


def main() -> int:
    request = json.load(sys.stdin)
    import torch
    from transformers import (
        AutoModelForSequenceClassification,
        AutoTokenizer,
        DataCollatorWithPadding,
        Trainer,
        TrainerCallback,
        TrainingArguments,
    )

    checkpoint = request["checkpoint"]
    texts, labels = request["texts"], request["labels"]
    tokenizer = AutoTokenizer.from_pretrained(checkpoint)
    model = AutoModelForSequenceClassification.from_pretrained(
        checkpoint, num_labels=request["num_labels"]
    )
    encoded = tokenizer(texts, truncation=True, max_length=request["max_length"])
    dataset = [
        {**{key: encoded[key][i] for key in encoded}, "labels": labels[i]}
        for i in range(len(texts))
    ]
    stamps: list[float] = []

    class Clock(TrainerCallback):  # type: ignore[misc]
        def on_step_end(self, args, state, control, **kwargs):  # type: ignore[no-untyped-def]
            stamps.append(time.perf_counter())

    warmup, steps = request["warmup_steps"], request["steps"]
    arguments = TrainingArguments(
        output_dir=request["output_dir"],
        per_device_train_batch_size=request["batch_size"],
        learning_rate=5e-5,
        weight_decay=0.01,
        warmup_steps=1,
        max_steps=warmup + steps,
        save_strategy="no",
        logging_strategy="no",
        report_to="none",
        use_cpu=True,
        dataloader_num_workers=0,
        seed=0,
        bf16=request.get("bf16", False),
    )
    trainer = Trainer(
        model=model,
        args=arguments,
        train_dataset=dataset,
        data_collator=DataCollatorWithPadding(tokenizer),
        callbacks=[Clock()],
    )
    trainer.train()
    measured = stamps[warmup - 1 :]
    seconds = measured[-1] - measured[0]
    print(
        json.dumps(
            {
                "examples_per_second": steps * request["batch_size"] / seconds,
                "seconds": seconds,
                "steps": steps,
                "torch": torch.__version__,
                "threads": torch.get_num_threads(),
                "bf16": request.get("bf16", False),
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
