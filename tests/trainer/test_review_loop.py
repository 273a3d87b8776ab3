"""The review queue on the tiny BERT: ``bertbot messages import`` then ``bertbot review next``
with the production model's embeddings (diversity, near-duplicates collapsed)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bertbot.cli import main
from storage.texts import normalise_text
from tests.trainer.test_drift_loop import _write, home  # noqa: F401 - the fixture
from tests.trainer.test_retrain import new_domain
from tests.trainer.test_train import toy_examples


@pytest.mark.slow
def test_review_next_spreads_over_embeddings_and_asks_near_duplicates_once(
    home: Path,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["db", "upgrade"]) == 0
    seed = _write(
        tmp_path / "seed.csv", ["text", "label"], [(e.text, e.label) for e in toy_examples(300)]
    )
    assert main(["data", "import", seed, "--task", "toy"]) == 0
    assert main(["retrain", "--task", "toy"]) == 0
    rows = [(e.text,) for e in toy_examples(40, seed=5)]
    rows += [(text,) for text, _ in new_domain(40, seed=4)]
    rows += [(rows[0][0].upper(),), (f"  {rows[0][0]}  ",)]  # two copies of one message
    assert main(["messages", "import", _write(tmp_path / "m.csv", ["text"], rows)]) == 0
    capsys.readouterr()

    assert main(["review", "next", "--task", "toy", "--limit", "12", "--json"]) == 0
    out, err = capsys.readouterr()
    items = json.loads(out)
    assert "embedded" in err  # progress on stderr
    assert len(items) == 12
    texts = [normalise_text(item["text"]) for item in items]
    assert len(set(texts)) == 12  # near-duplicates asked once
    assert items[0]["reason"].startswith("uncertain: margin")
    assert any(item["reason"].startswith("diverse: far from") for item in items[1:])
    assert all("no embeddings" not in item["reason"] for item in items)
    assert set(items[0]["probabilities"]) == {"neg", "pos"}

    assert main(["review", "next", "--task", "toy", "--limit", "200", "--json"]) == 0
    everything = json.loads(capsys.readouterr().out)
    copies = next(i for i in everything if normalise_text(i["text"]) == normalise_text(rows[0][0]))
    assert len(copies["duplicates"]) == 2
    # Every imported message is asked, or stands behind the one item asked for its group.
    assert sum(1 + len(item["duplicates"]) for item in everything) == len(rows)
