"""The one settings object, built once at the entry point and passed down.

Every value comes from an environment variable (or a ``.env`` file in the working
directory). Nothing below the entry point reads ``os.environ``. A bad value stops
start-up with a :class:`SettingsError` naming the variable.
"""

from __future__ import annotations

import dataclasses
import re
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AliasChoices,
    BaseModel,
    ConfigDict,
    Field,
    SecretStr,
    ValidationError,
    field_validator,
    model_validator,
)
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from bertbot.oauth_settings import OAuthSettings
from bertbot.section_settings import AppealSettings, ReviewSettings, SchedulerSettings
from bot.inbox_policy import InboxPolicy
from storage.enums import PolicyAction
from trainer.artifact import ArtifactRoot
from trainer.batching import BatchPolicy
from trainer.bounds import field_bounds
from trainer.explain import ExplainOptions
from trainer.options import DriftOptions, GateConfig, QualityOptions, RetrainOptions
from trainer.tasks import BUILTIN_TASKS, TaskError, TaskSpec, load_task_file

ENV_PREFIX = "BERTBOT_"
DEFAULT_SLACK_API_URL = "https://slack.com/api/"
_SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")
_SLACK_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,}$")
_SLACK_CHANNEL_NAME = re.compile(r"^[a-z0-9][a-z0-9._-]{0,79}$")
_EMOJI_NAME = re.compile(r"^[a-z0-9_+'-]{1,100}$")

# Fields whose environment variable is not ENV_PREFIX + NAME.
_ENV_NAMES = {
    "slack_bot_token": "SLACK_BOT_TOKEN",
    "slack_signing_secret": "SLACK_SIGNING_SECRET",
    "slack_app_token": "SLACK_APP_TOKEN",
    "slack_admin_user_token": "SLACK_ADMIN_USER_TOKEN",
    "slack_client_id": "SLACK_CLIENT_ID",
    "slack_client_secret": "SLACK_CLIENT_SECRET",
}


class SettingsError(ValueError):
    """The environment does not describe a valid configuration."""


def _split_csv(value: Any) -> Any:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


def _channel_name(value: str) -> str:
    value = value.strip().lstrip("#")
    if not (_SLACK_CHANNEL_ID.match(value) or _SLACK_CHANNEL_NAME.match(value)):
        raise ValueError("must be a channel id (like C012ABCDEF) or a channel name")
    return value


def _from(config: type[Any], name: str, **default: Any) -> Any:
    """A settings field whose default and bounds are the config dataclass field's own."""
    field = {f.name: f for f in dataclasses.fields(config)}[name]
    value: Any = default["default"] if "default" in default else field.default
    return Field(value, **field_bounds(field))  # type: ignore[call-overload]


