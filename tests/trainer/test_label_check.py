"""The label check on separable synthetic embeddings (a fake model with ``embed``): swapped
labels become suspects, the rogue annotator is flagged, honest and lone ones are not, and
held-out texts leave the training mix and the gate's eval until an admin decides."""

from __future__ import annotations

import zlib

import numpy as np
import pytest

from storage import annotations, registry
from storage import label_quality as quality_store
from storage.annotations import NewAnnotation
from storage.db import Database
from storage.enums import AnnotationSource, SuspectStatus, VersionStatus
from storage.records import ModelVersionRecord
from trainer.decisions import Check, GateDecision
from trainer.label_check import (
    CHANCE_REASON,
    check_snapshot,
    held_out,
    is_chance_rejection,
    mark_chance_rejection,
    split_held_out,
)
from trainer.label_quality import cohen_kappa, flag_annotators
from trainer.options import QualityOptions
from trainer.tasks import TaskSpec

SENTIMENT = TaskSpec("sentiment", ("negative", "neutral", "positive"))
SWAP = {"negative": "positive", "positive": "negative", "neutral": "neutral"}


class FakeModel:
    """Embeds a text as its class centre plus seeded noise (well separated classes)."""

    def __init__(self) -> None:
        rng = np.random.default_rng(0)
        self.centres = {label: rng.normal(0, 3, 16) for label in SENTIMENT.labels}
        self.calls = 0

    def embed(self, texts: list[str]) -> np.ndarray:
        self.calls += 1
        rows = []
        for text in texts:
            label, number = text.split(" ", 2)[:2]
            noise = np.random.default_rng(zlib.crc32(text.encode())).normal(0, 1, 16)
            rows.append(self.centres[label] + noise)
        return np.array(rows, dtype=np.float32)


def text(label: str, i: int, who: str = "seed") -> str:
    return f"{label} {i} {who}"


@pytest.fixture
def database(fresh_database: Database) -> Database:
    """A new migrated database per test, SQLite and PostgreSQL."""
    return fresh_database


def seed(database: Database, per_label: int = 150) -> None:
    with database.begin() as session:
        annotations.add_annotations(
            session=session,
            task="sentiment",
            items=[
                NewAnnotation(text(label, i), label)
                for label in SENTIMENT.labels
                for i in range(per_label)
            ],
            annotator="seed",
            source=AnnotationSource.SEED,
        )


def correct(database: Database, who: str, count: int, *, swapped: bool = False) -> list[int]:
    ids = []
    with database.begin() as session:
        for i in range(count):
            label = SENTIMENT.labels[i % 3]
            given = SWAP[label] if swapped else label
            record, _ = annotations.add_annotation(
                session=session,
                task="sentiment",
                text=text(label, i, who),
                label=given,
                annotator=who,
                source=AnnotationSource.CORRECTION,
            )
            ids.append(record.id)
    return ids


def production(database: Database) -> ModelVersionRecord:
    with database.begin() as session:
        return registry.add_model_version(
            session=session,
            task="sentiment",
            version="1",
            status=VersionStatus.ACCEPTED,
            artifact_uri="models/sentiment/1",
            sha256="0" * 64,
            base_encoder="fake",
            hyperparameters={},
            data_snapshot={},
            metrics={},
            created_by="test",
        )


def effective(database: Database):  # type: ignore[no-untyped-def]
    with database.begin() as session:
        return annotations.effective_labels(session=session, task="sentiment")


def run_check(database: Database, version: ModelVersionRecord | None, model=None, **options):  # type: ignore[no-untyped-def]
    model = model or FakeModel()
    return check_snapshot(
        database,
        SENTIMENT,
        QualityOptions(**options),
        effective(database),
        version,
        run_id=None,
        embedder=lambda _version: model,
    )


