"""``bertbot drift``: compare recent channel messages with production's eval split."""

from __future__ import annotations

import argparse
import json
import time
from typing import Any

from bertbot.commands import CommandError, add_command
from bertbot.commands.common import ProgressBar, open_database, say, task_spec
from bertbot.settings import Settings


def drift_notifier(settings: Settings, database: Any) -> Any:
    """The admins' drift notifier over the bot's Slack client; None without SLACK_BOT_TOKEN."""
    from bot.app import make_client
    from bot.services.drift_notice import DriftNotifier

    token = settings.slack.bot_token
    if token is None:
        return None
    client = make_client(token.get_secret_value(), base_url=settings.slack.api_url)
    return DriftNotifier(
        database,
        client,
        settings.task_specs,
        channel=settings.drift_channel,
        admins=settings.admins,
    )


def _drift(args: argparse.Namespace, settings: Settings) -> int:
    from trainer.drift_check import DriftCheckError, check_drift

    spec = task_spec(settings, args.task)
    try:
        options = settings.drift.options(days=args.days, sample=args.sample)
    except ValueError as exc:
        raise CommandError(f"--days/--sample: {exc}") from exc
    database = open_database(settings)
    notifier = None
    if args.notify:
        if args.no_record:
            raise CommandError("--notify tells admins of a recorded episode; drop --no-record")
        notifier = drift_notifier(settings, database)
        if notifier is None:
            raise CommandError("--notify needs SLACK_BOT_TOKEN (and BERTBOT_SLACK_API_URL)")
    bar = ProgressBar()
    started = time.monotonic()

    def show(done: int, total: int) -> None:
        elapsed = time.monotonic() - started
        eta = elapsed / done * (total - done) if done else None
        bar.update(done, total, "texts through the model", eta)

    try:
        report = check_drift(
            database,
            spec,
            options,
            home=settings.artifacts,
            record=not args.no_record,
            progress=show,
        )
    except DriftCheckError as exc:
        raise CommandError(str(exc)) from exc
    finally:
        bar.close()
    told: list[int] = []
    if notifier is not None:
        told = notifier.notify_pending()
    if args.json:
        print(json.dumps(report.to_json() | {"admins_told": told}, ensure_ascii=False))
        return 0
    verdict = "DRIFT" if report.drifted else "no drift"
    relation = "<" if report.drifted else ">="
    print(
        f"{spec.name} v{report.model_version}: {verdict} (p {report.p_value:.4g} {relation} "
        f"{report.alpha:g}; embeddings {report.p_embeddings:.4g}, predicted labels "
        f"{report.p_labels:.4g})"
    )
    print(
        f"  recent: {report.n_recent} of {report.n_recent_total} channel messages from the last "
        f"{report.days:g} days; reference: {report.n_reference} eval-split texts labelled by "
        f"{report.reference_as_of:%Y-%m-%d %H:%M} UTC"
    )
    per_label = ", ".join(f"{k} {v:.3f}" for k, v in report.expected_f1.items())
    print(
        f"  expected macro-F1 on the recent messages: {report.expected_macro_f1:.3f} "
        f"({per_label}; from calibrated confidences, no labels)"
    )
    shares = "  predicted labels: eval split " + ", ".join(
        f"{k} {v:.0%}" for k, v in report.reference_labels.items()
    )
    print(shares + "; recent " + ", ".join(f"{k} {v:.0%}" for k, v in report.recent_labels.items()))
    if report.check_id is None:
        print("  not recorded (--no-record)")
    else:
        episode = {
            "opened": f"drift episode {report.episode_id} opened",
            "continued": f"drift episode {report.episode_id} continues",
            "ended": f"drift episode {report.episode_id} ended",
            "none": "no drift episode",
        }[report.episode_change]
        print(
            f"  check {report.check_id}: {episode}; {report.flagged} message(s) flagged for review"
        )
    if told:
        print(f"  admins told in {settings.drift_channel} (episode {', '.join(map(str, told))})")
    if report.most_drifted:
        print("  most drifted (witness, predicted label):")
        for message in report.most_drifted:
            text = " ".join(message.text.split())[:80]
            print(
                f"    {message.witness:8.4f}  {message.label:<9} {message.confidence:5.0%}  {text}"
            )
    say(f"checked in {report.seconds:.1f} s")
    return 0


def register(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    command = add_command(
        commands,
        "drift",
        _drift,
        "compare recent channel messages with the production model's eval split",
        "Compare the last BERTBOT_DRIFT__DAYS days of channel messages (events, or `bertbot\n"
        "messages import`) with the eval split the production model was checked on: an MMD\n"
        "test on the model's pooled embeddings and a chi-square test on its predicted labels,\n"
        "each with a permutation p-value, combined with Bonferroni; drift when the combined\n"
        "p < BERTBOT_DRIFT__P_VALUE. Also estimates macro-F1 on the recent messages from the\n"
        "model's calibrated confidences (no labels). At most BERTBOT_DRIFT__SAMPLE texts of\n"
        "each side are compared. The check is recorded: drift opens (or continues) an episode\n"
        "and flags the most drifted messages for the Home tab's review queue; no drift ends\n"
        "the episode. Admins are told once per episode by the scheduler's drift job, or now\n"
        "with --notify.",
    )
    command.add_argument("--task", required=True, help="spam, sentiment, or a configured task")
    command.add_argument("--days", type=float, help="recent window (default BERTBOT_DRIFT__DAYS)")
    command.add_argument(
        "--sample", type=int, help="at most N texts of each side (default BERTBOT_DRIFT__SAMPLE)"
    )
    command.add_argument("--json", action="store_true", help="print one JSON object")
    command.add_argument(
        "--no-record",
        action="store_true",
        help="only report: store no check, move no episode, flag nothing",
    )
    command.add_argument(
        "--notify",
        action="store_true",
        help="tell admins in Slack now if an episode is untold (needs SLACK_BOT_TOKEN)",
    )