class GateSettings(BaseModel):
    """When a retrained candidate may replace production (``BERTBOT_GATE__*``).

    Defaults and bounds come from :class:`trainer.options.GateConfig` (and
    ``min_new_labels`` from :class:`trainer.options.RetrainOptions`); ``implementation``
    names the gate class (``module:Class``).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    min_delta: float = _from(GateConfig, "min_delta")
    confidence: float = _from(GateConfig, "confidence")
    chance_level: float = _from(GateConfig, "chance_level")
    max_class_drop: float = _from(GateConfig, "max_class_drop")
    min_eval: int = _from(GateConfig, "min_eval")
    bootstrap_resamples: int = _from(GateConfig, "bootstrap_resamples")
    seed: int = _from(GateConfig, "seed")
    min_correction_eval: int = _from(GateConfig, "min_correction_eval")
    max_regression: float = _from(GateConfig, "max_regression")
    max_ece_increase: float = _from(GateConfig, "max_ece_increase")
    min_new_labels: int = _from(RetrainOptions, "min_new_labels")
    implementation: str = _from(RetrainOptions, "gate_implementation")


class RetrainSettings(BaseModel):
    """The retrain schedule and its resource limits (``BERTBOT_RETRAIN__*``).

    Budgets share :class:`trainer.options.RetrainOptions`' defaults and bounds, except
    ``threads``: the TensorFlow threads of a retrain inside a serving process (``/retrain``
    in ``bertbot serve``, and ``serve --with-scheduler``), one by default to leave the other
    cores to serving (TensorFlow sizes its threads once per process: once the bot has loaded
    a model, the retrain shares its threads instead). ``bertbot retrain``, ``train`` and
    ``scheduler`` run alone and use every core; ``--threads N`` sets their count.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    schedule: str = "0 3 * * *"
    timezone: str = "UTC"
    max_minutes: float = _from(RetrainOptions, "max_minutes")
    misfire_grace_seconds: int = Field(3600, ge=1)
    threads: int = _from(RetrainOptions, "threads", default=1)
    keep_rejected_artifacts: int = _from(RetrainOptions, "keep_rejected")
    replay_examples: int = _from(RetrainOptions, "replay_examples")
    correction_share: float = _from(RetrainOptions, "correction_share")
    lease_seconds: int = Field(300, ge=2)
    train_overrides: dict[str, Any] = {}

    @field_validator("schedule")
    @classmethod
    def _valid_cron(cls, value: str) -> str:
        from apscheduler.triggers.cron import CronTrigger

        try:
            CronTrigger.from_crontab(value, timezone="UTC")
        except ValueError as exc:
            raise ValueError(f"not a 5-field crontab expression ({exc})") from exc
        return value

    @field_validator("train_overrides")
    @classmethod
    def _known_training_options(cls, value: dict[str, Any]) -> dict[str, Any]:
        from dataclasses import fields

        from trainer.train import TrainConfig

        allowed = {f.name for f in fields(TrainConfig)} - {"labels", "encoder_dir"}
        unknown = sorted(set(value) - allowed)
        if unknown:
            raise ValueError(f"unknown training options {unknown}; known: {sorted(allowed)}")
        return value

    @field_validator("timezone")
    @classmethod
    def _valid_timezone(cls, value: str) -> str:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value


class InboxSettings(BaseModel):
    """How acknowledged Slack events are retried and kept (``BERTBOT_INBOX__*``).

    Defaults and bounds come from :class:`bot.inbox_policy.InboxPolicy`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    workers: int = _from(InboxPolicy, "workers")
    max_attempts: int = _from(InboxPolicy, "max_attempts")
    retry_base_seconds: float = _from(InboxPolicy, "retry_base_seconds")
    retry_max_seconds: float = _from(InboxPolicy, "retry_max_seconds")
    claim_seconds: float = _from(InboxPolicy, "claim_seconds")
    sweep_seconds: float = _from(InboxPolicy, "sweep_seconds")
    retention_days: float = _from(InboxPolicy, "retention_days")

    def policy(self) -> InboxPolicy:
        return InboxPolicy(**self.model_dump())


class BatchingSettings(BaseModel):
    """How a serving process groups concurrent texts into model calls (``BERTBOT_BATCHING__*``).

    Defaults and bounds come from :class:`trainer.batching.BatchPolicy`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    max_batch_size: int = _from(BatchPolicy, "max_batch_size")
    batch_timeout_ms: float = _from(BatchPolicy, "batch_timeout_ms")
    wait_seconds: float = _from(BatchPolicy, "wait_seconds")

    def policy(self) -> BatchPolicy:
        return BatchPolicy(**self.model_dump())