def test_swapped_labels_are_suspects_and_the_rogue_is_flagged(database: Database) -> None:
    seed(database)
    honest = {who: correct(database, who, 60) for who in ("U0HONEST1", "U0HONEST2", "U0HONEST3")}
    rogue = correct(database, "U0ROGUE", 60, swapped=True)
    model = FakeModel()
    result = run_check(database, production(database), model)

    assert result.ran, result.reason
    assert model.calls == 1  # one embedding pass per check
    with database.begin() as session:
        suspects = quality_store.list_suspects(session=session, task="sentiment")
        flags = quality_store.list_flags(session=session, task="sentiment")
        check = quality_store.latest_check(session=session, task="sentiment")
    flagged_ids = {s.suspect.annotation_id for s in suspects}
    swapped = {i for n, i in enumerate(rogue) if n % 3 != 1}  # neutral stays neutral
    honest_ids = {i for ids in honest.values() for i in ids}
    assert len(flagged_ids & swapped) >= 0.8 * len(swapped)
    assert len(flagged_ids & honest_ids) <= 0.05 * len(honest_ids)
    assert all(s.suspect.status == SuspectStatus.HELD for s in suspects)
    one = next(s.suspect for s in suspects if s.suspect.annotation_id in swapped)
    assert one.suggested_label == SWAP[one.given_label] and one.given_probability < 0.5
    assert [f.annotator for f in flags] == ["U0ROGUE"] and result.flagged == ["U0ROGUE"]
    assert check is not None and check.details["annotators"]["U0HONEST1"]["agree"] >= 57

    # Held out: every suspect and every correction of the flagged rogue; no seed row.
    with database.begin() as session:
        held = held_out(session, "sentiment")
    kept, summary = split_held_out(effective(database), held)
    assert summary["n"] == len(held) >= len(rogue)
    assert not {e.annotation_id for e in kept} & set(rogue)
    assert all(
        e.source != AnnotationSource.SEED for e in effective(database) if e.text_hash in held
    )

    # A second check stores no duplicate suspect and keeps the one open flag.
    again = run_check(database, production_version(database))
    assert again.new_suspects == 0
    with database.begin() as session:
        assert len(quality_store.list_flags(session=session, task="sentiment")) == 1


def production_version(database: Database) -> ModelVersionRecord:
    with database.begin() as session:
        found = registry.get_model_version(session=session, task="sentiment", version="1")
    assert found is not None
    return found


def test_a_lone_annotator_is_never_flagged(database: Database) -> None:
    seed(database)
    correct(database, "U0ALONE", 90, swapped=True)
    result = run_check(database, production(database))
    assert result.ran and result.suspects > 0 and result.flagged == []


def test_the_check_is_skipped_with_a_reason(database: Database) -> None:
    seed(database, per_label=20)
    assert "no production model" in run_check(database, None).reason
    version = production(database)
    few = run_check(database, version)
    assert not few.ran and "fewer than 10" in few.reason
    correct(database, "U0MOD", 12)
    no_embed = check_snapshot(
        database,
        SENTIMENT,
        QualityOptions(),
        effective(database),
        version,
        run_id=None,
        embedder=lambda _version: object(),
    )
    assert not no_embed.ran and "cannot embed" in no_embed.reason
    off = run_check(database, version, enabled=False)
    assert not off.ran and "off" in off.reason
    with database.begin() as session:
        latest = quality_store.latest_check(session=session, task="sentiment")
    assert latest is not None and not latest.ran and latest.reason == off.reason


def test_clearing_releases_and_an_admin_label_replaces(database: Database) -> None:
    seed(database)
    for who in ("U0A", "U0B"):
        correct(database, who, 45)
    rogue = correct(database, "U0ROGUE", 45, swapped=True)
    run_check(database, production(database))
    with database.begin() as session:
        suspects = quality_store.list_suspects(session=session, task="sentiment")
        before = held_out(session, "sentiment")
    first, second = suspects[0].suspect, suspects[1].suspect
    assert first.text_hash in before and second.text_hash in before

    with database.begin() as session:
        quality_store.clear_flag(session=session, task="sentiment", annotator="U0ROGUE", by="U0ADM")
        quality_store.decide_suspect(
            session=session, suspect_id=first.id, status=SuspectStatus.CLEARED, by="U0ADM"
        )
        annotations.add_annotation(
            session=session,
            task="sentiment",
            text=suspects[1].text,
            label=SWAP[second.given_label],
            annotator="U0ADM",
            source=AnnotationSource.ADMIN,
        )
        after = held_out(session, "sentiment")
        assert first.text_hash not in after and second.text_hash not in after
        assert quality_store.confirm_superseded(session=session, task="sentiment") == 1
        decided = quality_store.get_suspect(session=session, suspect_id=second.id).suspect
        assert decided.status == SuspectStatus.CONFIRMED and decided.decided_by == "U0ADM"
        with pytest.raises(quality_store.DecisionError):
            quality_store.decide_suspect(
                session=session, suspect_id=first.id, status=SuspectStatus.CLEARED, by="U0ADM"
            )
    labels = {e.text_hash: e.label for e in effective(database)}
    assert labels[second.text_hash] == SWAP[second.given_label]
    assert labels[first.text_hash] == first.given_label  # kept, and trains again
    # Cleared, with nothing labelled since: the next check does not flag the rogue again.
    assert run_check(database, production_version(database)).flagged == []
    assert len(rogue) == 45


