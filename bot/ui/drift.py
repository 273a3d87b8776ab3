"""The admins' drift notice: what changed, how sure, what the model may be worth now."""

from __future__ import annotations

from collections.abc import Sequence

from bot.ui.blocks import escape, label_title
from bot.ui.format import Block, context, section
from bot.ui.retrain import Rendered
from storage.records import DriftCheckRecord
from trainer.tasks import TaskSpec


def _p(value: float) -> str:
    return f"{value:.3g}"


def _shares(task: TaskSpec, shares: dict[str, float]) -> str:
    return ", ".join(
        f"{escape(label_title(task, label))} {shares.get(label, 0.0):.0%}" for label in task.labels
    )


def drift_notice(task: TaskSpec, check: DriftCheckRecord, *, admins: Sequence[str]) -> Rendered:
    """The one message of a drift episode, from the check that opened it (or the latest).

    Args:
        task: The task that drifted.
        check: A check of the episode that found drift.
        admins: Slack user ids to mention (BERTBOT_ADMINS).
    """
    details = check.details
    text = (
        f"Drift in {task.name}: the last {check.days:g} days of channel messages differ from "
        f"the eval data of production v{check.model_version} (p = {_p(check.p_value)})"
    )
    mentions = " ".join(f"<@{admin}>" for admin in admins)
    blocks: list[Block] = [
        section(
            (f"{mentions} " if mentions else "")
            + f":warning: *Drift in {escape(task.name)}*: the last {check.days:g} days of "
            f"channel messages ({check.n_recent} compared) differ from the eval split "
            f"production v{escape(check.model_version)} was checked on ({check.n_reference} "
            f"texts): p = {_p(check.p_value)} < {check.alpha:g} (embeddings "
            f"{_p(check.p_embeddings)}, predicted labels {_p(check.p_labels)}; Bonferroni).",
            block_id="drift:summary",
        ),
        section(
            f"*Expected macro-F1 on the recent messages: {check.expected_macro_f1:.3f}* "
            "(estimated from the model's calibrated confidences, without labels; it assumes "
            "the calibration still holds).",
            block_id="drift:expected_f1",
        ),
    ]
    reference, recent = details.get("reference_labels"), details.get("recent_labels")
    if isinstance(reference, dict) and isinstance(recent, dict):
        blocks.append(
            context(
                f"Predicted labels: eval split {_shares(task, reference)}; recent "
                f"{_shares(task, recent)}.",
                block_id="drift:labels",
            )
        )
    blocks.append(
        context(
            "The most drifted messages lead the *Needs review* queue in bertbot's App Home: "
            "labelling them gives the next retrain what it lacks. This is the one message of "
            "this drift episode; the next check that finds no drift ends it.",
            block_id="drift:next",
        )
    )
    return Rendered(text, blocks)