class DriftSettings(BaseModel):
    """Drift watch: recent channel messages against production's eval split
    (``BERTBOT_DRIFT__*``).

    Defaults and bounds come from :class:`trainer.options.DriftOptions`. ``channel`` is where
    admins are told of a drift episode (once per episode, mentioning BERTBOT_ADMINS); default
    BERTBOT_MODERATORS_CHANNEL. ``interval_hours`` 0 turns the scheduled check off.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    days: float = _from(DriftOptions, "days")
    p_value: float = _from(DriftOptions, "p_value")
    sample: int = _from(DriftOptions, "sample")
    permutations: int = _from(DriftOptions, "permutations")
    min_messages: int = _from(DriftOptions, "min_messages")
    flag: int = _from(DriftOptions, "flag")
    interval_hours: float = _from(DriftOptions, "interval_hours")
    seed: int = _from(DriftOptions, "seed")
    channel: str | None = None

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str | None) -> str | None:
        return None if value is None else _channel_name(value)

    @model_validator(mode="after")
    def _consistent(self) -> DriftSettings:
        try:
            self.options()
        except ValueError as exc:  # permutations too few for p_value
            raise ValueError(
                f"BERTBOT_DRIFT__PERMUTATIONS and BERTBOT_DRIFT__P_VALUE disagree: {exc}"
            ) from exc
        return self

    def options(self, **overrides: Any) -> DriftOptions:
        """The check's options, with command-line overrides (e.g. ``days``)."""
        values = self.model_dump(exclude={"channel"}) | {
            k: v for k, v in overrides.items() if v is not None
        }
        return DriftOptions(**values)


class ExplainSettings(BaseModel):
    """How "Why?" and ``bertbot explain`` explain a prediction (``BERTBOT_EXPLAIN__*``).

    Defaults and bounds come from :class:`trainer.explain.ExplainOptions`. How many training
    examples a model's neighbour index holds is a training option (``neighbour_index_size``,
    default 5,000; ``BERTBOT_RETRAIN__TRAIN_OVERRIDES`` can change it).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    steps: int = _from(ExplainOptions, "steps")
    token_budget: int = _from(ExplainOptions, "token_budget")
    top_words: int = _from(ExplainOptions, "top_words")
    neighbours: int = _from(ExplainOptions, "neighbours")

    def options(self) -> ExplainOptions:
        return ExplainOptions(**self.model_dump())


class QualitySettings(BaseModel):
    """The label check before each retrain and the annotator flag rule
    (``BERTBOT_QUALITY__*``). Defaults and bounds come from
    :class:`trainer.options.QualityOptions`; the rules are in :mod:`trainer.label_quality`.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    enabled: bool = True
    folds: int = _from(QualityOptions, "folds")
    seed_sample: int = _from(QualityOptions, "seed_sample")
    min_corrections: int = _from(QualityOptions, "min_corrections")
    flag_ratio: float = _from(QualityOptions, "flag_ratio")
    flag_min_corrections: int = _from(QualityOptions, "flag_min_corrections")
    flag_p_value: float = _from(QualityOptions, "flag_p_value")
    seed: int = _from(QualityOptions, "seed")

    def options(self) -> QualityOptions:
        return QualityOptions(**self.model_dump())


class SlackSettings(BaseModel):
    """Slack credentials and the Web API address, derived from the flat variables."""

    model_config = ConfigDict(frozen=True)

    bot_token: SecretStr | None
    signing_secret: SecretStr | None
    app_token: SecretStr | None
    api_url: str
    client_id: str | None = None
    client_secret: SecretStr | None = None

    @property
    def oauth_enabled(self) -> bool:  # multi-workspace mode (both are set, see _oauth_pair)
        return bool(self.client_id and self.client_secret)

    @property
    def mode(self) -> Literal["http", "local"]:
        """``http`` when real Slack credentials are set, else ``local`` (the emulator)."""
        return "http" if self.bot_token and self.signing_secret else "local"

    @property
    def socket_mode_available(self) -> bool:
        return bool(self.bot_token and self.app_token)


