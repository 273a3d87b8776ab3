"""An appeal's decision trains like a moderator's correction."""

from __future__ import annotations

from storage.enums import AnnotationSource, Split, utcnow
from storage.records import LabelledExample
from trainer.retrain import training_mix


def test_appeal_labels_are_mixed_in_as_corrections() -> None:
    def example(i: int, source: AnnotationSource) -> LabelledExample:
        return LabelledExample(f"t{i}", str(i), "pos", source, "x", i, utcnow(), Split.TRAIN)

    examples = [example(i, AnnotationSource.SEED) for i in range(3000)]
    examples += [example(i, AnnotationSource.APPEAL) for i in range(3000, 3100)]
    mix, info = training_mix(
        examples, warm_start=True, replay_examples=1000, correction_share=0.25, seed=0
    )
    assert info["seed_examples"] == 1000 and info["correction_copies"] == 3
    assert len(mix) == 1000 + 300
