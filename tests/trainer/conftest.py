"""Shared fixtures for trainer tests: a tiny random BERT checkpoint and its imported encoder."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.tiny_bert import TINY_MAX_SEQ_LENGTH, write_tiny_bert_checkpoint


@pytest.fixture(scope="session")
def tiny_hf_checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-layer, hidden-32 BERT checkpoint in Hugging Face layout (random weights, seed 0)."""
    return write_tiny_bert_checkpoint(tmp_path_factory.mktemp("tiny_hf_bert") / "checkpoint")


@pytest.fixture(scope="session")
def tiny_encoder_dir(tiny_hf_checkpoint: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``tiny_hf_checkpoint`` imported with ``import_hf_bert`` (max_seq_length 32)."""
    from trainer.encoder import import_hf_bert

    out_dir = tmp_path_factory.mktemp("tiny_encoder") / "tiny-bert"
    import_hf_bert(
        tiny_hf_checkpoint,
        out_dir,
        name="tiny-bert",
        max_seq_length=TINY_MAX_SEQ_LENGTH,
        bfloat16_variant=True,  # every machine tests mixed-precision training and its export
    )
    return out_dir
