"""Import a Hugging Face BERT checkpoint as TF Hub-style preprocessor and encoder SavedModels."""

from trainer.encoder.checkpoint import (
    EncoderFetchError,
    EncoderImportError,
    EncoderInfo,
    default_checkpoint_dir,
    import_hf_bert,
    load_encoder_info,
)

__all__ = [
    "EncoderFetchError",
    "EncoderImportError",
    "EncoderInfo",
    "default_checkpoint_dir",
    "import_hf_bert",
    "load_encoder_info",
]
