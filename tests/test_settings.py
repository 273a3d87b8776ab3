from __future__ import annotations

import json
from pathlib import Path

import pytest

from bertbot.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """No developer .env or exported variable leaks into these tests."""
    monkeypatch.chdir(tmp_path)
    import os

    for name in list(os.environ):
        if name.startswith(("BERTBOT_", "SLACK_")):
            monkeypatch.delenv(name)


def test_defaults_are_local_sqlite_and_both_tasks(tmp_path: Path) -> None:
    settings = load_settings()
    assert settings.home_dir == tmp_path / "var"
    assert settings.db_url == f"sqlite:///{tmp_path / 'var' / 'bertbot.db'}"
    assert list(settings.task_specs) == ["spam", "sentiment"]
    assert settings.task_specs["sentiment"].labels == ("negative", "neutral", "positive")
    assert settings.slack.mode == "local"
    assert settings.gate.min_delta == 0.005 and settings.gate.confidence == 0.90
    assert settings.gate.max_class_drop == 0.05 and settings.gate.min_eval == 200
    assert settings.gate.min_new_labels == 20 and settings.gate.chance_level == 0.01


def test_every_gate_setting_reaches_the_gate(monkeypatch: pytest.MonkeyPatch) -> None:
    """Each BERTBOT_GATE__* variable that the gate has changes the gate, not just settings."""
    from dataclasses import asdict, fields

    from bertbot.services import gate_config
    from trainer.gate import GateConfig

    changed = {
        "min_delta": "0.02",
        "confidence": "0.8",
        "chance_level": "0.05",
        "max_class_drop": "0.1",
        "min_eval": "50",
        "bootstrap_resamples": "200",
        "seed": "7",
        "min_correction_eval": "12",
        "max_regression": "0.03",
        "max_ece_increase": "0.05",
    }
    assert set(changed) == {f.name for f in fields(GateConfig)}
    for name, value in changed.items():
        monkeypatch.setenv(f"BERTBOT_GATE__{name.upper()}", value)
    config = asdict(gate_config(load_settings()))
    assert config == {name: type(config[name])(value) for name, value in changed.items()}