class Settings(BaseSettings):
    """bertbot's configuration. See ``.env.example`` and the README for every variable."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="__",
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        extra="ignore",
        frozen=True,
        populate_by_name=True,
    )

    home: Path = Path("var")
    database_url: str | None = None
    artifact_root: Path | None = None
    broker_url: SecretStr | None = None
    model_poll_seconds: float = Field(30.0, gt=0.0, le=3600.0)
    tasks: Annotated[list[str], NoDecode] = ["spam", "sentiment"]
    tasks_file: Path | None = None
    admins: Annotated[list[str], NoDecode] = []
    moderators: Annotated[list[str], NoDecode] = []
    encoder: str = "all-MiniLM-L6-v2"
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR"] = "INFO"

    slack_bot_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SLACK_BOT_TOKEN", "slack_bot_token")
    )
    slack_signing_secret: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SLACK_SIGNING_SECRET", "slack_signing_secret")
    )
    slack_app_token: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SLACK_APP_TOKEN", "slack_app_token")
    )
    slack_admin_user_token: SecretStr | None = Field(
        None,
        validation_alias=AliasChoices("SLACK_ADMIN_USER_TOKEN", "slack_admin_user_token"),
    )
    slack_client_id: str | None = Field(None, validation_alias=AliasChoices("SLACK_CLIENT_ID"))
    slack_client_secret: SecretStr | None = Field(
        None, validation_alias=AliasChoices("SLACK_CLIENT_SECRET", "slack_client_secret")
    )
    slack_api_url: str = DEFAULT_SLACK_API_URL
    moderators_channel: str = "moderators"
    alert_threshold: float = Field(0.8, gt=0.0, le=1.0)
    alert_reaction: str | None = None
    alert_action: PolicyAction = PolicyAction.ALERT
    alert_retry_seconds: float = Field(30.0, gt=0.0, le=3600.0)

    gate: GateSettings = GateSettings()
    retrain: RetrainSettings = RetrainSettings()
    inbox: InboxSettings = InboxSettings()
    batching: BatchingSettings = BatchingSettings()
    drift: DriftSettings = DriftSettings()
    appeals: AppealSettings = AppealSettings()
    explain: ExplainSettings = ExplainSettings()
    review: ReviewSettings = ReviewSettings()
    quality: QualitySettings = QualitySettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    oauth: OAuthSettings = OAuthSettings()

    @field_validator("tasks", "admins", "moderators", mode="before")
    @classmethod
    def _comma_separated(cls, value: Any) -> Any:
        return _split_csv(value)

    @field_validator("admins", "moderators")
    @classmethod
    def _slack_user_ids(cls, value: list[str]) -> list[str]:
        bad = [item for item in value if not _SLACK_USER_ID.match(item)]
        if bad:
            raise ValueError(f"not Slack user ids (like U012ABCDEF): {', '.join(bad)}")
        return value

    @field_validator("slack_api_url")
    @classmethod
    def _api_url(cls, value: str) -> str:
        if not re.match(r"^https?://[^/\s]+", value):
            raise ValueError("must be an http(s) URL such as https://slack.com/api/")
        return value if value.endswith("/") else value + "/"

    @field_validator("moderators_channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        return _channel_name(value)

    @field_validator("alert_reaction")
    @classmethod
    def _reaction(cls, value: str | None) -> str | None:
        if value is None:
            return None
        value = value.strip().strip(":")
        if not _EMOJI_NAME.match(value):
            raise ValueError("must be an emoji name such as rotating_light (colons optional)")
        return value

    @field_validator("slack_app_token")
    @classmethod
    def _app_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xapp-"):
            raise ValueError("an app-level token starts with xapp-")
        return value

    @field_validator("slack_admin_user_token")
    @classmethod
    def _admin_user_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xoxp-"):
            raise ValueError("an admin's user token starts with xoxp- (user scope chat:write)")
        return value

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None and not value.get_secret_value().startswith("xoxb-"):
            raise ValueError("a bot token starts with xoxb-")
        return value

    @field_validator("broker_url")
    @classmethod
    def _broker_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is None or not value.get_secret_value().strip():
            return None
        if not re.match(r"^rediss?://[^/\s]+", value.get_secret_value()):
            raise ValueError("must be a redis:// URL such as redis://127.0.0.1:6379/0")
        return value

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        return database_url(value)

    @model_validator(mode="after")
    def _oauth_pair(self) -> Settings:
        if bool(self.slack_client_id) != bool(self.slack_client_secret):
            missing = "SLACK_CLIENT_SECRET" if self.slack_client_id else "SLACK_CLIENT_ID"
            raise ValueError(f"{missing} is missing: multi-workspace mode needs both")
        return self

    @model_validator(mode="after")
    def _known_tasks(self) -> Settings:
        known = self.task_specs_available()
        unknown = [name for name in self.tasks if name not in known]
        if unknown:
            raise ValueError(
                f"BERTBOT_TASKS names unknown task(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        if not self.tasks:
            raise ValueError("BERTBOT_TASKS must name at least one task")
        return self

    def task_specs_available(self) -> dict[str, TaskSpec]:
        """Built-in tasks plus those defined in ``BERTBOT_TASKS_FILE``."""
        specs = dict(BUILTIN_TASKS)
        if self.tasks_file is not None:
            try:
                specs.update(load_task_file(self.tasks_file))
            except TaskError as exc:
                raise ValueError(str(exc)) from exc
        return specs

    # Derived values -------------------------------------------------------------------

    @property
    def task_specs(self) -> dict[str, TaskSpec]:
        """The active tasks, in the order of ``BERTBOT_TASKS``."""
        available = self.task_specs_available()
        return {name: available[name] for name in self.tasks}

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

    @property
    def db_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite:///{self.home_dir / 'bertbot.db'}"

    @property
    def encoders_dir(self) -> Path:
        return self.home_dir / "encoders"

    @property
    def models_dir(self) -> Path:
        """The artifact root: ``BERTBOT_ARTIFACT_ROOT``, default ``$BERTBOT_HOME/models``."""
        if self.artifact_root is not None:
            return self.artifact_root.expanduser().resolve()
        return self.home_dir / "models"

    @property
    def artifacts(self) -> ArtifactRoot:
        """How registry URIs map to artifact directories (:class:`ArtifactRoot`)."""
        return ArtifactRoot(self.models_dir, self.home_dir)

    @property
    def data_dir(self) -> Path:
        return self.home_dir / "data"

    @property
    def cache_dir(self) -> Path:
        return self.home_dir / "cache"

    @property
    def drift_channel(self) -> str:
        """Where admins are told of drift: BERTBOT_DRIFT__CHANNEL, else the moderators'."""
        return self.drift.channel or self.moderators_channel

    @property
    def slack(self) -> SlackSettings:
        return SlackSettings(
            bot_token=self.slack_bot_token,
            signing_secret=self.slack_signing_secret,
            app_token=self.slack_app_token,
            api_url=self.slack_api_url,
            client_id=self.slack_client_id,
            client_secret=self.slack_client_secret,
        )


