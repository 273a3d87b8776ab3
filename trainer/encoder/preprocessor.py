"""The preprocessor SavedModel: strings -> input_word_ids, input_mask, input_type_ids.

The preprocessor reproduces Hugging Face's ``BertTokenizer`` (the ``tokenizers`` implementation that
``transformers`` ships) in-graph, so token ids match exactly:

1. invalid UTF-8 becomes U+FFFD; ``\\t \\n \\r`` become spaces; U+0000, U+FFFD and characters of
   the categories Cc, Cf and Co are removed; other white space (Zs, U+2028, U+2029) becomes a space;
2. accents are stripped (NFD, then nonspacing marks removed) when lower-casing (or when the
   tokenizer config asks for it);
3. lower-casing maps each character on its own, like ``tokenizers`` does (so ``ß`` stays ``ß``,
   full-width ``Ｈ`` becomes ``ｈ`` and a final capital sigma becomes ``σ``, not ``ς``);
   ``tf_text.case_fold_utf8`` would give ``ss`` and ``h`` instead;
4. words split on white space, on punctuation (ASCII symbols and Unicode ``P*``) and around CJK
   ideographs; a word longer than 100 characters becomes ``[UNK]``;
5. greedy longest-match-first WordPiece with ``##`` continuations; a word that cannot be covered
   becomes a single ``[UNK]``.

One deliberate difference: Hugging Face also recognises special tokens typed into the text (a user
writing ``[SEP]`` gets the separator id); here they are tokenized as ordinary text (``[``, ``sep``,
``]``), so message text can never inject special tokens.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from trainer.encoder.checkpoint import TokenizerSettings
from trainer.tf_runtime import tf, tf_text

# Hugging Face WordPiece: a word longer than this many characters becomes the unknown token.
MAX_CHARS_PER_WORD = 100
_CJK_RANGES = (
    r"[\x{4E00}-\x{9FFF}]|[\x{3400}-\x{4DBF}]|[\x{20000}-\x{2A6DF}]|[\x{2A700}-\x{2B73F}]"
    r"|[\x{2B740}-\x{2B81F}]|[\x{2B820}-\x{2CEAF}]|[\x{F900}-\x{FAFF}]|[\x{2F800}-\x{2FA1F}]"
)
_PUNCTUATION = r"[!-/]|[:-@]|[\[-`]|[{-~]|\p{P}"


def save_preprocessor(
    path: Path,
    *,
    vocab_path: Path,
    vocab: list[str],
    settings: TokenizerSettings,
    max_seq_length: int,
) -> None:
    token_ids = {token: index for index, token in enumerate(vocab)}
    cls_id, sep_id, pad_id = (
        token_ids[settings.cls_token],
        token_ids[settings.sep_token],
        token_ids[settings.pad_token],
    )
    split_pattern = _PUNCTUATION + (f"|{_CJK_RANGES}" if settings.tokenize_chinese_chars else "")

    root = tf.train.Checkpoint()
    root.vocab_table = tf.lookup.StaticHashTable(
        tf.lookup.TextFileInitializer(
            str(vocab_path),
            key_dtype=tf.string,
            key_index=tf.lookup.TextFileIndex.WHOLE_LINE,
            value_dtype=tf.int64,
            value_index=tf.lookup.TextFileIndex.LINE_NUMBER,
        ),
        default_value=-1,
    )
    root.wordpiece = tf_text.WordpieceTokenizer(
        root.vocab_table,
        suffix_indicator="##",
        # Words over MAX_CHARS_PER_WORD characters are replaced by [UNK] first; this byte limit
        # must never cut in earlier (a character is at most 4 UTF-8 bytes).
        max_bytes_per_word=4 * MAX_CHARS_PER_WORD,
        token_out_type=tf.int64,
        unknown_token=settings.unk_token,
    )

    def normalize(texts: Any) -> Any:
        texts = tf.strings.unicode_transcode(
            texts,
            input_encoding="UTF-8",
            output_encoding="UTF-8",
            errors="replace",
            replacement_char=0xFFFD,
            replace_control_characters=False,
        )
        texts = tf.strings.regex_replace(texts, r"[\t\n\r]", " ")
        texts = tf.strings.regex_replace(texts, r"[\x{FFFD}\p{Cc}\p{Cf}\p{Co}]", "")
        texts = tf.strings.regex_replace(texts, r"[\p{Zs}\x{2028}\x{2029}]", " ")
        if settings.strip_accents:
            texts = tf_text.normalize_utf8(texts, "NFD")
            texts = tf.strings.regex_replace(texts, r"\p{Mn}", "")
        if settings.do_lower_case:
            # Character by character, as the reference does: no context-dependent final sigma.
            chars = tf.strings.unicode_split(texts, "UTF-8")
            chars = tf.ragged.map_flat_values(tf.strings.lower, chars, encoding="utf-8")
            texts = tf.strings.reduce_join(chars, axis=-1)
        return texts

    def wordpiece_ids(texts: Any) -> Any:
        words = tf_text.regex_split(normalize(texts), r"\s+|" + split_pattern, split_pattern)
        too_long = tf.strings.length(words.flat_values, unit="UTF8_CHAR") > MAX_CHARS_PER_WORD
        words = words.with_flat_values(
            tf.where(too_long, tf.constant(settings.unk_token), words.flat_values)
        )
        return tf.cast(root.wordpiece.tokenize(words), tf.int32)  # [batch, (words), (pieces)]

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    def tokenize(texts: Any) -> Any:
        return wordpiece_ids(texts)

    @tf.function(input_signature=[tf.TensorSpec([None], tf.string, name="texts")])
    def call(texts: Any) -> dict[str, Any]:
        ids = wordpiece_ids(texts).merge_dims(-2, -1)[:, : max_seq_length - 2]
        ids, type_ids = tf_text.combine_segments(
            [ids], start_of_sequence_id=cls_id, end_of_segment_id=sep_id
        )
        # to_tensor() pads to the longest sequence in the batch: dynamic padding.
        return {
            "input_word_ids": ids.to_tensor(default_value=pad_id),
            "input_mask": tf.ones_like(ids).to_tensor(default_value=0),
            "input_type_ids": type_ids.to_tensor(default_value=0),
        }

    @tf.function
    def bert_pack_inputs(inputs: list[Any], seq_length: Any = max_seq_length) -> dict[str, Any]:
        segments = [s.merge_dims(-2, -1) if s.ragged_rank > 1 else s for s in inputs]
        budget = tf.cast(seq_length, tf.int32) - (len(segments) + 1)
        trimmed = tf_text.RoundRobinTrimmer(max_seq_length=budget).trim(segments)
        ids, type_ids = tf_text.combine_segments(
            trimmed, start_of_sequence_id=cls_id, end_of_segment_id=sep_id
        )
        word_ids, mask = tf_text.pad_model_inputs(ids, seq_length, pad_value=pad_id)
        type_ids, _ = tf_text.pad_model_inputs(type_ids, seq_length, pad_value=0)
        return {"input_word_ids": word_ids, "input_mask": mask, "input_type_ids": type_ids}

    # Like TF Hub's BERT preprocessors: one or two segments, each [batch, (pieces)] or
    # [batch, (words), (pieces)], and seq_length as a scalar tensor (default max_seq_length).
    for rank in (2, 3):
        for num_segments in (1, 2):
            bert_pack_inputs.get_concrete_function(
                [tf.RaggedTensorSpec([None] * rank, tf.int32) for _ in range(num_segments)],
                seq_length=tf.TensorSpec([], tf.int32),
            )

    root.__call__ = call
    root.tokenize = tokenize
    root.bert_pack_inputs = bert_pack_inputs
    tf.saved_model.save(root, str(path), signatures={"serving_default": call})
