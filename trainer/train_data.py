"""Training data, prepared without TensorFlow: validation split, class weights, bucketed batches."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np

from trainer.datasets import Example


def validation_split(
    examples: Sequence[Example], fraction: float, seed: int
) -> tuple[list[Example], list[Example]]:
    """Split off a stable validation share by a seeded hash of the text (duplicates together)."""
    train_part: list[Example] = []
    validation: list[Example] = []
    for example in examples:
        digest = hashlib.sha256(f"{seed}:{example.text}".encode()).digest()
        bucket = int.from_bytes(digest[:4], "big") / 0x1_0000_0000
        (validation if bucket < fraction else train_part).append(example)
    return train_part, validation


def class_weights(labels: Sequence[int] | np.ndarray, num_classes: int) -> np.ndarray:
    """Balanced weights n / (k * count_c); classes absent from the data get weight 1."""
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)
    weights = np.ones(num_classes, dtype=np.float32)
    present = counts > 0
    weights[present] = len(labels) / (present.sum() * counts[present])
    return weights


def length_bucketed_batches(
    lengths: Sequence[int], batch_size: int, bucket_batches: int, rng: np.random.Generator
) -> list[np.ndarray]:
    """Shuffled batches of indices in which texts have similar lengths.

    The data are shuffled, cut into buckets of ``bucket_batches`` batches, sorted by length
    inside each bucket and cut into batches; the batch order is shuffled again. Each batch
    is then padded only to its own longest text.
    """
    order = rng.permutation(len(lengths))
    lengths_array = np.asarray(lengths)
    batches: list[np.ndarray] = []
    bucket = batch_size * bucket_batches
    for start in range(0, len(order), bucket):
        chunk = order[start : start + bucket]
        chunk = chunk[np.argsort(lengths_array[chunk], kind="stable")]
        batches.extend(chunk[i : i + batch_size] for i in range(0, len(chunk), batch_size))
    rng.shuffle(batches)
    return batches
