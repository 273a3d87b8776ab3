"""The bot's use cases, free of Slack payloads and Block Kit; :class:`BotServices` wires them.

``classification`` answers ``/classify``; ``ingestion`` stores channel messages;
``alert_outbox`` queues, claims and posts moderators' alerts; ``corrections`` stores
moderators' labels; ``explanations`` answers "Why?" clicks; ``inbox`` keeps event
deliveries from being lost after their ack; ``review_queue`` chooses what to ask moderators
and ``review_digest`` tells them when it waits; ``second_opinion`` sends some corrections to
a second moderator and disputes to admins; ``workspaces`` handles uninstalls.
The first five share one :class:`~bot.services.predictor.Predictor`.
``retraining``, ``retrain_card`` and ``status`` serve ``/retrain``, its card,
``/bertbot status`` and the App Home tab; ``roles`` says who may do what; ``errors``
holds the errors meant for the Slack user; ``observer`` says what the services report
for metrics.

Every service method owns its unit of work (``with database.begin()``). Errors meant for
the user are :class:`~bot.services.errors.BotError`; storage errors pass through to the
app's one error handler.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import replace

from bot.inbox_policy import InboxPolicy
from bot.services.alert_outbox import AlertOutbox, AlertPolicy
from bot.services.appeals import AppealPolicy, AppealService
from bot.services.classification import ClassificationService
from bot.services.corrections import CorrectionService
from bot.services.explanations import ExplanationService
from bot.services.inbox import Inbox
from bot.services.ingestion import IngestionService
from bot.services.observer import PredictionObserver
from bot.services.policy import GroupMembers, PolicyDefaults, PolicyService
from bot.services.predictor import ModelSource, Predictor
from bot.services.review_queue import ReviewOptions, ReviewQueueService
from bot.services.roles import Roles
from bot.services.second_opinion import SecondOpinionPolicy, SecondOpinionService
from bot.services.workspace_roles import RoleService
from bot.services.workspaces import WorkspaceService
from storage.db import Database
from trainer.batching import Batcher, BatchPolicy
from trainer.explain import ExplainOptions
from trainer.tasks import TaskSpec


class BotServices:
    """The use cases the listeners call, built once at the entry point around one predictor.

    Thread-safe: no service keeps per-request state; each call runs its own unit of work.
    Listeners take the service they use from here (see :func:`bot.listeners.register`).

    Attributes:
        roles: Admins and moderators.
        predictor: The active tasks and their production models, shared by the services.
        classification: ``/classify``.
        ingestion: Channel messages and their edits and deletions.
        outbox: Moderators' alerts: their policy, claims and posts.
        policies: The moderation policy per channel and task.
        appeals: Authors' appeals and moderators' decisions.
        corrections: Moderators' labels.
        second_opinions: Second moderators' answers and admins' decisions on disputes.
        explanations: "Why?" on alerts, ``/classify`` answers and review items.
        inbox: Event deliveries stored before their ack, handled after.
        review: The active review queue (App Home, the digest, ``bertbot review next``).
        workspace_roles: Roles per workspace (``/bertbot roles``).
    """

    def __init__(
        self,
        database: Database,
        models: ModelSource,
        tasks: Mapping[str, TaskSpec],
        roles: Roles,
        *,
        alerts: AlertPolicy | None = None,
        policy_defaults: PolicyDefaults | None = None,
        group_members: GroupMembers | None = None,
        appeals: AppealPolicy | None = None,
        inbox: InboxPolicy | None = None,
        batching: BatchPolicy | None = None,
        observer: PredictionObserver | None = None,
        explain: ExplainOptions | None = None,
        review: ReviewOptions | None = None,
        second_opinion: SecondOpinionPolicy | None = None,
        workspaces: WorkspaceService | None = None,
    ) -> None:
        """Wire the services.

        Args:
            database: Where messages, predictions, alerts, annotations and audit entries go.
            models: The production classifier per task (``ProductionModels`` or a fake).
            tasks: The active tasks by name, in display order.
            roles: Admins and moderators.
            alerts: When and where to alert moderators.
            policy_defaults: The workspace default policy (the alert threshold of
                ``alerts`` and ``alert`` when not given; ``remove`` only with its admin token).
            group_members: The members of a user group, for exemptions by group.
            appeals: How often an author may appeal.
            inbox: How event deliveries are retried and kept.
            batching: How concurrent callers' texts are grouped into model calls.
            observer: Told about stored predictions and prediction batches (the process's
                metrics); the predictor keeps it as ``predictor.observer``.
            explain: How "Why?" explains (steps, words, neighbours).
            review: How the review queue chooses and how often it asks (the digest).
            second_opinion: Which corrections go to a second moderator.
            workspaces: Uninstalls (default: no installation store, 30 days' retention).
        """
        self.roles = roles
        self.batcher = Batcher(models, batching, observer=observer)
        self.predictor = Predictor(models, tasks, self.batcher, observer=observer)
        self.classification = ClassificationService(database, self.predictor)
        alerts = alerts or AlertPolicy()
        self.outbox = AlertOutbox(database, self.predictor, alerts)
        self.policies = PolicyService(
            database,
            tasks,
            roles,
            replace(
                policy_defaults or PolicyDefaults(threshold=alerts.threshold),
                can_remove=alerts.admin_token is not None,
            ),
            group_members=group_members,
        )
        self.ingestion = IngestionService(database, self.predictor, self.outbox, self.policies)
        self.appeals = AppealService(database, self.predictor, roles, appeals)
        self.corrections = CorrectionService(database, self.predictor, roles, second_opinion)
        self.second_opinions = SecondOpinionService(database, tasks, roles)
        self.explanations = ExplanationService(
            database, self.predictor, roles, explain or ExplainOptions()
        )
        self.inbox = Inbox(database, inbox)
        self.review = ReviewQueueService(database, models, tasks, roles, review)
        self.workspaces = workspaces or WorkspaceService(database)
        self.workspace_roles = RoleService(database, roles)

    def close(self) -> None:
        """Stop the batcher's workers (queued texts are still predicted first)."""
        self.batcher.close()
