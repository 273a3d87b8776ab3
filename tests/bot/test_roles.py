"""Role checks and the pure parts of the services (no HTTP, no database)."""

from __future__ import annotations

import pytest

from bot.services import BotServices
from bot.services.alert_outbox import AlertPolicy
from bot.services.classification import parse_classify
from bot.services.errors import NotAllowedError
from bot.services.roles import Roles

ROLES = Roles.of(admins=["U0ADMIN"], moderators=["U0MOD"])
TASKS = ("spam", "sentiment")


@pytest.mark.parametrize(
    ("user", "can_label", "is_admin", "role"),
    [
        ("U0ADMIN", True, True, "admin"),
        ("U0MOD", True, False, "moderator"),
        ("U0MEMBER", False, False, "member"),
        (None, False, False, "member"),
        ("", False, False, "member"),
    ],
)
def test_moderators_and_admins_label_only_admins_administer(
    user: str | None, can_label: bool, is_admin: bool, role: str
) -> None:
    assert ROLES.can_label(user) is can_label
    assert ROLES.is_admin(user) is is_admin
    assert ROLES.role_of(user) == role


def test_no_configured_roles_means_nobody_may_label() -> None:
    assert not Roles().can_label("U0ANYONE")


def test_a_refused_correction_touches_nothing() -> None:
    class Untouchable:
        def begin(self) -> None:
            raise AssertionError("the database was used for a refused click")

        def get(self, task: str) -> None:
            raise AssertionError("a model was used for a refused click")

    services = BotServices(Untouchable(), Untouchable(), {"spam": _spam()}, ROLES)  # type: ignore[arg-type]
    with pytest.raises(NotAllowedError, match="Only moderators and admins"):
        services.corrections.correct(user_id="U0MEMBER", prediction_id=1, label="spam")


def _spam():
    from trainer.tasks import BUILTIN_TASKS

    return BUILTIN_TASKS["spam"]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        ("   ", None),
        ("hello there", ("hello there", TASKS)),
        ("sentiment: I love it", ("I love it", ("sentiment",))),
        ("Sentiment:I love it", ("I love it", ("sentiment",))),
        ("spam:   ", None),
        ("Note: lunch at noon", ("Note: lunch at noon", TASKS)),
        ("sentiment: a\nb", ("a\nb", ("sentiment",))),
    ],
)
def test_parse_classify(text: str, expected: tuple[str, tuple[str, ...]] | None) -> None:
    request = parse_classify(text, TASKS)
    assert (None if request is None else (request.text, request.tasks)) == expected


def test_alert_threshold_must_be_a_probability() -> None:
    with pytest.raises(ValueError, match="threshold"):
        AlertPolicy(threshold=0.0)
    with pytest.raises(ValueError, match="threshold"):
        AlertPolicy(threshold=1.5)