def database_url(value: str) -> str:
    """A database URL as bertbot connects to it (``postgresql://`` gets the psycopg driver).

    Raises:
        ValueError: Neither SQLite nor PostgreSQL.
    """
    if value.startswith(("postgres://", "postgresql://")):
        # psycopg 3 is the driver we ship; SQLAlchemy defaults to psycopg2.
        value = "postgresql+psycopg://" + value.split("://", 1)[1]
    if not value.startswith(("sqlite:", "postgresql+psycopg:")):
        raise ValueError("must be a sqlite:/// or postgresql:// URL")
    return value


def env_name(loc: tuple[int | str, ...]) -> str:
    """The environment variable behind a validation error location."""
    names = [str(part) for part in loc if not isinstance(part, int)]
    if not names:
        return ENV_PREFIX + "*"
    if names[0] in _ENV_NAMES:
        return _ENV_NAMES[names[0]]
    if names[0] in set(_ENV_NAMES.values()):
        return names[0]
    return ENV_PREFIX + "__".join(name.upper() for name in names)


def load_settings(**overrides: Any) -> Settings:
    """Build the settings from the environment, failing fast with readable messages.

    Args:
        **overrides: Field values that take precedence over the environment (tests, CLI flags).

    Returns:
        The validated settings.

    Raises:
        SettingsError: One line per invalid variable, each naming the variable.
    """
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        lines = []
        for error in exc.errors():
            name = env_name(error["loc"])
            message = error["msg"].removeprefix("Value error, ")
            if name == ENV_PREFIX + "*":
                lines.append(message)
            else:
                lines.append(f"{name}: {message}")
        raise SettingsError("invalid configuration:\n  " + "\n  ".join(lines)) from None
