"""``bertbot doctor``: is everything in place to serve, and if not, what fixes it."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from bertbot.settings import Settings
from storage import registry
from storage.db import Database
from storage.errors import StorageError
from storage.schema import check_schema
from trainer.artifact import resolve_artifact
from trainer.promotion import ArtifactRefusedError, verify_version


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    fix: str | None = None


def encoder_present(encoder_dir: Path) -> list[str]:
    """The pieces of an imported encoder that are missing (empty when complete)."""
    wanted = ["encoder.json", "vocab.txt", "preprocessor/saved_model.pb", "encoder/saved_model.pb"]
    return [name for name in wanted if not (encoder_dir / name).is_file()]


def run_checks(settings: Settings, database: Database) -> list[Check]:
    """Every check, in the order a new user would fix them."""
    checks = [
        Check(
            "settings",
            True,
            f"home {settings.home_dir}, database {database.url}, tasks {', '.join(settings.tasks)}",
        )
    ]
    schema_ok = False
    sqlite_file = database.sqlite_path
    if sqlite_file is not None and not sqlite_file.exists():
        checks.append(
            Check("database", False, f"no database at {sqlite_file} yet", "bertbot db upgrade")
        )
    else:
        schema_ok = _database_checks(database, checks)

    encoder_dir = settings.encoders_dir / settings.encoder
    missing = encoder_present(encoder_dir)
    checks.append(
        Check(
            f"encoder {settings.encoder}",
            not missing,
            f"{encoder_dir}" if not missing else f"missing in {encoder_dir}: {', '.join(missing)}",
            None if not missing else "bertbot encoder import",
        )
    )

    for task in settings.tasks:
        name = f"model {task}"
        if not schema_ok:
            checks.append(Check(name, False, "unknown until the schema is at head", None))
            continue
        with database.begin() as session:
            production = registry.get_alias(session=session, task=task)
        if production is None:
            checks.append(Check(name, False, "no production model", f"bertbot train --task {task}"))
            continue
        path = resolve_artifact(settings.artifacts, production.artifact_uri)
        try:
            manifest = verify_version(settings.artifacts, production)
        except ArtifactRefusedError as exc:
            checks.append(
                Check(
                    name,
                    False,
                    str(exc),
                    f"bertbot models rollback --task {task} --reason ..., or restore {path}",
                )
            )
            continue
        temperature = manifest.get("temperature")
        calibrated = (
            f"calibrated, T = {float(temperature):.2f}"
            if temperature is not None
            else "uncalibrated: trained before temperature scaling, it shows its raw softmax "
            f"(`bertbot retrain --task {task} --force` fits one)"
        )
        checks.append(
            Check(
                name,
                True,
                f"production {production.version} at {path} "
                f"({len(manifest['files'])} files match sha256 {production.sha256[:12]}…; "
                f"{calibrated})",
            )
        )

    checks.append(_slack_check(settings))
    return checks


def _database_checks(database: Database, checks: list[Check]) -> bool:
    try:
        database.ping()
    except StorageError as exc:
        checks.append(Check("database", False, str(exc), "check BERTBOT_DATABASE_URL"))
        return False
    checks.append(Check("database", True, f"{database.dialect} reachable"))
    try:
        revision = check_schema(database)
    except StorageError as exc:  # SchemaOutOfDateError included
        checks.append(Check("schema", False, str(exc), "bertbot db upgrade"))
        return False
    checks.append(Check("schema", True, f"at head ({revision})"))
    return True


def _slack_check(settings: Settings) -> Check:
    slack = settings.slack
    have_token, have_secret = bool(slack.bot_token), bool(slack.signing_secret)
    if have_token and have_secret:
        extra = " and Socket Mode" if slack.app_token else ""
        return Check("slack", True, f"HTTP mode{extra}, Web API {slack.api_url}")
    if have_token != have_secret:
        missing = "SLACK_SIGNING_SECRET" if have_token else "SLACK_BOT_TOKEN"
        return Check(
            "slack",
            False,
            f"{missing} is not set (real Slack needs both SLACK_BOT_TOKEN and "
            "SLACK_SIGNING_SECRET)",
            f"set {missing}, or unset both for local mode",
        )
    if slack.app_token:
        return Check(
            "slack", False, "SLACK_APP_TOKEN is set without SLACK_BOT_TOKEN", "set SLACK_BOT_TOKEN"
        )
    return Check("slack", True, "local mode: no Slack credentials, the local emulator serves")