def test_environment_variables_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("BERTBOT_HOME", str(tmp_path / "h"))
    monkeypatch.setenv("BERTBOT_DATABASE_URL", "postgresql://u@db:5432/bertbot")
    monkeypatch.setenv("SLACK_BOT_TOKEN", "xoxb-1")
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "s3cret")
    monkeypatch.setenv("BERTBOT_SLACK_API_URL", "http://127.0.0.1:9999/api")
    monkeypatch.setenv("BERTBOT_ADMINS", "U01ADMIN, U02ADMIN")
    monkeypatch.setenv("BERTBOT_MODERATORS", "W0MOD")
    monkeypatch.setenv("BERTBOT_TASKS", "sentiment")
    monkeypatch.setenv("BERTBOT_GATE__MIN_DELTA", "0.01")
    monkeypatch.setenv("BERTBOT_RETRAIN__SCHEDULE", "30 2 * * 1")
    monkeypatch.setenv("BERTBOT_BATCHING__MAX_BATCH_SIZE", "16")
    monkeypatch.setenv("BERTBOT_BATCHING__BATCH_TIMEOUT_MS", "2.5")
    settings = load_settings()
    assert settings.home_dir == tmp_path / "h"
    assert settings.db_url == "postgresql+psycopg://u@db:5432/bertbot"
    assert settings.slack.mode == "http"
    assert settings.slack.api_url == "http://127.0.0.1:9999/api/"
    assert settings.admins == ["U01ADMIN", "U02ADMIN"] and settings.moderators == ["W0MOD"]
    assert list(settings.task_specs) == ["sentiment"]
    assert settings.gate.min_delta == 0.01 and settings.retrain.schedule == "30 2 * * 1"
    policy = settings.batching.policy()
    assert (policy.max_batch_size, policy.batch_timeout_ms) == (16, 2.5)


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("BERTBOT_GATE__MIN_DELTA", "lots", "valid number"),
        ("BERTBOT_GATE__CONFIDENCE", "1.5", "less than 1"),
        ("BERTBOT_GATE__CHANCE_LEVEL", "0", "greater than 0"),
        ("BERTBOT_RETRAIN__SCHEDULE", "nightly", "crontab"),
        ("BERTBOT_BATCHING__MAX_BATCH_SIZE", "0", "greater than or equal to 1"),
        ("BERTBOT_RETRAIN__TIMEZONE", "Mars/Olympus", "time zone"),
        ("BERTBOT_ADMINS", "alice", "Slack user ids"),
        ("BERTBOT_TASKS", "spam,toxicity", "unknown task"),
        ("BERTBOT_DATABASE_URL", "mysql://x/y", "sqlite"),
        ("SLACK_BOT_TOKEN", "xoxp-user-token", "xoxb-"),
        ("SLACK_APP_TOKEN", "xoxb-1", "xapp-"),
        ("SLACK_ADMIN_USER_TOKEN", "xoxb-1", "xoxp-"),
        ("BERTBOT_ALERT_ACTION", "ban", "'log', 'alert', 'react', 'notify' or 'remove'"),
        ("BERTBOT_SLACK_API_URL", "slack.com", "http"),
        ("BERTBOT_DRIFT__P_VALUE", "1.5", "less than 1"),
        ("BERTBOT_DRIFT__SAMPLE", "5", "greater than or equal to 20"),
        ("BERTBOT_DRIFT__DAYS", "-1", "greater than 0"),
        ("BERTBOT_DRIFT__INTERVAL_HOURS", "lots", "valid number"),
        ("BERTBOT_DRIFT__CHANNEL", "Not A Channel", "channel id"),
        ("BERTBOT_REVIEW__MAX_AGE_DAYS", "0", "greater than 0"),
        ("BERTBOT_REVIEW__POOL_SIZE", "0", "greater than or equal to 1"),
        ("BERTBOT_REVIEW__DIGEST_MIN_ITEMS", "many", "valid integer"),
        ("BERTBOT_REVIEW__DIGEST_EVERY_HOURS", "-1", "greater than or equal to 0"),
        ("BERTBOT_REVIEW__DAILY_BUDGET", "0", "greater than or equal to 1"),
        ("BERTBOT_OAUTH__SCOPES", "chat:write,not a scope", "not Slack scopes"),
        ("BERTBOT_OAUTH__REDIRECT_URL", "bertbot.example.com", "must be a URL"),
        ("BERTBOT_OAUTH__STATE_EXPIRATION_SECONDS", "5", "greater than or equal to 60"),
        ("BERTBOT_OAUTH__TOKEN_ROTATION_MINUTES", "0", "greater than or equal to 1"),
        ("BERTBOT_OAUTH__RETENTION_DAYS", "-1", "greater than or equal to 0"),
        ("BERTBOT_OAUTH__HOME_TEAM", "general", "team id"),
    ],
)
def test_a_bad_value_names_its_variable(
    monkeypatch: pytest.MonkeyPatch, variable: str, value: str, message: str
) -> None:
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError) as caught:
        load_settings()
    text = str(caught.value)
    assert message in text
    if variable != "BERTBOT_TASKS":
        assert f"{variable}:" in text
    else:
        assert "BERTBOT_TASKS" in text


def test_review_settings_have_defaults_and_read_their_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    defaults = load_settings().review
    assert (defaults.max_age_days, defaults.pool_size, defaults.digest_min_items) == (14, 500, 5)
    assert (defaults.digest_every_hours, defaults.daily_budget) == (24, 20)
    for name, value in (
        ("MAX_AGE_DAYS", "3.5"),
        ("POOL_SIZE", "3000"),
        ("DIGEST_MIN_ITEMS", "2"),
        ("DIGEST_EVERY_HOURS", "0"),
        ("DAILY_BUDGET", "7"),
    ):
        monkeypatch.setenv(f"BERTBOT_REVIEW__{name}", value)
    review = load_settings().review
    assert (review.max_age_days, review.pool_size, review.digest_min_items) == (3.5, 3000, 2)
    assert (review.digest_every_hours, review.daily_budget) == (0, 7)


def test_every_drift_setting_reaches_the_drift_options(monkeypatch: pytest.MonkeyPatch) -> None:
    from dataclasses import asdict, fields

    from trainer.options import DriftOptions

    defaults = load_settings()
    assert asdict(defaults.drift.options()) == asdict(DriftOptions())
    assert defaults.drift.p_value == 0.01 and defaults.drift.days == 7.0
    assert defaults.drift_channel == "moderators"
    changed = {
        "days": "3",
        "p_value": "0.05",
        "sample": "300",
        "permutations": "500",
        "min_messages": "20",
        "flag": "5",
        "interval_hours": "6",
        "seed": "9",
    }
    assert set(changed) == {f.name for f in fields(DriftOptions)}
    for name, value in changed.items():
        monkeypatch.setenv(f"BERTBOT_DRIFT__{name.upper()}", value)
    monkeypatch.setenv("BERTBOT_DRIFT__CHANNEL", "#ml-admins")
    settings = load_settings()
    options = asdict(settings.drift.options())
    assert options == {name: type(options[name])(value) for name, value in changed.items()}
    assert settings.drift_channel == "ml-admins"
    assert settings.drift.options(days=1.5, sample=None).days == 1.5  # CLI overrides


