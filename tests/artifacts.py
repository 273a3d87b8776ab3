"""Small model artifacts for tests that move aliases: every move verifies the files."""

from __future__ import annotations

from pathlib import Path

from trainer.artifact import write_manifest


def write_fake_artifact(folder: Path, version: str) -> str:
    """A few files and their manifest in ``folder``; returns the artifact's sha256."""
    (folder / "variables").mkdir(parents=True, exist_ok=True)
    (folder / "saved_model.pb").write_bytes(f"graph {version}".encode())
    (folder / "variables" / "variables.data").write_bytes(version.encode() * 64)
    return write_manifest(folder)
