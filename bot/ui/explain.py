"""The private answer to "Why?": the words that pushed a prediction and similar examples."""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.ui.blocks import escape, label_title, percent, quote
from bot.ui.format import Block, context, section, shorten

if TYPE_CHECKING:
    from bot.services.explanations import ExplainedPrediction

NEIGHBOUR_QUOTE_CHARS = 160
WHY_ANSWER_BLOCK = "why_answer"


def _word(word: str) -> str:
    # In code spans nothing is formatted; a backtick in the word would end the span early.
    return "`" + escape(shorten(word.replace("`", "'"), 40)) + "`"


def explanation_text(explained: ExplainedPrediction) -> str:
    """The notification text (the blocks carry the details)."""
    explanation = explained.explanation
    words = ", ".join(w.word for w in explanation.top if w.attribution > 0)
    return (
        f"Why {label_title(explained.task, explanation.label)} "
        f"({percent(explanation.probability)}): {words or 'no single word stands out'}"
    )


def explanation_blocks(explained: ExplainedPrediction) -> list[Block]:
    """Why the production model predicts what it does for a stored prediction's text."""
    explanation = explained.explanation
    task = explained.task
    label = escape(label_title(task, explanation.label))
    lines = [
        f"*Why {label}?* {task.name} model v{escape(explanation.model_version)}: "
        f"*{label}* {percent(explanation.probability)}",
        quote(explained.text, 200),
    ]
    blocks: list[Block] = [section("\n".join(lines), block_id=WHY_ANSWER_BLOCK)]
    if explanation.top:
        words = " · ".join(
            f"{_word(w.word)} {'+' if w.attribution >= 0 else '−'}{abs(w.attribution):.2f}"
            for w in explanation.top
        )
        blocks.append(
            section(f"*Words that pushed it* (log-odds; + towards {label}, − against):\n{words}")
        )
    if explanation.neighbours:
        rows = [
            f"*{escape(label_title(task, n.label))}* · {n.similarity:.2f} similar\n"
            f"{quote(n.text, NEIGHBOUR_QUOTE_CHARS)}"
            for n in explanation.neighbours
        ]
        blocks.append(section("*Most similar labelled examples*\n" + "\n".join(rows)))
    notes = [
        f"Integrated gradients over {explanation.steps} steps from an empty message "
        f"({percent(explanation.baseline_probability)} {label}); similar examples come from "
        "the model's training data."
    ]
    if explanation.truncated:
        notes.append("The text is long: the model read only its beginning.")
    if explained.predicted_version != explanation.model_version:
        said = escape(label_title(task, explained.predicted_label))
        notes.append(
            f"The stored prediction ({said}) came from v{escape(explained.predicted_version)}; "
            f"v{escape(explanation.model_version)} serves now and explains it."
        )
    blocks.append(context(" ".join(notes)))
    return blocks
