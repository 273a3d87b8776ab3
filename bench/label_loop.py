"""What the label-quality benches share: a sentiment production trained without the airline
tweets, copied into a fresh home for each run, airline tweets stored as channel messages,
corrections entered as moderators' labels, retrains through the product's own function, and
macro-F1 on airline tweets that no run ever labels.

The base (a SQLite database with the non-airline tweets as seed labels, and a first model
trained on them with the product's retrain) is built once in $BERTBOT_HOME/bench-labels/base
and reused while its recipe (minutes, data file, seed count) is unchanged.
"""

from __future__ import annotations

import csv
import hashlib
import json
import os
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from common import ROOT, home

TASK = "sentiment"


def say(message: str) -> None:
    print(message, flush=True)


@dataclass(frozen=True)
class Tweets:
    """The CrowdFlower tweets split the way every label bench uses them."""

    seed: list[dict[str, str]]  # the non-airline topics: production's seed labels
    airline: list[dict[str, str]]  # every airline tweet

    @classmethod
    def load(cls) -> Tweets:
        path = home() / "data" / "sentiment.csv"
        if not path.exists():
            raise SystemExit(f"{path} is missing: run `bertbot setup` (or `bertbot data fetch`)")
        rows = list(csv.DictReader(path.open(encoding="utf-8")))
        return cls(
            seed=[r for r in rows if r["topic"] != "airline"],
            airline=[r for r in rows if r["topic"] == "airline"],
        )


def settings_for(run_home: Path) -> Any:
    from bertbot.settings import Settings

    return Settings(home=run_home, database_url=f"sqlite:///{run_home / 'bertbot.db'}")


def env_for(run_home: Path, **extra: str) -> dict[str, str]:
    """The environment of a `bertbot` command run against a bench home."""
    env = dict(os.environ)
    env.update(
        BERTBOT_HOME=str(run_home),
        BERTBOT_DATABASE_URL=f"sqlite:///{run_home / 'bertbot.db'}",
        PYTHONPATH=str(ROOT),
    )
    env.update(extra)
    return env


def bertbot(run_home: Path, *args: str, **extra_env: str) -> Any:
    """Run a bertbot command against a bench home; returns its parsed --json output."""
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "bertbot.cli", *args],
        cwd=ROOT,
        env=env_for(run_home, **extra_env),
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise SystemExit(
            f"`bertbot {' '.join(args)}` exited {done.returncode}:\n{done.stderr[-3000:]}"
        )
    say(f"  bertbot {' '.join(args[:3])} ... ({time.monotonic() - started:.0f} s)")
    return json.loads(done.stdout) if "--json" in args else done.stdout


def _retrain_options(run_home: Path, minutes: float) -> Any:
    from trainer.gate import GateConfig
    from trainer.retrain import RetrainOptions

    settings = settings_for(run_home)
    return RetrainOptions(
        home=run_home,
        encoder_dir=settings.encoders_dir / settings.encoder,
        base_encoder=settings.encoder,
        gate=GateConfig(),
        max_minutes=minutes,
        lease_ttl=timedelta(minutes=5),
        train_overrides={"evaluations_per_epoch": 2, "patience": 3},
    )


def _show(update: Any, last: list[float]) -> None:
    if update.phase == "train" and time.monotonic() - last[0] < 60:
        return
    last[0] = time.monotonic()
    if update.phase == "train" and update.total_steps:
        say(f"    step {update.step}/{update.total_steps} {(update.examples_per_s or 0):.1f} ex/s")
    elif update.message:
        say(f"    {update.message}")


def retrain_in(run_home: Path, minutes: float, requested_by: str = "bench") -> Any:
    """The product's retrain in a bench home (forced: the bench decides when)."""
    from storage.db import Database
    from storage.enums import RunTrigger
    from trainer.retrain import retrain
    from trainer.tasks import BUILTIN_TASKS

    database = Database.connect(f"sqlite:///{run_home / 'bertbot.db'}")
    last = [0.0]
    try:
        return retrain(
            database,
            BUILTIN_TASKS[TASK],
            _retrain_options(run_home, minutes),
            trigger=RunTrigger.CLI,
            requested_by=requested_by,
            force=True,
            progress=lambda update: _show(update, last),
        )
    finally:
        database.engine.dispose()


def macro_f1(run_home: Path, artifact_uri: str, rows: list[dict[str, str]]) -> float:
    from trainer.artifact import resolve_artifact
    from trainer.metrics import classification_metrics
    from trainer.serving import SavedModelClassifier
    from trainer.tasks import BUILTIN_TASKS

    model = SavedModelClassifier.load(resolve_artifact(run_home, artifact_uri))
    predicted = [p.label for p in model.predict([r["text"] for r in rows])]
    truth = [r["label"] for r in rows]
    return float(classification_metrics(truth, predicted, BUILTIN_TASKS[TASK].labels)["macro_f1"])


def production_of(run_home: Path) -> Any:
    from storage import registry
    from storage.db import Database

    database = Database.connect(f"sqlite:///{run_home / 'bertbot.db'}")
    try:
        with database.begin() as session:
            return registry.get_alias(session=session, task=TASK)
    finally:
        database.engine.dispose()


