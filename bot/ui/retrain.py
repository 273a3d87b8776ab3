"""Block Kit builders for ``/retrain``: answers, the progress message, the result card and
the "Promote anyway" / "Roll back" modal. Pure functions of records; no I/O.

A card button carries everything its click needs (task, version, run) in its value, and the
modal carries where the card is in its ``private_metadata``: no server-side session state.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, NamedTuple

from bot.services.retrain_requests import (
    PROMOTE,
    ROLLBACK,
    Busy,
    JobInfo,
    MoveRequest,
    RequestOutcome,
    RetrainPlan,
    RetrainReport,
)
from bot.ui.blocks import escape
from trainer.decisions import GateDecision, RetrainProgress

if TYPE_CHECKING:
    from trainer.promotion import AliasMove

Block = dict[str, Any]

PROMOTE_ACTION = "bertbot_retrain_promote"
ROLLBACK_ACTION = "bertbot_retrain_rollback"
MOVE_ACTIONS = (PROMOTE_ACTION, ROLLBACK_ACTION)
CARD_BLOCK_PREFIX = "retrain_card:"
MOVE_CALLBACK = "bertbot_retrain_move"
REASON_BLOCK = "reason"
REASON_ACTION = "reason_input"

NOT_ADMIN_RETRAIN = "Only admins can retrain models. Nothing was started."
NOT_ADMIN_MOVE = "Only admins can promote or roll back models. Nothing was changed."
NOT_ENABLED = (
    "Retraining from Slack is not enabled in this bot process; an admin can run "
    "`bertbot retrain --task <task>` on the server."
)
_MAX_TEXT = 2900


class Rendered(NamedTuple):
    """A message's notification text and its blocks."""

    text: str
    blocks: list[Block]


@dataclass(frozen=True)
class CardRef:
    """Where a result card is, so a modal's submission can update it.

    Attributes:
        channel_id: The card's channel.
        ts: The card's timestamp (None for an ephemeral card).
        response_url: The click's response_url (replaces an ephemeral card).
    """

    channel_id: str | None
    ts: str | None
    response_url: str | None


def _plain(text: str, limit: int = 75) -> dict[str, Any]:
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return {"type": "plain_text", "text": text, "emoji": True}


def _section(text: str, block_id: str | None = None) -> Block:
    block: Block = {"type": "section", "text": {"type": "mrkdwn", "text": text[:_MAX_TEXT]}}
    if block_id:
        block["block_id"] = block_id
    return block


def _context(text: str) -> Block:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": text[:_MAX_TEXT]}]}


def slack_date(when: datetime) -> str:
    """A time every reader sees in their own time zone (UTC as the fallback text)."""
    when = when.astimezone(UTC)
    return (
        f"<!date^{int(when.timestamp())}^{{date_short_pretty}} at {{time}}|"
        f"{when:%Y-%m-%d %H:%M} UTC>"
    )


def _who(user: str) -> str:
    """A Slack user id as a mention; ``scheduler``/``cli`` as they are."""
    if user[:1] in ("U", "W") and user.isalnum() and user.upper() == user:
        return f"<@{user}>"
    return f"`{escape(user)}`"


def _f1(value: Any) -> str:
    return f"{value:.4f}" if isinstance(value, int | float) else "—"


# /retrain answers -------------------------------------------------------------------------


def usage_text(task_names: Sequence[str]) -> str:
    return (
        "Usage: `/retrain [task] [--force]` (admins only). With no task, every active task "
        f"({', '.join(task_names)}) is retrained, one after the other. A task is retrained only "
        "when enough moderators' corrections arrived since production's snapshot, unless "
        "`--force`; the new model replaces production only if it passes the gate."
    )


def _plan_line(plan: RetrainPlan) -> str:
    name = f"*{plan.task.name}*"
    counts = (
        f"{plan.examples:,} examples, {plan.new_corrections:,} new "
        f"correction{'s' if plan.new_corrections != 1 else ''}"
    )
    if plan.production is None:
        return f"Training the first {name} model on {counts}."
    return f"Retraining {name} on {counts} (since production v{escape(plan.production)})."


