"""The artifact root rule: how registry URIs name artifact directories (trainer.artifact)."""

from __future__ import annotations

from pathlib import Path

import pytest

from bertbot.settings import load_settings
from trainer.artifact import ArtifactRoot, artifact_uri, resolve_artifact


def test_new_artifacts_are_stored_relative_to_the_root(tmp_path: Path) -> None:
    root = ArtifactRoot(tmp_path / "shared", tmp_path / "home")
    assert root.uri(tmp_path / "shared" / "spam" / "7") == "spam/7"
    assert root.resolve("spam/7") == tmp_path / "shared" / "spam" / "7"


def test_a_directory_outside_the_root_is_stored_as_a_file_uri(tmp_path: Path) -> None:
    root = ArtifactRoot(tmp_path / "shared", tmp_path / "home")
    elsewhere = tmp_path / "elsewhere" / "spam" / "1"
    uri = root.uri(elsewhere)
    assert uri.startswith("file://")
    assert root.resolve(uri) == elsewhere.resolve()
    # any other process, whatever its root, reads the same path
    assert ArtifactRoot(Path("/nowhere")).resolve(uri) == elsewhere.resolve()


def test_two_homes_sharing_a_root_resolve_the_same_directory(tmp_path: Path) -> None:
    shared = tmp_path / "volume"
    (shared / "spam" / "3").mkdir(parents=True)
    one, two = ArtifactRoot(shared, tmp_path / "a"), ArtifactRoot(shared, tmp_path / "b")
    uri = one.uri(shared / "spam" / "3")
    assert two.resolve(uri) == one.resolve(uri) == shared / "spam" / "3"


def test_a_home_path_means_the_default_root(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert artifact_uri(home, home / "models" / "spam" / "2") == "spam/2"
    assert resolve_artifact(home, "spam/2") == home / "models" / "spam" / "2"


def test_old_home_relative_uris_still_load_with_the_default_root(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "models" / "spam" / "1").mkdir(parents=True)
    assert resolve_artifact(home, "models/spam/1") == home / "models" / "spam" / "1"
    assert ArtifactRoot.of_home(home).resolve("models/spam/1") == home / "models/spam/1"


def test_old_uris_load_from_a_shared_root_once_copied_else_from_home(tmp_path: Path) -> None:
    home, shared = tmp_path / "home", tmp_path / "shared"
    (home / "models" / "spam" / "1").mkdir(parents=True)
    root = ArtifactRoot(shared, home)
    # not copied yet: the old place under this process's home
    assert root.resolve("models/spam/1") == home / "models" / "spam" / "1"
    (shared / "spam" / "1").mkdir(parents=True)
    # copied into the root: the root wins
    assert root.resolve("models/spam/1") == shared / "spam" / "1"
    # a missing old artifact is looked for where the root would keep it
    assert root.resolve("models/spam/9") == shared / "spam" / "9"


def test_a_task_named_models_is_not_mistaken_for_an_old_uri(tmp_path: Path) -> None:
    shared = tmp_path / "shared"
    (shared / "models" / "4").mkdir(parents=True)
    assert ArtifactRoot(shared).resolve("models/4") == shared / "models" / "4"


def test_other_old_home_relative_paths_resolve_under_home(tmp_path: Path) -> None:
    home = tmp_path / "home"
    (home / "bench" / "m").mkdir(parents=True)
    assert ArtifactRoot(tmp_path / "shared", home).resolve("bench/m") == home / "bench" / "m"


@pytest.mark.parametrize("configured", [None, "shared/models"])
def test_settings_choose_the_root(
    configured: str | None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    overrides = {"home": tmp_path / "home"}
    if configured:
        overrides["artifact_root"] = tmp_path / configured
    settings = load_settings(**overrides)
    expected = tmp_path / (configured or "home/models")
    assert settings.models_dir == expected
    assert settings.artifacts == ArtifactRoot(expected, tmp_path / "home")
