"""The bot as Slack sees it: /classify latency and channel-message ingestion over HTTP.

    python bench/slack_http.py [--requests 200] [--messages 400] [--postgres URL]

For each store (SQLite, then PostgreSQL) the script starts ``bertbot serve --http`` as its
own process (the production server: waitress, 8 threads) against a local fake Slack, with
the production spam and sentiment models of ``$BERTBOT_HOME``, and sends correctly signed
requests exactly as Slack does:

- ``/classify``: ``--requests`` sequential requests, then concurrency 8 and 32. Latency is
  what the user waits for: from sending the command to the bot's answer arriving at the
  response_url (the ack itself is reported apart);
- ingestion: ``--messages`` channel-message events (8 senders) until every message is stored
  with a prediction per task: messages/s.

Side by side in the same run: the model alone in this process (single-text p50), so the
ratio shows what HTTP, Slack's round trips and storage add; and SQLite against PostgreSQL.
Writes bench/results/slack-http.json.
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from common import ROOT, home, load_split, save

MEMBER = "U0BENCHMEMBER"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentiles(values: list[float]) -> dict[str, float]:
    ordered = sorted(values)

    def pick(q: float) -> float:
        return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]

    return {
        "p50_ms": round(pick(0.50) * 1000, 1),
        "p95_ms": round(pick(0.95) * 1000, 1),
        "p99_ms": round(pick(0.99) * 1000, 1),
        "max_ms": round(ordered[-1] * 1000, 1),
    }


def _copy_production(source_url: str, target_url: str, *, revision: str = "head") -> dict[str, str]:
    """Register the source store's production models (same artifacts) in a fresh store
    migrated to ``revision`` (an older one for an older checkout of the code)."""
    from storage import registry, schema
    from storage.db import Database

    source, target = Database.connect(source_url), Database.connect(target_url)
    schema.upgrade(target, revision)
    copied = {}
    try:
        for task in ("spam", "sentiment"):
            with source.begin() as session:
                version = registry.get_alias(session=session, task=task)
            if version is None:
                raise SystemExit(
                    f"no production {task} model in {source_url}: run `bertbot setup` first"
                )
            with target.begin() as session:
                record = registry.add_model_version(
                    session=session,
                    task=task,
                    version=version.version,
                    status=version.status,
                    artifact_uri=version.artifact_uri,
                    sha256=version.sha256,
                    base_encoder=version.base_encoder,
                    hyperparameters=version.hyperparameters,
                    data_snapshot=version.data_snapshot,
                    metrics=version.metrics,
                    created_by="bench",
                )
                registry.compare_and_set_alias(
                    session=session,
                    task=task,
                    version_id=record.id,
                    expected_version_id=None,
                    updated_by="bench",
                )
            copied[task] = version.version
    finally:
        source.dispose()
        target.dispose()
    return copied


def scratch_database_url(store: str, name: str, scratch: Path, postgres: str) -> str:
    """An empty database for one bench run: a SQLite file in ``scratch``, or a PostgreSQL
    database (dropped first) on the server at ``postgres`` (``postgresql://user@host:port``)."""
    if store == "sqlite":
        return f"sqlite:///{scratch / f'{name}.db'}"
    import psycopg

    database = "bertbot_bench_" + "".join(c if c.isalnum() else "_" for c in name)
    with psycopg.connect(postgres + "/postgres", autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{database}"')
    return f"postgresql+psycopg://{postgres.split('://', 1)[1]}/{database}"


class Bot:
    """``bertbot serve --http`` in its own process, pointed at a fake Slack."""

    def __init__(
        self,
        database_url: str,
        api_url: str,
        *,
        code_dir: Path | None = None,
        env: dict[str, str] | None = None,
    ) -> None:
        """Start it; ``code_dir`` runs another checkout of bertbot's code (same venv);
        ``env`` adds settings (e.g. ``BERTBOT_BATCHING__BATCH_TIMEOUT_MS``)."""
        self.port = _free_port()
        environment = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith("SLACK_") and k != "BERTBOT_DATABASE_URL"
        }
        environment.update(
            {
                "BERTBOT_HOME": str(home()),
                "BERTBOT_DATABASE_URL": database_url,
                "BERTBOT_SLACK_API_URL": api_url,
                "BERTBOT_MODERATORS_CHANNEL": "C0MODERATORS",
                "BERTBOT_LOG_LEVEL": "WARNING",
                "TF_CPP_MIN_LOG_LEVEL": "2",
            }
        )
        if code_dir is not None:
            environment["PYTHONPATH"] = str(code_dir)
        environment.update(env or {})
        self.process = subprocess.Popen(
            [
                str(ROOT / ".venv" / "bin" / "bertbot"),
                "serve",
                "--http",
                "--port",
                str(self.port),
                "--threads",
                "8",
            ],
            env=environment,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.output: list[str] = []
        ready = threading.Event()

        def read() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                self.output.append(line)
                if "serving Slack requests on" in line:
                    ready.set()

        threading.Thread(target=read, daemon=True).start()
        started = time.monotonic()
        while not ready.wait(0.5):
            if self.process.poll() is not None or time.monotonic() - started > 180:
                self.stop()
                raise SystemExit("the bot did not start:\n" + "".join(self.output[-30:]))
        self.start_seconds = time.monotonic() - started
        self.events_url = f"http://127.0.0.1:{self.port}/slack/events"

    def memory_mb(self) -> dict[str, float]:
        fields = {}
        for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
            name, _, value = line.partition(":")
            if name in ("VmRSS", "VmHWM"):
                fields[name] = round(int(value.split()[0]) / 1024, 1)
        return {"rss_mb": fields["VmRSS"], "peak_rss_mb": fields["VmHWM"]}

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()


def classify_run(sender: Any, fake: Any, texts: list[str], concurrency: int) -> dict[str, Any]:
    """Send one /classify per text with ``concurrency`` senders; time the answers."""

    def one(text: str) -> tuple[float, float, bool]:
        delivery = sender.command(text, user_id=MEMBER)
        if delivery.status != 200:
            return delivery.elapsed_s, float("inf"), False
        key = delivery.response_url.rsplit("/", 1)[-1]
        try:
            call = fake.wait_for(
                "response_url", where=lambda c: c.path.endswith(key), timeout=30.0
            )[0]
        except TimeoutError:
            return delivery.elapsed_s, float("inf"), False
        answered = call.params.get("text", "")
        return (
            delivery.elapsed_s,
            call.at - delivery.sent_at,
            "confidence" in str(call.params) or bool(answered),
        )

    started = time.monotonic()
    with ThreadPoolExecutor(concurrency) as pool:
        results = list(pool.map(one, texts))
    wall = time.monotonic() - started
    acks = [r[0] for r in results]
    answers = [r[1] for r in results if r[1] != float("inf")]
    return {
        "concurrency": concurrency,
        "requests": len(texts),
        "answered": len(answers),
        "within_3s": sum(1 for a in answers if a <= 3.0),
        "requests_per_s": round(len(texts) / wall, 1),
        "answer": _percentiles(answers) if answers else None,
        "ack": _percentiles(acks),
    }


def ingest_run(sender: Any, database_url: str, texts: list[str]) -> dict[str, Any]:
    """Post channel messages as events; wait until each has a prediction per task."""
    from sqlalchemy import func, select

    from storage.db import Database
    from storage.models import Message, Prediction

    database = Database.connect(database_url)

    def counts() -> tuple[int, int]:
        with database.begin() as session:
            return (
                int(session.scalar(select(func.count()).select_from(Message)) or 0),
                int(session.scalar(select(func.count()).select_from(Prediction)) or 0),
            )

    before_messages, before_predictions = counts()
    started = time.monotonic()

    def one(text: str) -> tuple[int, float]:
        delivery = sender.event(sender.message_event(text, user_id=MEMBER))
        return int(delivery.status), delivery.elapsed_s

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(one, texts))
    statuses = [status for status, _ in answers]
    sent = time.monotonic() - started
    wanted_messages = before_messages + len(texts)
    wanted_predictions = before_predictions + 2 * len(texts)
    deadline = time.monotonic() + 600
    while time.monotonic() < deadline:
        messages_now, predictions_now = counts()
        if messages_now >= wanted_messages and predictions_now >= wanted_predictions:
            break
        time.sleep(0.05)
    elapsed = time.monotonic() - started
    messages_now, predictions_now = counts()
    database.dispose()
    return {
        "messages": len(texts),
        "acked_200": sum(1 for s in statuses if s == 200),
        "stored_messages": messages_now - before_messages,
        "stored_predictions": predictions_now - before_predictions,
        "send_seconds": round(sent, 2),
        "seconds": round(elapsed, 2),
        "messages_per_s": round(len(texts) / elapsed, 1),
        "ack": _percentiles([seconds for _, seconds in answers]),
    }


def model_alone(texts: list[str]) -> dict[str, Any]:
    """The sentiment model in this process, one text at a time: the floor for /classify."""
    from bertbot.settings import load_settings
    from storage import registry
    from storage.db import Database
    from trainer.artifact import resolve_artifact
    from trainer.serving import SavedModelClassifier

    settings = load_settings()
    database = Database.connect(settings.db_url)
    timings: dict[str, Any] = {}
    for task in ("spam", "sentiment"):
        with database.begin() as session:
            version = registry.get_alias(session=session, task=task)
        assert version is not None
        path = resolve_artifact(settings.artifacts, version.artifact_uri)
        model = SavedModelClassifier.load(path)
        for text in texts[:10]:
            model.predict([text])
        durations = []
        for text in texts:
            started = time.monotonic()
            model.predict([text])
            durations.append(time.monotonic() - started)
        timings[task] = _percentiles(durations)
    database.dispose()
    both = [timings["spam"][k] + timings["sentiment"][k] for k in ("p50_ms", "p95_ms", "p99_ms")]
    keys = ("p50", "p95", "p99")
    return {"per_task": timings, "both_tasks_ms": dict(zip(keys, both, strict=True))}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=200, help="sequential /classify requests")
    parser.add_argument("--messages", type=int, default=400, help="channel messages to ingest")
    parser.add_argument(
        "--postgres",
        default=os.environ.get(
            "BERTBOT_BENCH_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432"
        ),
        help="PostgreSQL server URL (a fresh database bertbot_bench is created on it)",
    )
    parser.add_argument("--skip-postgres", action="store_true")
    args = parser.parse_args()

    from bertbot.settings import load_settings
    from bot.emulator.inbound import LOCAL_SIGNING_SECRET, SlackSender
    from bot.emulator.outbound import FakeSlack

    settings = load_settings()
    _, held_out = load_split("sentiment")
    texts = [e.text for e in held_out]
    stores: list[tuple[str, str]] = []
    scratch = Path(tempfile.mkdtemp(prefix="bertbot-bench-"))
    stores.append(("sqlite", f"sqlite:///{scratch / 'bench.db'}"))
    if not args.skip_postgres:
        import psycopg

        with psycopg.connect(args.postgres + "/postgres", autocommit=True) as conn:
            conn.execute('DROP DATABASE IF EXISTS "bertbot_bench" WITH (FORCE)')
            conn.execute('CREATE DATABASE "bertbot_bench"')
        server = args.postgres.split("://", 1)[1]
        stores.append(("postgresql", f"postgresql+psycopg://{server}/bertbot_bench"))

    results: dict[str, Any] = {"stores": {}}
    for name, url in stores:
        versions = _copy_production(settings.db_url, url)
        print(f"\n== {name}: production models {versions}", flush=True)
        with FakeSlack() as fake:
            bot = Bot(url, fake.api_url)
            try:
                sender = SlackSender(bot.events_url, LOCAL_SIGNING_SECRET, fake=fake, timeout=30)
                classify_run(sender, fake, texts[:20], 1)  # warm-up
                runs = []
                offset = 20
                for concurrency, count in ((1, args.requests), (8, 400), (32, 640)):
                    batch = texts[offset : offset + count]
                    offset += count
                    row = classify_run(sender, fake, batch, concurrency)
                    runs.append(row)
                    print(
                        f"  /classify x{row['requests']} at concurrency {concurrency}: "
                        f"answer {row['answer']}, ack p99 {row['ack']['p99_ms']} ms, "
                        f"{row['requests_per_s']} req/s, {row['within_3s']} within 3 s",
                        flush=True,
                    )
                ingest = ingest_run(sender, url, texts[offset : offset + args.messages])
                print(f"  ingestion: {ingest}", flush=True)
                results["stores"][name] = {
                    "classify": runs,
                    "ingest": ingest,
                    "bot_start_seconds": round(bot.start_seconds, 1),
                    "bot_memory": bot.memory_mb(),
                }
                print(f"  bot memory: {results['stores'][name]['bot_memory']}", flush=True)
            finally:
                bot.stop()

    alone = model_alone(texts[:200])
    results["model_alone"] = alone
    sqlite_p50 = results["stores"]["sqlite"]["classify"][0]["answer"]["p50_ms"]
    results["overhead_ratio_p50"] = round(sqlite_p50 / alone["both_tasks_ms"]["p50"], 2)
    if "postgresql" in results["stores"]:
        results["ingest_postgres_vs_sqlite"] = round(
            results["stores"]["postgresql"]["ingest"]["messages_per_s"]
            / results["stores"]["sqlite"]["ingest"]["messages_per_s"],
            2,
        )
    path = save("slack-http", results)
    print(f"\nmodel alone (both tasks) {alone['both_tasks_ms']}; results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
