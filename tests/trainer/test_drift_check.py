"""check_drift with a stand-in model (no TensorFlow): what it reads, records and refuses."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from storage import annotations, drift, messages, registry, schema
from storage.annotations import NewAnnotation
from storage.db import Database
from storage.enums import AnnotationSource, VersionStatus, utcnow
from trainer.drift_check import DriftCheckError, check_drift, reference_cutoff
from trainer.options import DriftOptions
from trainer.serving import Prediction, ServingError
from trainer.tasks import TaskSpec

TOY = TaskSpec("toy", ("neg", "pos"))
OPTIONS = DriftOptions(sample=60, permutations=200, min_messages=20, flag=3)


class StandIn:
    """Embeds a text by two features: whether it says 'flight', and its length."""

    labels = ("neg", "pos")

    def __init__(self, version: str = "1", embeddings: bool = True) -> None:
        self.version = version
        self._embeddings = embeddings
        self.read: list[str] = []

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        if not self._embeddings:
            raise ServingError("toy v1 has no embed signature; retrain the task")
        self.read += texts
        return np.array([[5.0 * ("flight" in t), len(t) / 10.0] for t in texts])

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        out = []
        for t in texts:
            pos = 0.9 if "flight" in t else 0.3
            label = "pos" if pos > 0.5 else "neg"
            out.append(Prediction(label, {"neg": 1 - pos, "pos": pos}, self.version, 1.0, 5, False))
        return out


@pytest.fixture
def database(tmp_path: Path) -> Database:
    database = Database.connect(f"sqlite:///{tmp_path / 'd.db'}")
    schema.upgrade(database)
    with database.begin() as session:
        annotations.add_annotations(
            session=session,
            task="toy",
            items=[NewAnnotation(f"a plain old text number {i}", "neg") for i in range(300)],
            annotator="seed",
            source=AnnotationSource.SEED,
        )
        version = registry.add_model_version(
            session=session,
            task="toy",
            version="1",
            status=VersionStatus.ACCEPTED,
            artifact_uri="models/toy/1",
            sha256="0" * 64,
            base_encoder="tiny",
            hyperparameters={},
            data_snapshot={"taken_at": (utcnow() + timedelta(seconds=1)).isoformat()},
            metrics={},
            created_by="cli",
        )
        registry.compare_and_set_alias(
            session=session,
            task="toy",
            version_id=version.id,
            expected_version_id=None,
            updated_by="cli",
        )
    return database


def _post(database: Database, texts: list[str], channel: str = "C") -> None:
    with database.begin() as session:
        for i, text in enumerate(texts):
            messages.add_message(
                session=session,
                team_id="T",
                channel_id=channel,
                ts=f"9.{i}",
                text=text,
                user_id=None,
            )


def test_a_drifted_check_reads_samples_records_and_flags(
    database: Database, tmp_path: Path
) -> None:
    _post(database, [f"my flight {i} was late" for i in range(80)])
    model = StandIn()
    seen: list[tuple[int, int]] = []
    report = check_drift(
        database,
        TOY,
        OPTIONS,
        home=tmp_path,
        classifier=model,
        progress=lambda done, total: seen.append((done, total)),
    )
    assert report.drifted and report.p_value == pytest.approx(2 / 201)
    assert (report.n_recent, report.n_recent_total, report.n_reference) == (60, 80, 60)
    assert len(model.read) == 120 and seen[-1] == (120, 120)  # capped at `sample` per side
    assert report.recent_labels == {"neg": 0.0, "pos": 1.0}
    assert report.reference_labels == {"neg": 1.0, "pos": 0.0}
    assert report.expected_macro_f1_raw == pytest.approx((0.0 + 2 * 0.9 / (2 * 0.9 + 0.1)) / 2)
    # corrected by the estimate's error on the labelled reference
    assert report.reference_macro_f1 is not None
    assert 0.0 <= report.expected_macro_f1 <= 1.0
    assert report.expected_macro_f1 != pytest.approx(report.expected_macro_f1_raw)
    assert report.episode_change == "opened" and report.flagged == 3
    assert len(report.most_drifted) == 3 and report.most_drifted[0].label == "pos"
    with database.begin() as session:
        [check] = drift.list_checks(session=session, task="toy")
    assert check.id == report.check_id and check.n_reference == 60
    assert check.details["permutations"] == 200
    assert report.to_json()["most_drifted"][0]["text"].startswith("my flight")


def test_refusals_are_clear_and_record_nothing(database: Database, tmp_path: Path) -> None:
    _post(database, [f"my flight {i}" for i in range(10)])
    with pytest.raises(DriftCheckError, match=r"only 10 channel message\(s\) in the last 7 day"):
        check_drift(database, TOY, OPTIONS, home=tmp_path, classifier=StandIn())
    _post(database, [f"another flight {i}" for i in range(30)], channel="C2")
    with pytest.raises(DriftCheckError, match="no embed signature; retrain"):
        check_drift(database, TOY, OPTIONS, home=tmp_path, classifier=StandIn(embeddings=False))
    with pytest.raises(DriftCheckError, match="has no production model"):
        check_drift(database, TaskSpec("other", ("a", "b")), OPTIONS, home=tmp_path)
    with database.begin() as session:
        assert drift.list_checks(session=session, task="toy") == []
    # --no-record: a report, nothing stored
    report = check_drift(database, TOY, OPTIONS, home=tmp_path, classifier=StandIn(), record=False)
    assert report.check_id is None and report.episode_change == "none" and report.drifted
    with database.begin() as session:
        assert drift.list_checks(session=session, task="toy") == []
        production = registry.get_alias(session=session, task="toy")
    assert production is not None
    assert reference_cutoff(production) > production.created_at  # the snapshot's time
