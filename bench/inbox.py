"""What the durable inbox costs: ingestion and the ack, with the inbox and before it.

    python bench/inbox.py [--messages 800] [--acks 640] [--baseline REV] [--skip-postgres]

For each store (SQLite, PostgreSQL) and each code (``--baseline``, the revision before the
inbox, checked out in a scratch worktree; and this checkout), ``bertbot serve --http`` runs as
its own process with the production spam and sentiment models of ``$BERTBOT_HOME`` against a
local fake Slack, and correctly signed channel-message events are sent as Slack sends them:

- ingestion: ``--messages`` events from 8 senders, until every message is stored with a
  prediction per task: messages/s (the inbox may cost at most 15%);
- the ack under load: ``--acks`` events from 32 senders at once: the time from sending an
  event to its 200 (p50/p95/p99; the p99 must stay under 1 s).

Both codes run in the same session on the same machine, one after the other. Writes
bench/results/inbox.json.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import baseline_checkout, load_split, save
from slack_http import (
    MEMBER,
    Bot,
    _copy_production,
    _percentiles,
    ingest_run,
    scratch_database_url,
)

BASELINE = "cd248b3"  # main just before the inbox landed
BASELINE_SCHEMA = "0003"


def ack_run(sender: Any, texts: list[str], concurrency: int) -> dict[str, Any]:
    """Send one event per text with ``concurrency`` senders; time each 200."""

    def one(text: str) -> tuple[float, int]:
        started = time.perf_counter()
        status = sender.event(sender.message_event(text, user_id=MEMBER)).status
        return time.perf_counter() - started, int(status)

    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, texts))
    elapsed = time.monotonic() - started
    return {
        "events": len(texts),
        "concurrency": concurrency,
        "acked_200": sum(1 for _, status in results if status == 200),
        "ack": _percentiles([seconds for seconds, _ in results]),
        "events_per_s": round(len(texts) / elapsed, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=800, help="events for ingestion")
    parser.add_argument("--acks", type=int, default=640, help="events at concurrency 32")
    parser.add_argument("--baseline", default=BASELINE, help="the code before the inbox")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "BERTBOT_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432"
        ),
    )
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()

    from bertbot.settings import load_settings
    from bot.emulator.inbound import LOCAL_SIGNING_SECRET, SlackSender
    from bot.emulator.outbound import FakeSlack

    settings = load_settings()
    _, held_out = load_split("sentiment")
    texts = [e.text for e in held_out]
    scratch = Path(tempfile.mkdtemp(prefix="bertbot-bench-inbox-"))
    stores = ["sqlite"] + ([] if args.skip_postgres else ["postgresql"])
    results: dict[str, Any] = {"baseline": args.baseline, "runs": {}}
    with baseline_checkout(args.baseline) as baseline:
        variants = [("before", baseline, BASELINE_SCHEMA), ("inbox", None, "head")]
        for store in stores:
            for name, code, revision in variants:
                url = scratch_database_url(store, name, scratch, args.postgres)
                _copy_production(settings.db_url, url, revision=revision)
                with FakeSlack() as fake:
                    bot = Bot(url, fake.api_url, code_dir=code)
                    try:
                        sender = SlackSender(
                            bot.events_url, LOCAL_SIGNING_SECRET, fake=fake, timeout=30
                        )
                        ingest_run(sender, url, texts[:20])  # warm-up
                        ingest = ingest_run(sender, url, texts[20 : 20 + args.messages])
                        start = 20 + args.messages
                        acks = ack_run(sender, texts[start : start + args.acks], 32)
                    finally:
                        bot.stop()
                key = f"{store}/{name}"
                results["runs"][key] = {"ingest": ingest, "acks_at_32": acks}
                print(
                    f"{key}: ingestion {ingest['messages_per_s']} msg/s "
                    f"({ingest['stored_messages']}/{ingest['messages']} stored); "
                    f"ack at concurrency 32: {acks['ack']} "
                    f"({acks['acked_200']}/{acks['events']} answered 200)",
                    flush=True,
                )
            before = results["runs"][f"{store}/before"]["ingest"]["messages_per_s"]
            after = results["runs"][f"{store}/inbox"]["ingest"]["messages_per_s"]
            results[f"{store}_inbox_vs_before"] = round(after / before, 3)
            print(
                f"{store}: with the inbox {after} msg/s vs {before} before = {after / before:.2f}x"
            )
    path = save("inbox", results)
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
