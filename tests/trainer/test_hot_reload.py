"""Serving swaps models when production moves, without failing in-flight predictions."""

from __future__ import annotations

import shutil
import threading
import time
from pathlib import Path

import pytest

from trainer.serving import ModelRef, ProductionModels, SavedModelClassifier

from .test_train import trained  # noqa: F401 - the module-scoped trained model fixture


def test_hot_reload_under_concurrent_predictions(trained, tmp_path: Path) -> None:  # noqa: F811
    result, _ = trained
    v1, v2, bad = tmp_path / "v1", tmp_path / "v2", tmp_path / "bad"
    for target in (v1, v2, bad):
        shutil.copytree(result.artifact_dir, target)
    variables = next((bad / "variables").glob("variables.data-*"))
    data = bytearray(variables.read_bytes())
    data[len(data) // 3] ^= 0x55
    variables.write_bytes(bytes(data))

    pointer = {"ref": ModelRef("toy", "1", v1, result.sha256)}
    models = ProductionModels(["toy"], lambda task: pointer["ref"], poll_seconds=0.2)
    assert models.refresh() == {"toy": "loaded 1"}

    stop = threading.Event()
    calls, failures, seen = [0], [], set()

    def predict() -> None:
        while not stop.is_set():
            try:
                model = models.get("toy")
                assert model is not None
                (prediction,) = model.predict(["good great day"])
                seen.add(prediction.model_version)
                calls[0] += 1
            except Exception as exc:  # noqa: BLE001 - collected and asserted below
                failures.append(exc)

    threads = [threading.Thread(target=predict) for _ in range(4)]
    for thread in threads:
        thread.start()
    models.start()
    time.sleep(1.0)
    pointer["ref"] = ModelRef("toy", "2", v2, result.sha256)  # the alias moves
    deadline = time.monotonic() + 30
    while models.versions().get("toy") != "2" and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.0)
    pointer["ref"] = ModelRef("toy", "3", bad, result.sha256)  # a corrupt artifact
    time.sleep(1.5)
    stop.set()
    for thread in threads:
        thread.join()
    models.stop()

    print(
        f"hot reload: {calls[0]} predictions from 4 threads, versions seen {sorted(seen)}, "
        f"{len(failures)} failed"
    )
    assert failures == []
    assert seen == {"1", "2"}
    assert models.versions() == {"toy": "2"}, "the corrupt v3 must be refused, v2 kept"
    assert models.refresh("toy")["toy"].startswith("refused 3")


def test_a_corrupt_model_is_refused_at_first_load_too(trained, tmp_path: Path) -> None:  # noqa: F811
    result, _ = trained
    bad = tmp_path / "bad"
    shutil.copytree(result.artifact_dir, bad)
    (bad / "labels.json").write_text('["pos", "neg"]\n')  # tampered after export
    models = ProductionModels(["toy"], lambda task: ModelRef("toy", "1", bad, result.sha256))
    assert models.refresh()["toy"].startswith("refused 1")
    assert models.get("toy") is None
    with pytest.raises(Exception, match="corrupt|registry expects"):
        SavedModelClassifier.load(bad, expected_sha256=result.sha256)


def test_a_registry_error_keeps_the_current_model(trained, tmp_path: Path) -> None:  # noqa: F811
    result, _ = trained
    state = {"fail": False}

    def resolve(task: str) -> ModelRef:
        if state["fail"]:
            raise RuntimeError("database unreachable")
        return ModelRef("toy", "1", result.artifact_dir, result.sha256)

    models = ProductionModels(["toy"], resolve)
    models.refresh()
    state["fail"] = True
    assert models.refresh()["toy"].startswith("error")
    assert models.get("toy") is not None and models.get("toy").version == "1"


def test_files_that_arrive_after_the_alias_moved_are_served_without_a_restart(
    trained,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Shared storage may lag: the refused version is retried with back-off, then served."""
    result, _ = trained
    v1, v2 = tmp_path / "v1", tmp_path / "v2"
    shutil.copytree(result.artifact_dir, v1)
    pointer = {"ref": ModelRef("toy", "1", v1, result.sha256)}
    models = ProductionModels(
        ["toy"], lambda task: pointer["ref"], poll_seconds=30.0, retry_base_s=1.0
    )
    assert models.refresh() == {"toy": "loaded 1"}
    models.start()
    try:
        pointer["ref"] = ModelRef("toy", "2", v2, result.sha256)  # the alias moves first
        moved = time.monotonic()
        assert models.refresh("toy")["toy"].startswith("refused 2")
        assert models.versions() == {"toy": "1"}, "v1 keeps serving meanwhile"
        arrive = threading.Timer(5.0, shutil.copytree, args=(result.artifact_dir, v2))
        arrive.start()
        deadline = moved + 30
        while models.versions().get("toy") != "2" and time.monotonic() < deadline:
            time.sleep(0.1)
        served_after = time.monotonic() - moved
        arrive.join()
    finally:
        models.stop()
    print(f"late files: v2 served {served_after:.1f} s after the alias moved (files at 5 s)")
    assert models.versions() == {"toy": "2"}, "the late files were never picked up"
    assert 5.0 <= served_after < 20.0, "picked up by the back-off, well before the 30-s poll"
