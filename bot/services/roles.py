"""Who may do what: admins and moderators by Slack user id.

Checked server-side on every command and every click; a Slack message or button is never
trusted to say who may act.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Roles:
    """The configured admins and moderators.

    Attributes:
        admins: Slack user ids allowed to retrain, promote and roll back (and to label).
        moderators: Slack user ids allowed to label.
    """

    admins: frozenset[str] = frozenset()
    moderators: frozenset[str] = frozenset()

    @classmethod
    def of(cls, *, admins: Iterable[str] = (), moderators: Iterable[str] = ()) -> Roles:
        return cls(admins=frozenset(admins), moderators=frozenset(moderators))

    def is_admin(self, user_id: str | None) -> bool:
        return user_id is not None and user_id in self.admins

    def is_moderator(self, user_id: str | None) -> bool:
        return user_id is not None and user_id in self.moderators

    def can_label(self, user_id: str | None) -> bool:
        """Moderators and admins may label (correct) predictions."""
        return self.is_moderator(user_id) or self.is_admin(user_id)

    def role_of(self, user_id: str | None) -> str:
        """``admin``, ``moderator`` or ``member`` (for logs and audit details)."""
        if self.is_admin(user_id):
            return "admin"
        if self.is_moderator(user_id):
            return "moderator"
        return "member"