def test_a_chance_rejection_marks_the_batch_suspect(database: Database) -> None:
    seed(database, per_label=10)
    ids = set(correct(database, "U0MOD", 9))
    decision = GateDecision(
        False,
        "rejected",
        checks=[Check("learned_corrections", False, 0.4, 0.01, "no better than chance")],
    )
    assert is_chance_rejection(decision)
    assert not is_chance_rejection(GateDecision(True, "promoted"))
    with database.begin() as session:
        marked = mark_chance_rejection(
            session, "sentiment", run_id=None, examples=effective(database), since=None, actor="cli"
        )
        suspects = quality_store.list_suspects(session=session, task="sentiment")
    assert marked == 9 and {s.suspect.annotation_id for s in suspects} == ids
    assert {s.suspect.reason for s in suspects} == {CHANCE_REASON}


def test_flag_rule_and_kappa() -> None:
    options = QualityOptions()
    verdicts = {
        v.annotator: v
        for v in flag_annotators({"a": (100, 5), "b": (100, 6), "rogue": (100, 40)}, options)
    }
    assert verdicts["rogue"].flagged and not verdicts["a"].flagged and not verdicts["b"].flagged
    few = flag_annotators({"a": (100, 5), "rogue": (10, 8)}, options)
    assert not any(v.flagged for v in few)  # under flag_min_corrections
    assert cohen_kappa([]) is None
    assert cohen_kappa([("x", "x"), ("y", "y")]) == 1.0
    assert cohen_kappa([("x", "y"), ("y", "x")]) == -1.0


def test_an_annotator_is_judged_by_a_model_that_never_saw_their_labels() -> None:
    """A rogue who labels one region of the space systematically wrong teaches plain k-fold
    their pattern (the other folds hold their other labels); leave-one-annotator-out does not."""
    from trainer.label_quality import find_label_issues

    rng = np.random.default_rng(0)
    seed_x = rng.normal(0.0, 1.0, size=(300, 4))
    seed_y = (seed_x[:, 0] > 0).astype(int)  # class 1 right of zero
    rogue_x = rng.normal(0.0, 0.3, size=(60, 4)) + np.array([3.0, 6.0, 0.0, 0.0])
    rogue_y = np.zeros(60, dtype=int)  # far right (truly class 1), labelled 0 by the rogue
    x = np.vstack([seed_x, rogue_x])
    y = np.concatenate([seed_y, rogue_y])
    groups = [None] * 300 + ["rogue"] * 60

    plain = find_label_issues(x, y, 2, folds=5, seed=0)
    judged = find_label_issues(x, y, 2, folds=5, seed=0, groups=groups)
    rogue = slice(300, 360)
    # Under k-fold the rogue's own labels vouch for each other in their lonely region...
    assert plain.probabilities[rogue, 0].mean() > 0.5
    # ...left out as a whole, they are judged by everyone else's labels: class 1 there.
    assert judged.probabilities[rogue, 1].mean() > 0.9
    assert judged.issue[rogue].mean() > 0.9 > plain.issue[rogue].mean()
    # Seed rows keep their k-fold probabilities.
    np.testing.assert_allclose(judged.probabilities[:300], plain.probabilities[:300])
