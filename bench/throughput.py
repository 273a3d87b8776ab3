"""Throughput with the cross-request batcher: ingestion against the models' own batched
rate, and /classify latency, before and after, side by side in one run.

    python bench/throughput.py [--messages 800] [--requests 100] [--burst 320]
                               [--baseline REV] [--skip-sqlite]

First the two production models of ``$BERTBOT_HOME`` predict the ingestion texts in this
process at batch 64: the models' own rate for both tasks per message (1 / (1/spam +
1/sentiment)), the ceiling ingestion is judged against. Then, for each store (PostgreSQL,
and SQLite unless skipped) and each variant, ``bertbot serve --http`` runs as its own
process against a local fake Slack and correctly signed requests are sent as Slack sends
them:

- ``before``: ``--baseline``, the code before the batcher (a scratch worktree);
- ``batched``: this checkout with its defaults;
- ``batched, timeout 5 ms`` and ``batched, N inbox workers``: the settings the defaults
  were chosen against.

Each variant: ``--requests`` sequential /classify (p50 of the answer), ``--burst`` /classify
from 32 senders at once (p99 of the answer), then ``--messages`` channel-message events
from 8 senders until each is stored with both predictions (messages/s; the share of the
models' own rate). Writes bench/results/throughput.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from common import baseline_checkout, load_split, save
from slack_http import Bot, _copy_production, classify_run, ingest_run, scratch_database_url

BASELINE = "3d40136"  # main just before the batcher


def models_batched(texts: list[str], batch: int) -> dict[str, Any]:
    """Each production model's msg/s on ``texts`` at ``batch`` texts per call, here."""
    from bertbot.settings import load_settings
    from storage import registry
    from storage.db import Database
    from trainer.artifact import resolve_artifact
    from trainer.serving import SavedModelClassifier

    settings = load_settings()
    database = Database.connect(settings.db_url)
    rates: dict[str, float] = {}
    for task in ("spam", "sentiment"):
        with database.begin() as session:
            version = registry.get_alias(session=session, task=task)
        assert version is not None, f"no production {task} model: run bertbot setup"
        model = SavedModelClassifier.load(
            resolve_artifact(settings.artifacts, version.artifact_uri), batch_size=batch
        )
        model.predict(texts[:batch])
        started = time.perf_counter()
        for start in range(0, len(texts), batch):
            model.predict(texts[start : start + batch])
        rates[task] = len(texts) / (time.perf_counter() - started)
    database.dispose()
    both = 1.0 / sum(1.0 / rate for rate in rates.values())
    return {
        "batch": batch,
        "per_task_msg_per_s": {k: round(v, 1) for k, v in rates.items()},
        "both_tasks_msg_per_s": round(both, 1),
    }


def run_variant(
    url: str, code: Path | None, env: dict[str, str], texts: list[str], args: Any
) -> dict[str, Any]:
    from bot.emulator.inbound import LOCAL_SIGNING_SECRET, SlackSender
    from bot.emulator.outbound import FakeSlack

    with FakeSlack() as fake:
        bot = Bot(url, fake.api_url, code_dir=code, env=env)
        try:
            sender = SlackSender(bot.events_url, LOCAL_SIGNING_SECRET, fake=fake, timeout=30)
            classify_run(sender, fake, texts[:20], 4)  # warm-up
            ingest_run(sender, url, texts[20:40])
            at = 40
            sequential = classify_run(sender, fake, texts[at : at + args.requests], 1)
            at += args.requests
            burst = classify_run(sender, fake, texts[at : at + args.burst], 32)
            at += args.burst
            ingest = ingest_run(sender, url, texts[at : at + args.messages])
            memory = bot.memory_mb()
        finally:
            bot.stop()
    return {
        "classify_sequential": sequential,
        "classify_at_32": burst,
        "ingest": ingest,
        "memory": memory,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=800, help="events for ingestion")
    parser.add_argument("--requests", type=int, default=100, help="sequential /classify")
    parser.add_argument("--burst", type=int, default=320, help="/classify from 32 senders")
    parser.add_argument("--baseline", default=BASELINE, help="the code before the batcher")
    parser.add_argument(
        "--workers", type=int, default=4, help="inbox workers of a variant (the old default)"
    )
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "BERTBOT_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432"
        ),
    )
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument(
        "--variants", help="variant names to run, separated by ; (default: all)", default=""
    )
    args = parser.parse_args()

    _, held_out = load_split("sentiment")
    texts = [e.text for e in held_out]
    needed = 40 + args.requests + args.burst + args.messages
    if len(texts) < needed:
        texts = (texts * (needed // len(texts) + 1))[:needed]
    ingest_texts = texts[40 + args.requests + args.burst : needed]
    ceiling = models_batched(ingest_texts, 64)
    print(
        f"models alone, batch 64: {ceiling['per_task_msg_per_s']} msg/s; "
        f"both tasks {ceiling['both_tasks_msg_per_s']} msg/s",
        flush=True,
    )
    from bertbot.settings import load_settings

    settings = load_settings()
    scratch = Path(tempfile.mkdtemp(prefix="bertbot-bench-throughput-"))
    stores = ["postgresql"] + ([] if args.skip_sqlite else ["sqlite"])
    results: dict[str, Any] = {"baseline": args.baseline, "models_alone": ceiling, "runs": {}}
    with baseline_checkout(args.baseline) as baseline:
        variants: list[tuple[str, Path | None, dict[str, str]]] = [
            ("before", baseline, {}),
            ("batched", None, {}),
            ("batched, timeout 5 ms", None, {"BERTBOT_BATCHING__BATCH_TIMEOUT_MS": "5"}),
            (
                f"batched, {args.workers} inbox workers",
                None,
                {"BERTBOT_INBOX__WORKERS": str(args.workers)},
            ),
        ]
        if args.variants:
            chosen = {name.strip() for name in args.variants.split(";")}
            variants = [v for v in variants if v[0] in chosen]
        for store in stores:
            for name, code, env in variants:
                url = scratch_database_url(store, name, scratch, args.postgres)
                _copy_production(settings.db_url, url)
                run = run_variant(url, code, env, texts, args)
                run["share_of_models_rate"] = round(
                    run["ingest"]["messages_per_s"] / ceiling["both_tasks_msg_per_s"], 3
                )
                key = f"{store}/{name}"
                results["runs"][key] = run
                print(
                    f"{key}: /classify sequential p50 "
                    f"{run['classify_sequential']['answer']['p50_ms']} ms; at 32 p99 "
                    f"{run['classify_at_32']['answer']['p99_ms']} ms "
                    f"({run['classify_at_32']['within_3s']}/{args.burst} within 3 s, "
                    f"{run['classify_at_32']['requests_per_s']} req/s); ingestion "
                    f"{run['ingest']['messages_per_s']} msg/s = "
                    f"{run['share_of_models_rate']:.0%} of the models' own rate "
                    f"({run['ingest']['stored_messages']}/{args.messages} stored; event ack "
                    f"p99 {run['ingest']['ack']['p99_ms']} ms)",
                    flush=True,
                )
    path = save("throughput", results)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
