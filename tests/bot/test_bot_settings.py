"""The bot's settings: moderators' channel, alert threshold and reaction."""

from __future__ import annotations

import os

import pytest

from bertbot.settings import SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.chdir(tmp_path)
    for name in list(os.environ):
        if name.startswith(("BERTBOT_", "SLACK_")):
            monkeypatch.delenv(name)


def test_defaults() -> None:
    settings = load_settings()
    assert settings.moderators_channel == "moderators"
    assert settings.alert_threshold == 0.8
    assert settings.alert_reaction is None
    assert settings.alert_retry_seconds == 30.0


def test_values_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BERTBOT_MODERATORS_CHANNEL", "#mod-queue")
    monkeypatch.setenv("BERTBOT_ALERT_THRESHOLD", "0.95")
    monkeypatch.setenv("BERTBOT_ALERT_REACTION", ":rotating_light:")
    settings = load_settings()
    assert (settings.moderators_channel, settings.alert_threshold, settings.alert_reaction) == (
        "mod-queue",
        0.95,
        "rotating_light",
    )
    monkeypatch.setenv("BERTBOT_MODERATORS_CHANNEL", "C0123ABCD")
    assert load_settings().moderators_channel == "C0123ABCD"
    monkeypatch.setenv("BERTBOT_ALERT_RETRY_SECONDS", "0.5")
    assert load_settings().alert_retry_seconds == 0.5


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("BERTBOT_MODERATORS_CHANNEL", "Mods Room"),
        ("BERTBOT_ALERT_THRESHOLD", "0"),
        ("BERTBOT_ALERT_THRESHOLD", "1.2"),
        ("BERTBOT_ALERT_REACTION", "no spaces"),
        ("BERTBOT_ALERT_RETRY_SECONDS", "0"),
    ],
)
def test_bad_values_name_the_variable(
    monkeypatch: pytest.MonkeyPatch, name: str, value: str
) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(SettingsError, match=name):
        load_settings()
