"""Moderation policy per channel and task: watch, threshold, action and exemptions.

A channel without a stored policy for a task follows the workspace default (the settings:
``BERTBOT_ALERT_THRESHOLD``, ``BERTBOT_ALERT_ACTION``); a stored policy's threshold or
action left unset follows it too. Every change goes through :meth:`PolicyService.set` or
:meth:`PolicyService.clear`, which check the role and write an audit entry in the same
unit of work; ``/bertbot policy`` and ``bertbot policy`` both call them.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from bot.services.errors import BotError, NotAllowedError
from bot.services.roles import Roles
from storage import audit, policies
from storage.db import Database
from storage.enums import PolicyAction
from storage.records import ChannelPolicyRecord
from trainer.tasks import TaskSpec

# The actor of a change made with ``bertbot policy`` (whoever can run it owns the database).
CLI_ACTOR = "cli"
WORKSPACE = "*"
REMOVE_FALLBACK = (
    "remove needs an admin's user token (SLACK_ADMIN_USER_TOKEN, user scope chat:write); "
    "without it the bot alerts moderators instead"
)
_CHANNEL_ID = re.compile(r"^[CG][A-Z0-9]{2,}$")
_EXEMPT_ID = re.compile(r"^[UWS][A-Z0-9]{2,}$")

GroupMembers = Callable[[str], Iterable[str]]


class PolicyError(BotError):
    """A policy change that cannot be made (unknown task, bad threshold, ...)."""


@dataclass(frozen=True)
class PolicyDefaults:
    """The workspace default: today's global settings.

    Attributes:
        threshold: ``BERTBOT_ALERT_THRESHOLD``.
        action: ``BERTBOT_ALERT_ACTION``.
        can_remove: An admin's user token is configured (``SLACK_ADMIN_USER_TOKEN``).
    """

    threshold: float = 0.8
    action: PolicyAction = PolicyAction.ALERT
    can_remove: bool = False

    def __post_init__(self) -> None:
        _check_threshold(self.threshold)


@dataclass(frozen=True)
class EffectivePolicy:
    """What applies to one channel and task.

    Attributes:
        channel_id: The channel (``*`` for the workspace default itself).
        task: The task.
        watch: Classify the channel's messages for the task at all.
        threshold: Act when P(alert label) is at least this (a calibrated probability).
        action: What happens then (``remove`` already fallen back to ``alert`` when the
            bot has no admin user token).
        requested: The action the policy asks for.
        exempt: User and user group ids whose messages are not classified for the task.
        stored: The channel has a stored policy (False: the workspace default applies).
        updated_by: Who changed the stored policy last.
    """

    channel_id: str
    task: str
    watch: bool
    threshold: float
    action: PolicyAction
    requested: PolicyAction
    exempt: tuple[str, ...] = ()
    stored: bool = False
    updated_by: str | None = None

    @property
    def note(self) -> str | None:
        """Why the action differs from the one asked for, if it does."""
        if self.requested is PolicyAction.REMOVE and self.action is not PolicyAction.REMOVE:
            return REMOVE_FALLBACK
        return None

    def as_dict(self) -> dict[str, Any]:
        """The JSON form (``bertbot policy list --json``)."""
        return {
            "channel": self.channel_id,
            "task": self.task,
            "watch": self.watch,
            "threshold": self.threshold,
            "action": self.action.value,
            "requested_action": self.requested.value,
            "exempt": list(self.exempt),
            "source": "channel" if self.stored else "default",
            "updated_by": self.updated_by,
            "note": self.note,
        }


class PolicyService:
    """Resolves and changes policies. Thread-safe: each call runs its own unit of work."""

    def __init__(
        self,
        database: Database,
        tasks: Mapping[str, TaskSpec],
        roles: Roles,
        defaults: PolicyDefaults | None = None,
        *,
        group_members: GroupMembers | None = None,
        cache_seconds: float = 5.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """Wire the service.

        Args:
            database: Where policies and audit entries go.
            tasks: The active tasks.
            roles: Only admins change policies.
            defaults: The workspace default.
            group_members: The user ids of a user group (``S...``), to exempt its members;
                without it, only user ids exempt anyone.
            cache_seconds: How long a channel's stored policies are reused (0: never).
            clock: Seconds, for the cache (tests).
        """
        self._database = database
        self._tasks = dict(tasks)
        self.roles = roles
        self.defaults = defaults or PolicyDefaults()
        self._group_members = group_members
        self._cache_seconds = cache_seconds
        self._clock = clock
        self._cache_lock = threading.Lock()
        self._cache: dict[str, tuple[float, dict[str, ChannelPolicyRecord]]] = {}

    @property
    def task_names(self) -> tuple[str, ...]:
        return tuple(self._tasks)

    def default(self, task: str) -> EffectivePolicy:
        """The workspace default for a task."""
        return self._effective(WORKSPACE, task, None)

    def for_channel(self, channel_id: str) -> dict[str, EffectivePolicy]:
        """What applies in a channel, for every active task.

        Every message asks this, so a channel's stored policies are kept for
        ``cache_seconds``: a change made here applies at once, one made by another process
        (``bertbot policy``, another serving process) within that time.
        """
        stored = self._stored(channel_id)
        return {task: self._effective(channel_id, task, stored.get(task)) for task in self._tasks}

    def _stored(self, channel_id: str) -> dict[str, ChannelPolicyRecord]:
        now = self._clock()
        with self._cache_lock:
            cached = self._cache.get(channel_id)
        if cached is not None and now - cached[0] < self._cache_seconds:
            return cached[1]
        with self._database.begin() as session:
            stored = {
                p.task: p for p in policies.list_policies(session=session, channel_id=channel_id)
            }
        with self._cache_lock:
            self._cache[channel_id] = (now, stored)
        return stored

    def _forget(self, channel_id: str) -> None:
        with self._cache_lock:
            self._cache.pop(channel_id, None)

    def listed(self, channel_id: str | None = None) -> list[EffectivePolicy]:
        """One channel's policy per task; or the workspace default per task, then every
        stored channel policy."""
        if channel_id is not None:
            return list(self.for_channel(channel_id).values())
        with self._database.begin() as session:
            stored = policies.list_policies(session=session)
        defaults = [self.default(task) for task in self._tasks]
        return defaults + [self._effective(p.channel_id, p.task, p) for p in stored]

    def is_exempt(self, policy: EffectivePolicy, user_id: str | None) -> bool:
        """Whether a user's messages are left alone for the policy's task."""
        if user_id is None or not policy.exempt:
            return False
        if user_id in policy.exempt:
            return True
        if self._group_members is None:
            return False
        return any(
            user_id in set(self._group_members(group))
            for group in policy.exempt
            if group.startswith("S")
        )

    def tasks_to_classify(
        self, resolved: Mapping[str, EffectivePolicy], user_id: str | None
    ) -> tuple[str, ...]:
        """The tasks a message is classified for: watched here, its author not exempt."""
        return tuple(
            task
            for task, policy in resolved.items()
            if policy.watch and not self.is_exempt(policy, user_id)
        )

    def set(
        self,
        *,
        actor: str,
        channel_id: str,
        task: str,
        watch: bool | None = None,
        threshold: float | None = None,
        action: PolicyAction | str | None = None,
        exempt: Sequence[str] | None = None,
        team_id: str | None = None,
    ) -> EffectivePolicy:
        """Change a channel's policy for a task; what is not given stays as it was.

        Args:
            actor: An admin's Slack user id, or :data:`CLI_ACTOR` (``bertbot policy``).
            channel_id: The channel (``C...`` or ``G...``).
            task: An active task.
            watch: Classify the channel's messages for the task.
            threshold: The alert threshold, in (0, 1].
            action: ``log``, ``alert``, ``react``, ``notify`` or ``remove``.
            exempt: Replaces the exempt user and user group ids.
            team_id: The workspace the admin acts in (its roles decide).

        Returns:
            What now applies.

        Raises:
            NotAllowedError: The actor is not an admin.
            PolicyError: An unknown task or channel, a bad threshold, action or id.
        """
        self._check_actor(actor, team_id)
        role = self._role(actor, team_id)  # before the unit of work (see Roles)
        channel_id = _check_channel(channel_id)
        self._check_task(task)
        if threshold is not None:
            _check_threshold(threshold)
        action = _action(action)
        exempt_ids = None if exempt is None else _check_exempt(exempt)
        with self._database.begin() as session:
            before = policies.list_policies(session=session, channel_id=channel_id, task=task)
            old = before[0] if before else None
            stored = policies.put_policy(
                session=session,
                channel_id=channel_id,
                task=task,
                watch=watch if watch is not None else (old.watch if old else True),
                threshold=threshold if threshold is not None else (old.threshold if old else None),
                action=action if action is not None else (old.action if old else None),
                exempt=exempt_ids if exempt_ids is not None else (old.exempt if old else []),
                updated_by=actor,
            )
            effective = self._effective(channel_id, task, stored)
            audit.record_audit(
                session=session,
                actor=actor,
                action="policy.set",
                subject=policy_subject(channel_id, task),
                details={
                    "before": _stored_dict(old),
                    "after": _stored_dict(stored),
                    "role": role,
                },
            )
        self._forget(channel_id)
        return effective

    def clear(
        self, *, actor: str, channel_id: str, task: str, team_id: str | None = None
    ) -> EffectivePolicy:
        """Drop a channel's policy for a task: the workspace default applies again.

        Raises:
            NotAllowedError: The actor is not an admin.
            PolicyError: An unknown task or a bad channel id.
        """
        self._check_actor(actor, team_id)
        role = self._role(actor, team_id)  # before the unit of work (see Roles)
        channel_id = _check_channel(channel_id)
        self._check_task(task)
        with self._database.begin() as session:
            removed = policies.delete_policy(session=session, channel_id=channel_id, task=task)
            if removed is not None:
                audit.record_audit(
                    session=session,
                    actor=actor,
                    action="policy.clear",
                    subject=policy_subject(channel_id, task),
                    details={
                        "before": _stored_dict(removed),
                        "role": role,
                    },
                )
        self._forget(channel_id)
        return self._effective(channel_id, task, None)

    def can_set(self, user_id: str | None, team_id: str | None = None) -> bool:
        """Only admins (of the workspace asking) change policies, and the operator running
        ``bertbot policy``."""
        return user_id == CLI_ACTOR or self.roles.is_admin(user_id, team_id)

    # Helpers -----------------------------------------------------------------------------

    def _effective(
        self, channel_id: str, task: str, stored: ChannelPolicyRecord | None
    ) -> EffectivePolicy:
        defaults = self.defaults
        requested = (stored.action if stored else None) or defaults.action
        action = requested
        if requested is PolicyAction.REMOVE and not defaults.can_remove:
            action = PolicyAction.ALERT
        threshold = stored.threshold if stored is not None else None
        return EffectivePolicy(
            channel_id=channel_id,
            task=task,
            watch=stored.watch if stored else True,
            threshold=defaults.threshold if threshold is None else threshold,
            action=action,
            requested=requested,
            exempt=tuple(stored.exempt) if stored else (),
            stored=stored is not None,
            updated_by=stored.updated_by if stored else None,
        )

    def _check_actor(self, actor: str, team_id: str | None) -> None:
        if not self.can_set(actor, team_id):
            raise NotAllowedError("Only admins can change the moderation policy. Nothing changed.")

    def _check_task(self, task: str) -> None:
        if task not in self._tasks:
            raise PolicyError(f"unknown task {task!r}; active: {', '.join(self._tasks)}")

    def _role(self, actor: str, team_id: str | None = None) -> str:
        return "operator" if actor == CLI_ACTOR else self.roles.role_of(actor, team_id)


def policy_subject(channel_id: str, task: str) -> str:
    """The audit subject of a channel's policy for a task."""
    return f"policy/{channel_id}/{task}"


