"""Helpers shared by commands: the database, tasks, paths, progress output, metrics ports."""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

    from bot.observability import MetricsServer
    from trainer.decisions import RetrainProgress

from bertbot.commands import CommandError
from bertbot.settings import Settings
from storage.db import Database
from trainer.tasks import TaskSpec

TENSORFLOW_THREADS_HELP = (
    "TensorFlow threads (default: every core; BERTBOT_RETRAIN__THREADS is for retrains "
    "inside bertbot serve)"
)


def open_database(settings: Settings, *, check_schema: bool = True) -> Database:
    """Connect; unless told otherwise, refuse a schema that is not at head."""
    from storage.schema import check_schema as check

    database = Database.connect(settings.db_url)
    if database.sqlite_path is not None:
        database.sqlite_path.parent.mkdir(parents=True, exist_ok=True)
    if check_schema:
        check(database)
    return database


def task_spec(settings: Settings, name: str) -> TaskSpec:
    specs = settings.task_specs_available()
    if name not in specs:
        raise CommandError(f"unknown task {name!r}; known: {', '.join(sorted(specs))}")
    return specs[name]


def team_option(value: str | None) -> str | None:
    """A ``--team`` option's Slack workspace id (None when not given).

    Raises:
        CommandError: Not a workspace id.
    """
    if value is None:
        return None
    from bot.services.workspace_roles import RoleError, check_team

    try:
        return check_team(value)
    except RoleError as exc:
        raise CommandError(f"--team: {exc}") from exc


def encoder_dir(settings: Settings) -> Path:
    return settings.encoders_dir / settings.encoder


def require_encoder(settings: Settings) -> Path:
    from bertbot.doctor import encoder_present

    path = encoder_dir(settings)
    missing = encoder_present(path)
    if missing:
        raise CommandError(
            f"the base encoder {settings.encoder} is not imported ({path} lacks "
            f"{', '.join(missing)}); run `bertbot encoder import`"
        )
    return path


def say(message: str, stream: TextIO | None = None) -> None:
    """A progress line on stderr (stdout stays for results)."""
    print(message, file=stream or sys.stderr, flush=True)


MAX_ERRORS_SHOWN = 20


def refuse_bad_rows(path: Path | str, errors: Sequence[Any], *, skip_bad_rows: bool) -> None:
    """Name a file's bad rows (the first MAX_ERRORS_SHOWN); unless told to skip them, refuse
    the whole file so that nothing of it is imported.

    Raises:
        CommandError: There are bad rows and ``skip_bad_rows`` is False.
    """
    for error in errors[:MAX_ERRORS_SHOWN]:
        say(f"{path}:{error.line}: {error.message}")
    if len(errors) > MAX_ERRORS_SHOWN:
        say(f"... and {len(errors) - MAX_ERRORS_SHOWN} more bad rows")
    if errors and not skip_bad_rows:
        raise CommandError(
            f"{len(errors)} bad row(s) in {path}; nothing was imported. Fix them, or "
            "re-run with --skip-bad-rows to import the other rows"
        )


def format_duration(seconds: float | None) -> str:
    if seconds is None or seconds != seconds:  # NaN
        return "?"
    seconds = int(round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


class ProgressBar:
    """A one-line progress bar with ETA on a terminal; periodic log lines otherwise."""

    def __init__(self, stream: TextIO | None = None, every_s: float = 10.0) -> None:
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.every_s = every_s
        self._last = 0.0

    def update(self, done: int, total: int, detail: str = "", eta_s: float | None = None) -> None:
        now = time.monotonic()
        if not self.tty and now - self._last < self.every_s and done < total:
            return
        self._last = now
        share = 0.0 if total <= 0 else min(1.0, done / total)
        width = 30
        filled = int(share * width)
        bar = "#" * filled + "-" * (width - filled)
        line = f"[{bar}] {share * 100:5.1f}% {done}/{total} {detail} ETA {format_duration(eta_s)}"
        if self.tty:
            self.stream.write("\r" + line[:160].ljust(120))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()

    def message(self, text: str) -> None:
        if self.tty:
            self.stream.write("\r" + " " * 120 + "\r")
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self.tty:
            self.stream.write("\n")
            self.stream.flush()


def retrain_progress(bar: ProgressBar, *, indent: str = "") -> Callable[[RetrainProgress], None]:
    """A retrain's progress on a bar: training steps with speed and time left, else messages."""

    def show(update: RetrainProgress) -> None:
        if update.phase == "train" and update.total_steps and update.step is not None:
            rate = update.examples_per_s
            detail = f"{rate:.1f} ex/s" if rate else "steps"
            bar.update(update.step, update.total_steps, detail, update.eta_s)
        elif update.message:
            bar.message(f"{indent}{update.message}")

    return show


def add_metrics_options(parser: argparse.ArgumentParser, *, note: str) -> None:
    """``--metrics-port`` and ``--metrics-host``: where a process serves its Prometheus metrics.

    Args:
        parser: The command's parser.
        note: The default port and when it applies, for the help text.
    """
    parser.add_argument(
        "--metrics-port",
        type=int,
        metavar="PORT",
        help=f"serve Prometheus metrics at http://HOST:PORT/metrics ({note}; 0: none)",
    )
    parser.add_argument(
        "--metrics-host",
        default="127.0.0.1",
        metavar="HOST",
        help="the metrics port's interface (default: 127.0.0.1; 0.0.0.0 lets a scraper on "
        "another machine in)",
    )


def start_metrics_server(registry: CollectorRegistry, host: str, port: int) -> MetricsServer | None:
    """Serve ``registry`` on ``host:port`` in the background; None when ``port`` is 0.

    Raises:
        CommandError: The port is out of range or cannot be bound.
    """
    from bot.observability import MetricsServer

    if port == 0:
        return None
    if not 0 < port < 65536:
        raise CommandError(f"--metrics-port must be between 1 and 65535 (0: none), not {port}")
    try:
        return MetricsServer(registry, host=host, port=port).start()
    except OSError as exc:
        raise CommandError(
            f"cannot serve metrics on {host}:{port} ({exc}); choose another --metrics-port, "
            "or 0 for none"
        ) from exc
