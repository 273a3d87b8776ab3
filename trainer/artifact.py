"""Model artifacts on disk: where they live, the sha256 manifest, and verification.

Every alias move and every load verifies the artifact in full (:func:`verify_artifact`):
a missing, changed or extra file refuses it, and the refusal names the file.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any
from urllib.parse import urlparse
from urllib.request import url2pathname

MANIFEST = "manifest.json"
LABELS_FILE = "labels.json"
METRICS_FILE = "metrics.json"
TRAINING_FILE = "training.json"
CARD_FILE = "model_card.md"
CONFUSION_FILE = "confusion_matrix.png"
RELIABILITY_FILE = "reliability_diagram.png"
LEGACY_PREFIX = "models"  # artifact URIs were relative to BERTBOT_HOME, under models/


class ArtifactError(ValueError):
    """An artifact is incomplete or its files do not match their manifest."""


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while block := handle.read(chunk):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(artifact_dir: Path, extra: Mapping[str, Any] | None = None) -> str:
    """Hash every file of an artifact into ``manifest.json``.

    Returns:
        The artifact's sha256: the hash of the manifest's file list (stable across machines).
    """
    files = {
        path.relative_to(artifact_dir).as_posix(): sha256_file(path)
        for path in sorted(artifact_dir.rglob("*"))
        if path.is_file() and path.name != MANIFEST
    }
    digest = artifact_digest(files)
    body = {"sha256": digest, "files": files, **dict(extra or {})}
    (artifact_dir / MANIFEST).write_text(json.dumps(body, indent=2, sort_keys=True) + "\n")
    return digest


def artifact_digest(files: Mapping[str, str]) -> str:
    canonical = json.dumps(dict(sorted(files.items())), separators=(",", ":"))
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def verify_artifact(artifact_dir: Path, expected_sha256: str | None = None) -> dict[str, Any]:
    """Check every file against the manifest (and the manifest against the registry's hash).

    Args:
        artifact_dir: The artifact's directory.
        expected_sha256: The hash recorded in the registry, if any.

    Returns:
        The manifest.

    Raises:
        ArtifactError: A file is missing, extra, or changed, or the hash differs.
    """
    manifest_path = artifact_dir / MANIFEST
    try:
        manifest = json.loads(manifest_path.read_text())
        files: dict[str, str] = manifest["files"]
    except FileNotFoundError as exc:
        raise ArtifactError(f"{artifact_dir} has no {MANIFEST}") from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise ArtifactError(f"{manifest_path} is not a valid manifest: {exc}") from exc
    digest = artifact_digest(files)
    if digest != manifest.get("sha256"):
        raise ArtifactError(
            f"{manifest_path} was edited: its file list does not hash to its sha256"
        )
    if expected_sha256 is not None and digest != expected_sha256:
        raise ArtifactError(
            f"{artifact_dir} has sha256 {digest[:12]}…, "
            f"the registry expects {expected_sha256[:12]}…"
        )
    present = {
        path.relative_to(artifact_dir).as_posix()
        for path in artifact_dir.rglob("*")
        if path.is_file() and path.name != MANIFEST
    }
    missing = sorted(set(files) - present)
    if missing:
        raise ArtifactError(f"{artifact_dir} is missing {', '.join(missing[:5])}")
    extra = sorted(present - set(files))
    if extra:
        raise ArtifactError(
            f"{artifact_dir} has file(s) its manifest does not list: {', '.join(extra[:5])}"
        )
    for name, expected in files.items():
        actual = sha256_file(artifact_dir / name)
        if actual != expected:
            raise ArtifactError(f"{artifact_dir / name} is corrupt (sha256 {actual[:12]}…)")
    return dict(manifest)


@dataclass(frozen=True)
class ArtifactRoot:
    """Where model artifacts live (``BERTBOT_ARTIFACT_ROOT``) and how registry URIs name them.

    The rule, owned here and nowhere else:

    * writing: a directory under ``root`` is stored as its path relative to ``root``
      (``spam/7``); any other directory as a ``file://`` URI;
    * reading: a ``file://`` URI (or an absolute path) is that path; a relative URI is
      ``root / uri``. A URI written before the artifact root existed was relative to
      BERTBOT_HOME (``models/spam/3``, for ``$BERTBOT_HOME/models/spam/3``): when
      ``root / uri`` does not exist, ``root / <uri without its first models/>`` and then
      ``home / uri`` are tried, so old rows keep loading with the default root, and with a
      shared root once ``$BERTBOT_HOME/models/*`` has been copied into it.

    Every process sharing a volume sets the same ``root`` whatever its own BERTBOT_HOME.

    Attributes:
        root: The artifact root directory.
        home: BERTBOT_HOME, for URIs written before the root existed (None: none kept).
    """

    root: Path
    home: Path | None = None

    @classmethod
    def of_home(cls, home: Path) -> ArtifactRoot:
        """The default layout: artifacts under ``home/models``."""
        return cls(home / LEGACY_PREFIX, home)

    def uri(self, artifact_dir: Path) -> str:
        """The registry URI of an artifact directory."""
        resolved = artifact_dir.resolve()
        try:
            return resolved.relative_to(self.root.resolve()).as_posix()
        except ValueError:
            return resolved.as_uri()

    def resolve(self, uri: str) -> Path:
        """The directory a registry URI names (see the class docstring for the rule)."""
        if uri.startswith("file:"):
            return Path(url2pathname(urlparse(uri).path))
        relative = PurePosixPath(uri)
        if relative.is_absolute():
            return Path(uri)
        likely = primary = self.root / relative
        candidates = [primary]
        if relative.parts[:1] == (LEGACY_PREFIX,) and len(relative.parts) > 1:
            likely = self.root.joinpath(*relative.parts[1:])
            candidates.append(likely)
        if self.home is not None:
            candidates.append(self.home / relative)
        for candidate in candidates:
            if candidate.exists():
                return candidate
        return likely  # nowhere: the error names where it should be


ArtifactLocation = Path | ArtifactRoot
"""An :class:`ArtifactRoot`, or a BERTBOT_HOME with the default root (``home/models``)."""


def artifact_root(where: ArtifactLocation) -> ArtifactRoot:
    return where if isinstance(where, ArtifactRoot) else ArtifactRoot.of_home(where)


def artifact_uri(where: ArtifactLocation, artifact_dir: Path) -> str:
    """The registry URI of ``artifact_dir``: relative to the artifact root when under it."""
    return artifact_root(where).uri(artifact_dir)


def resolve_artifact(where: ArtifactLocation, uri: str) -> Path:
    """The directory a registry URI names; every reader of an artifact goes through here."""
    return artifact_root(where).resolve(uri)