def busy_line(busy: Busy) -> str:
    """Who started the retrain that is in the way, and when."""
    run = f", run {busy.run_id}" if busy.run_id is not None else ""
    via = f" via {busy.trigger}" if busy.trigger and busy.trigger != "admin" else ""
    state = "queued" if busy.queued else "already being retrained"
    return (
        f"*{busy.task}* is {state}: started by {_who(busy.requested_by)}{via} "
        f"{slack_date(busy.since)}{run}. Nothing new was started."
    )


def _too_few_line(plan: RetrainPlan) -> str:
    return (
        f"*{plan.task.name}* was not retrained: {plan.new_corrections} new "
        f"correction(s) since production v{escape(plan.production or '?')}'s snapshot, fewer "
        f"than {plan.min_new_labels}. `/retrain {plan.task.name} --force` retrains anyway."
    )


def request_text(outcome: RequestOutcome) -> str:
    """The private answer to ``/retrain``: what started, what is busy, what is not needed."""
    lines = [_plan_line(plan) for plan in outcome.started]
    if outcome.started:
        where = "this channel" if len(outcome.started) == 1 else "this channel, one per task"
        lines.append(f"Progress and the result card will appear in {where}.")
    lines += [busy_line(busy) for busy in outcome.busy]
    lines += [_too_few_line(plan) for plan in outcome.not_started]
    return "\n".join(lines) or "Nothing to retrain."


# The progress message ----------------------------------------------------------------


def progress_line(update: RetrainProgress | None) -> str:
    """One line about where a retrain is."""
    if update is None:
        return "Waiting for the worker…"
    fraction = update.fraction
    if update.phase == "train" and fraction is not None:
        line = f"Training: step {update.step:,} of {update.total_steps:,} ({fraction * 100:.0f}%)"
        if update.eta_known and update.eta_s is not None:
            minutes = max(1, round(update.eta_s / 60))
            line += f" · about {minutes} min left"
        return line
    message = escape(update.message or update.phase or "working")
    return (message[:1].upper() + message[1:])[:300]


def progress_message(job: JobInfo, update: RetrainProgress | None) -> Rendered:
    """The message a job keeps updating until it becomes the result card."""
    plan = job.plan
    header = (
        f":hourglass_flowing_sand: *Retraining {plan.task.name}* for {_who(job.requested_by)} "
        f"on {plan.examples:,} examples, {plan.new_corrections:,} new corrections"
    )
    line = progress_line(update)
    return Rendered(
        f"Retraining {plan.task.name}: {line}",
        [
            _section(f"{header}\n{line}"),
            _context(
                f"Requested {slack_date(job.requested_at)} · production stays "
                f"{'v' + escape(plan.production) if plan.production else 'empty'} unless the "
                "candidate passes the gate"
            ),
        ],
    )


def failure_card(job: JobInfo, message: str) -> Rendered:
    """A job that ended without a result: a short reason, never a traceback."""
    return Rendered(
        message,
        [
            _section(f":warning: *{job.task}: no new model*\n{escape(message)}"),
            _context(
                f"Requested by {_who(job.requested_by)} {slack_date(job.requested_at)} · "
                "production is unchanged"
            ),
        ],
    )


# The result card ----------------------------------------------------------------------


def _header(report: RetrainReport) -> str:
    task = report.task.name
    candidate = report.candidate
    if report.skipped or candidate is None:
        return f":fast_forward: *{task} was not retrained*"
    version = escape(candidate.version)
    if report.promoted:
        before = report.previous_production
        was = f" (was v{escape(before)})" if before and before != candidate.version else ""
        first = "" if before else " (the task's first model)"
        return f":white_check_mark: *{task} v{version} promoted: it is production now*{was}{first}"
    now = f"v{escape(report.production.version)}" if report.production else "empty"
    if report.superseded:
        return (
            f":twisted_rightwards_arrows: *{task} v{version} superseded*: production moved to "
            f"{now} while it trained, so it was not promoted"
        )
    return f":no_entry_sign: *{task} v{version} not promoted*: production stays {now}"