def test_too_few_drift_permutations_for_the_p_value_are_refused(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("BERTBOT_DRIFT__P_VALUE", "0.001")
    monkeypatch.setenv("BERTBOT_DRIFT__PERMUTATIONS", "1000")
    with pytest.raises(SettingsError) as caught:
        load_settings()
    text = str(caught.value)
    assert "BERTBOT_DRIFT__PERMUTATIONS" in text and "at least 2000" in text


def test_tasks_file_defines_more_tasks(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = tmp_path / "tasks.json"
    path.write_text(json.dumps({"toxicity": {"labels": ["ok", "toxic"], "alert_label": "toxic"}}))
    monkeypatch.setenv("BERTBOT_TASKS_FILE", str(path))
    monkeypatch.setenv("BERTBOT_TASKS", "spam,toxicity")
    settings = load_settings()
    assert settings.task_specs["toxicity"].alert_label == "toxic"
    path.write_text(json.dumps({"bad": {"labels": ["only"]}}))
    with pytest.raises(SettingsError, match="at least two labels"):
        load_settings()


def test_dotenv_file_is_read_and_empty_values_mean_unset(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("BERTBOT_TASKS=spam\nSLACK_BOT_TOKEN=\nBERTBOT_DATABASE_URL=\n")
    settings = load_settings()
    assert settings.tasks == ["spam"] and settings.slack_bot_token is None
    assert settings.db_url.startswith("sqlite:///")


def test_secrets_are_not_printed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SLACK_SIGNING_SECRET", "very-secret-value")
    assert "very-secret-value" not in repr(load_settings())


def test_the_workspace_default_policy_comes_from_the_alert_settings(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bertbot.services import alert_policy, policy_defaults
    from storage.enums import PolicyAction

    monkeypatch.setenv("BERTBOT_ALERT_THRESHOLD", "0.9")
    monkeypatch.setenv("BERTBOT_ALERT_ACTION", "remove")
    settings = load_settings()
    defaults = policy_defaults(settings)
    assert (defaults.threshold, defaults.action, defaults.can_remove) == (
        0.9,
        PolicyAction.REMOVE,
        False,
    )
    assert alert_policy(settings).admin_token is None
    monkeypatch.setenv("SLACK_ADMIN_USER_TOKEN", "xoxp-1-admin")
    settings = load_settings()
    assert policy_defaults(settings).can_remove
    assert alert_policy(settings).admin_token == "xoxp-1-admin"
    assert "xoxp-1-admin" not in repr(alert_policy(settings))


def test_explanation_settings_have_the_options_defaults_and_bounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    options = load_settings().explain.options()
    assert (options.steps, options.top_words, options.neighbours) == (16, 5, 3)
    assert options.token_budget == 800
    monkeypatch.setenv("BERTBOT_EXPLAIN__STEPS", "32")
    monkeypatch.setenv("BERTBOT_EXPLAIN__NEIGHBOURS", "0")
    options = load_settings().explain.options()
    assert (options.steps, options.neighbours) == (32, 0)
    monkeypatch.setenv("BERTBOT_EXPLAIN__STEPS", "33")
    with pytest.raises(SettingsError, match="BERTBOT_EXPLAIN__STEPS: .*less than or equal to 32"):
        load_settings()


def test_second_opinion_settings_reach_the_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    policy = load_settings().review.second_opinion_policy()
    assert (policy.share, policy.confidence) == (0.10, 0.95)
    monkeypatch.setenv("BERTBOT_REVIEW__SECOND_OPINION_SHARE", "0")
    monkeypatch.setenv("BERTBOT_REVIEW__SECOND_OPINION_CONFIDENCE", "0.9")
    policy = load_settings().review.second_opinion_policy()
    assert (policy.share, policy.confidence) == (0.0, 0.9)
    monkeypatch.setenv("BERTBOT_REVIEW__SECOND_OPINION_SHARE", "1.5")
    with pytest.raises(
        SettingsError, match="BERTBOT_REVIEW__SECOND_OPINION_SHARE: .*less than or equal to 1"
    ):
        load_settings()


def test_quality_settings_have_the_options_defaults_and_bounds(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bertbot.services import retrain_options

    settings = load_settings()
    options = settings.quality.options()
    assert (options.folds, options.seed_sample, options.flag_ratio) == (5, 5000, 2.0)
    assert options.enabled and options.flag_p_value == 0.01
    monkeypatch.setenv("BERTBOT_QUALITY__FLAG_RATIO", "3")
    monkeypatch.setenv("BERTBOT_QUALITY__SEED_SAMPLE", "200")
    settings = load_settings()
    quality = retrain_options(settings, beside_serving=False).quality
    assert (quality.flag_ratio, quality.seed_sample) == (3.0, 200)
    monkeypatch.setenv("BERTBOT_QUALITY__FOLDS", "1")
    with pytest.raises(SettingsError, match="BERTBOT_QUALITY__FOLDS: .*greater than or equal to 2"):
        load_settings()


def test_scale_out_settings_are_read(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    defaults = load_settings(home=tmp_path / "h")
    assert defaults.broker_url is None and defaults.models_dir == tmp_path / "h" / "models"
    assert defaults.scheduler.lease_seconds == 60 and defaults.model_poll_seconds == 30
    monkeypatch.setenv("BERTBOT_ARTIFACT_ROOT", str(tmp_path / "shared"))
    monkeypatch.setenv("BERTBOT_BROKER_URL", "redis://127.0.0.1:6379/0")
    monkeypatch.setenv("BERTBOT_MODEL_POLL_SECONDS", "2")
    monkeypatch.setenv("BERTBOT_SCHEDULER__LEASE_SECONDS", "10")
    monkeypatch.setenv("BERTBOT_SCHEDULER__HEARTBEAT_SECONDS", "2")
    settings = load_settings(home=tmp_path / "h")
    assert settings.models_dir == tmp_path / "shared"
    assert settings.artifacts.root == tmp_path / "shared"
    assert settings.broker_url is not None
    assert settings.broker_url.get_secret_value() == "redis://127.0.0.1:6379/0"
    assert "6379" not in repr(settings)  # a URL may carry a password
    assert (settings.scheduler.lease_seconds, settings.scheduler.heartbeat_seconds) == (10, 2)
    assert settings.model_poll_seconds == 2


@pytest.mark.parametrize(
    ("variable", "value", "message"),
    [
        ("BERTBOT_BROKER_URL", "amqp://guest@localhost//", "BERTBOT_BROKER_URL: must be a redis"),
        ("BERTBOT_SCHEDULER__HEARTBEAT_SECONDS", "40", "at most half"),
        ("BERTBOT_MODEL_POLL_SECONDS", "0", "BERTBOT_MODEL_POLL_SECONDS"),
    ],
)
def test_bad_scale_out_settings_name_their_variable(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, variable: str, value: str, message: str
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv(variable, value)
    with pytest.raises(SettingsError, match=message):
        load_settings()


def test_oauth_settings_have_defaults_and_read_their_variables(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from bertbot.oauth_settings import DEFAULT_BOT_SCOPES

    settings = load_settings()
    assert not settings.slack.oauth_enabled
    assert settings.oauth.scopes == DEFAULT_BOT_SCOPES and settings.oauth.user_scopes == ()
    assert settings.oauth.retention_days == 30.0 and settings.oauth.redirect_url is None
    assert settings.oauth.state_expiration_seconds == 600
    assert settings.oauth.token_rotation_minutes == 120 and settings.oauth.home_team is None
    monkeypatch.setenv("SLACK_CLIENT_ID", "123.456")
    monkeypatch.setenv("SLACK_CLIENT_SECRET", "shh")
    monkeypatch.setenv("BERTBOT_OAUTH__REDIRECT_URL", "https://b.example.com/slack/oauth_redirect")
    monkeypatch.setenv("BERTBOT_OAUTH__SCOPES", "commands, chat:write")
    monkeypatch.setenv("BERTBOT_OAUTH__RETENTION_DAYS", "7")
    monkeypatch.setenv("BERTBOT_OAUTH__HOME_TEAM", "T0HOME")
    settings = load_settings()
    assert settings.slack.oauth_enabled and settings.slack.client_id == "123.456"
    assert settings.oauth.scopes == ("commands", "chat:write")
    assert settings.oauth.redirect_url == "https://b.example.com/slack/oauth_redirect"
    assert settings.oauth.retention_days == 7.0 and settings.oauth.home_team == "T0HOME"


@pytest.mark.parametrize("present", ["SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"])
def test_half_the_oauth_credentials_is_refused(
    monkeypatch: pytest.MonkeyPatch, present: str
) -> None:
    monkeypatch.setenv(present, "x")
    other = "SLACK_CLIENT_SECRET" if present == "SLACK_CLIENT_ID" else "SLACK_CLIENT_ID"
    with pytest.raises(SettingsError, match=f"{other} is missing"):
        load_settings()