def base_home(tweets: Tweets, first_minutes: float, rebuild: bool = False) -> Path:
    """The base home: seed labels and a first model, built once per recipe."""
    from storage import annotations, schema
    from storage.annotations import NewAnnotation
    from storage.db import Database
    from storage.enums import AnnotationSource

    root = home() / "bench-labels"
    base = root / "base"
    data = home() / "data" / "sentiment.csv"
    recipe = {
        "first_minutes": first_minutes,
        "seed": len(tweets.seed),
        "data_sha256": hashlib.sha256(data.read_bytes()).hexdigest(),
    }
    marker = base / "recipe.json"
    if not rebuild and marker.exists() and json.loads(marker.read_text()) == recipe:
        say(f"base: reusing {base} ({recipe['seed']} seed tweets, {first_minutes} min model)")
        return base
    shutil.rmtree(base, ignore_errors=True)
    base.mkdir(parents=True)
    _link_encoders(base)
    database = Database.connect(f"sqlite:///{base / 'bertbot.db'}")
    schema.upgrade(database)
    with database.begin() as session:
        annotations.add_annotations(
            session=session,
            task=TASK,
            items=[NewAnnotation(r["text"], r["label"]) for r in tweets.seed],
            annotator="seed",
            source=AnnotationSource.SEED,
        )
    database.engine.dispose()
    say(f"base: training production on {len(tweets.seed)} non-airline tweets ({first_minutes} min)")
    started = time.monotonic()
    outcome = retrain_in(base, first_minutes)
    if outcome.status.value != "succeeded":
        raise SystemExit(f"the base model was not promoted: {outcome.message}")
    say(f"base: production {outcome.version.version} in {time.monotonic() - started:.0f} s")
    marker.write_text(json.dumps(recipe, indent=2))
    return base


def _link_encoders(run_home: Path) -> None:
    link = run_home / "encoders"
    if not link.exists():
        link.symlink_to((home() / "encoders").resolve(), target_is_directory=True)


def fresh_home(base: Path, name: str) -> Path:
    """A copy of the base home for one run (its own database and models)."""
    run_home = base.parent / name
    shutil.rmtree(run_home, ignore_errors=True)
    shutil.copytree(base, run_home, symlinks=True, ignore=shutil.ignore_patterns("recipe.json"))
    _upgrade(run_home)
    return run_home


def _upgrade(run_home: Path) -> None:
    """A base built by an earlier revision gets this revision's schema."""
    from storage import schema
    from storage.db import Database

    database = Database.connect(f"sqlite:///{run_home / 'bertbot.db'}")
    try:
        schema.upgrade(database)
    finally:
        database.engine.dispose()


def import_messages(run_home: Path, rows: list[dict[str, str]], channel: str) -> dict[str, int]:
    """Store tweets as channel messages with production's prediction (the product's import);
    returns message id by text."""
    from storage.db import Database
    from storage.models import Message

    path = run_home / f"{channel}.csv"
    with path.open("w", encoding="utf-8", newline="") as out:
        writer = csv.writer(out)
        writer.writerow(["text"])
        writer.writerows([r["text"]] for r in rows)
    bertbot(run_home, "messages", "import", str(path), "--channel", channel, "--json")
    database = Database.connect(f"sqlite:///{run_home / 'bertbot.db'}")
    try:
        with database.begin() as session:
            return {m.text: m.id for m in session.query(Message).all()}
    finally:
        database.engine.dispose()


def add_corrections(
    run_home: Path,
    labels: list[tuple[str, str, str]],
    message_ids: dict[str, int] | None = None,
) -> None:
    """Moderators' corrections: (text, label, annotator), linked to the stored message."""
    from storage import annotations
    from storage.db import Database
    from storage.enums import AnnotationSource

    database = Database.connect(f"sqlite:///{run_home / 'bertbot.db'}")
    try:
        with database.begin() as session:
            for text, label, annotator in labels:
                annotations.add_annotation(
                    session=session,
                    task=TASK,
                    text=text,
                    label=label,
                    annotator=annotator,
                    source=AnnotationSource.CORRECTION,
                    message_id=(message_ids or {}).get(text),
                )
    finally:
        database.engine.dispose()


def outcome_row(run_home: Path, outcome: Any, measure: list[dict[str, str]]) -> dict[str, Any]:
    """What a retrain did, with production's and the candidate's macro-F1 on ``measure``."""
    production = production_of(run_home)
    row: dict[str, Any] = {
        "status": outcome.status.value,
        "reason": outcome.message,
        "production_after": production.version if production else None,
        "production_macro_f1": round(macro_f1(run_home, production.artifact_uri, measure), 4)
        if production
        else None,
    }
    if outcome.version is not None:
        row["candidate"] = outcome.version.version
        row["candidate_macro_f1"] = round(
            macro_f1(run_home, outcome.version.artifact_uri, measure), 4
        )
    if outcome.decision is not None:
        decision = outcome.decision
        row["delta_macro_f1"] = round(decision.delta_macro_f1, 4)
        row["p_improvement"] = decision.p_improvement
        row["corrections_eval"] = decision.corrections
        snapshot = decision.snapshot or {}
        for key in ("label_check", "held_out"):
            if key in snapshot:
                row[key] = snapshot[key]
    return row