def _per_class_table(report: RetrainReport) -> str | None:
    decision = report.decision
    if decision is None:
        return None
    candidate = decision.candidate.get("per_class") or {}
    production = (decision.production or {}).get("per_class") or {}
    if not candidate:
        return None
    labels = decision.labels
    width = max(8, *(len(label) for label in labels))
    rows = [f"{'F1':<{width}}  candidate  production"]
    for label in labels:
        mine = (candidate.get(label) or {}).get("f1")
        theirs = (production.get(label) or {}).get("f1") if production else None
        rows.append(f"{label:<{width}}  {_f1(mine):>9}  {_f1(theirs):>10}")
    return "```\n" + escape("\n".join(rows)) + "\n```"


def held_out_line(decision: GateDecision | None) -> str | None:
    """How many labels the run held out and why (from its snapshot summary), if any."""
    summary = (decision.snapshot or {}) if decision is not None else {}
    held = summary.get("held_out") or {}
    marked = summary.get("marked_suspect") or {}
    parts = []
    if held.get("n"):
        reasons = ", ".join(f"{n} {escape(str(why))}" for why, n in held["reasons"].items())
        parts.append(f"{held['n']} label(s) held out of training and the gate's eval ({reasons})")
    if marked.get("n"):
        parts.append(
            f"{marked['n']} correction(s) of this batch held out as suspect "
            f"({escape(str(marked.get('reason', '')))})"
        )
    check = summary.get("label_check") or {}
    if check.get("ran") and check.get("flagged_annotators"):
        flagged = ", ".join(_who(str(user)) for user in check["flagged_annotators"])
        parts.append(f"flagged annotator(s): {flagged}")
    if not parts:
        return None
    return ":mag: " + "; ".join(parts) + " · admins review with `bertbot review suspects`"


def card_buttons(report: RetrainReport) -> list[dict[str, Any]]:
    """ "Promote anyway" for a candidate that is not production, "Roll back" for one that is."""
    candidate = report.candidate
    if candidate is None:
        return []
    value = json.dumps(
        {"task": report.task.name, "version": candidate.version, "run": report.run.id},
        separators=(",", ":"),
    )
    if report.promoted:
        return [
            {
                "type": "button",
                "action_id": ROLLBACK_ACTION,
                "text": _plain("Roll back"),
                "value": value,
                "style": "danger",
            }
        ]
    if candidate.artifact_deleted_at is not None:
        return []
    return [
        {
            "type": "button",
            "action_id": PROMOTE_ACTION,
            "text": _plain("Promote anyway"),
            "value": value,
        }
    ]


def result_card(report: RetrainReport, *, status: str | None = None) -> Rendered:
    """The result of a retrain, as the registry records it.

    Args:
        report: The run, its candidate and production now (from the registry).
        status: A line about what an admin did since (promoted anyway, rolled back).
    """
    decision = report.decision
    reason = (decision.reason if decision else "") or report.run.error or "no reason recorded"
    blocks: list[Block] = [
        _section(f"{_header(report)}\n*Why:* {escape(reason[:1500])}"),
    ]
    if report.candidate is not None and decision is not None and decision.candidate:
        p_improvement = decision.p_improvement
        delta = decision.delta_macro_f1
        production_f1 = (decision.production or {}).get("macro_f1")
        # The gate may judge the gain on the corrections' share of the eval set only.
        scope = " (corrections)" if decision.scope == "corrections" else ""
        fields = [
            f"*Candidate macro-F1*\n{_f1(decision.candidate.get('macro_f1'))}",
            f"*Production macro-F1*\n"
            f"{_f1(production_f1) if production_f1 is not None else '— (no production)'}",
            f"*Δ macro-F1{scope}*\n{f'{delta:+.4f}' if isinstance(delta, int | float) else '—'}",
            f"*P(Δ &gt; 0){scope}*\n"
            f"{f'{p_improvement:.3f}' if isinstance(p_improvement, int | float) else '—'}",
            f"*Eval examples*\n{decision.eval_size}",
            f"*Decision*\n{'promoted' if report.promoted else 'not promoted'}",
        ]
        blocks.append(
            {
                "type": "section",
                "block_id": "metrics",
                "fields": [{"type": "mrkdwn", "text": field} for field in fields],
            }
        )
        table = _per_class_table(report)
        if table:
            blocks.append(_section(table, block_id="per_class"))
    held = held_out_line(decision)
    if held:
        blocks.append(_context(held))
    buttons = card_buttons(report)
    if buttons:
        blocks.append(
            {
                "type": "actions",
                "block_id": f"{CARD_BLOCK_PREFIX}{report.run.id}",
                "elements": buttons,
            }
        )
    if status:
        blocks.append(_context(status))
    run = report.run
    finished = f" · finished {slack_date(run.finished_at)}" if run.finished_at else ""
    blocks.append(
        _context(
            f"Run {run.id} · requested by {_who(run.requested_by)}{finished} · buttons are for "
            "admins; every move is audited"
        )
    )
    verdict = "promoted" if report.promoted else "not promoted"
    if report.superseded:
        verdict = "superseded (production moved while it trained)"
    if report.skipped or report.candidate is None:
        verdict = "not retrained"
    return Rendered(f"{report.task.name} retrain: {verdict}. {escape(reason)}"[:_MAX_TEXT], blocks)