def _stored_dict(record: ChannelPolicyRecord | None) -> dict[str, Any] | None:
    if record is None:
        return None
    return {
        "watch": record.watch,
        "threshold": record.threshold,
        "action": None if record.action is None else record.action.value,
        "exempt": list(record.exempt),
    }


def _action(value: PolicyAction | str | None) -> PolicyAction | None:
    if value is None or isinstance(value, PolicyAction):
        return value
    try:
        return PolicyAction(value)
    except ValueError as exc:
        choices = ", ".join(a.value for a in PolicyAction)
        raise PolicyError(f"unknown action {value!r}; one of {choices}") from exc


def _check_threshold(value: float) -> float:
    if not 0.0 < value <= 1.0:
        raise PolicyError(f"a threshold is a probability in (0, 1], got {value!r}")
    return value


def _check_channel(value: str) -> str:
    value = value.strip()
    if not _CHANNEL_ID.match(value):
        raise PolicyError(f"{value!r} is not a channel id (like C012ABCDEF)")
    return value


def _check_exempt(values: Sequence[str]) -> list[str]:
    ids = [value.strip().lstrip("@") for value in values if value.strip()]
    bad = [value for value in ids if not _EXEMPT_ID.match(value)]
    if bad:
        raise PolicyError(
            f"not user or user group ids (like U012ABCDEF or S012ABCDEF): {', '.join(bad)}"
        )
    return ids