def moved_text(move: AliasMove, user_id: str) -> str:
    """The card's status line after a button's move."""
    what = "Promoted anyway" if move.action == PROMOTE else "Rolled back"
    before = f"v{escape(move.previous.version)}" if move.previous else "none"
    return (
        f":arrows_counterclockwise: {what} by <@{user_id}>: production {before} → "
        f"v{escape(move.current.version)} · “{escape(move.reason)[:300]}”"
    )


# The modal behind the buttons ---------------------------------------------------------


def parse_move_value(action_id: str | None, value: str | None) -> MoveRequest | None:
    """A card button's request (reason still empty); None when it is malformed."""
    if action_id not in MOVE_ACTIONS or not value:
        return None
    try:
        data = json.loads(value)
        task, version = str(data["task"]), str(data["version"])
        run = data.get("run")
        run_id = int(run) if run is not None else None
    except (ValueError, KeyError, TypeError):
        return None
    action = PROMOTE if action_id == PROMOTE_ACTION else ROLLBACK
    return MoveRequest(action, task, version, run_id, "")


def move_modal(request: MoveRequest, card: CardRef) -> dict[str, Any]:
    """Asks an admin why (kept in the audit log) before the alias moves."""
    if request.action == PROMOTE:
        title, submit = "Promote anyway", "Promote"
        question = (
            f"Make *{request.task} v{escape(request.version)}* production although the gate "
            "did not promote it?"
        )
    else:
        title, submit = "Roll back", "Roll back"
        question = (
            f"Point *{request.task}* production back at the version before "
            f"*v{escape(request.version)}*?"
        )
    metadata = {
        "action": request.action,
        "task": request.task,
        "version": request.version,
        "run": request.run_id,
        "channel": card.channel_id,
        "ts": card.ts,
        "url": card.response_url,
    }
    return {
        "type": "modal",
        "callback_id": MOVE_CALLBACK,
        "private_metadata": json.dumps(metadata, separators=(",", ":")),
        "title": _plain(title, 24),
        "submit": _plain(submit, 24),
        "close": _plain("Cancel", 24),
        "blocks": [
            _section(question),
            {
                "type": "input",
                "block_id": REASON_BLOCK,
                "label": _plain("Why? (kept in the audit log)"),
                "element": {
                    "type": "plain_text_input",
                    "action_id": REASON_ACTION,
                    "multiline": True,
                    "max_length": 500,
                },
            },
            _context("Serving processes pick the new production model up within 30 s."),
        ],
    }


def parse_move_submission(view: Mapping[str, Any]) -> tuple[MoveRequest, CardRef] | None:
    """The request and the card behind a submitted modal; None when it is malformed."""
    try:
        metadata = json.loads(view.get("private_metadata") or "")
        values = (view.get("state") or {}).get("values") or {}
        reason = ((values.get(REASON_BLOCK) or {}).get(REASON_ACTION) or {}).get("value") or ""
        action = str(metadata["action"])
        if action not in (PROMOTE, ROLLBACK):
            return None
        run = metadata.get("run")
        request = MoveRequest(
            action,
            str(metadata["task"]),
            str(metadata["version"]),
            int(run) if run is not None else None,
            str(reason),
        )
    except (ValueError, KeyError, TypeError, AttributeError):
        return None
    return request, CardRef(metadata.get("channel"), metadata.get("ts"), metadata.get("url"))
