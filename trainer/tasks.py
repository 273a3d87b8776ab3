"""Tasks: a name and the label set a model for it predicts.

``spam`` and ``sentiment`` ship by default; a deployment may define more in a JSON
file (``BERTBOT_TASKS_FILE``) of the form ``{"toxicity": {"labels": ["ok", "toxic"],
"alert_label": "toxic"}}``.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

_NAME = re.compile(r"^[a-z][a-z0-9_]{0,31}$")


class TaskError(ValueError):
    """A task definition is invalid or a task is unknown."""


@dataclass(frozen=True)
class TaskSpec:
    """A classification task.

    Attributes:
        name: Short identifier, lower-case (``spam``).
        labels: The label set, in the order the model's outputs use.
        alert_label: A label that should alert moderators when predicted (``spam``), if any.
    """

    name: str
    labels: tuple[str, ...]
    alert_label: str | None = None

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise TaskError(
                f"task name {self.name!r} must be lower-case letters, digits or _ (max 32)"
            )
        if len(self.labels) < 2:
            raise TaskError(f"task {self.name!r} needs at least two labels")
        if len(set(self.labels)) != len(self.labels):
            raise TaskError(f"task {self.name!r} has duplicate labels: {list(self.labels)}")
        for label in self.labels:
            if not _NAME.match(label):
                raise TaskError(
                    f"label {label!r} of task {self.name!r} must be lower-case letters, digits or _"
                )
        if self.alert_label is not None and self.alert_label not in self.labels:
            raise TaskError(
                f"alert_label {self.alert_label!r} of task {self.name!r} is not one of "
                f"{list(self.labels)}"
            )


BUILTIN_TASKS: Mapping[str, TaskSpec] = {
    "spam": TaskSpec("spam", ("ham", "spam"), alert_label="spam"),
    "sentiment": TaskSpec("sentiment", ("negative", "neutral", "positive")),
}


def load_task_file(path: Path) -> dict[str, TaskSpec]:
    """Read extra task definitions from a JSON file.

    Args:
        path: JSON object mapping task names to ``{"labels": [...], "alert_label": ...}``.

    Returns:
        The tasks defined in the file, by name.

    Raises:
        TaskError: The file is missing, not JSON, or defines an invalid task.
    """
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as exc:
        raise TaskError(f"task file {path} does not exist") from exc
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TaskError(f"task file {path} is not valid JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise TaskError(f"task file {path} must hold a JSON object of tasks")
    tasks: dict[str, TaskSpec] = {}
    for name, body in raw.items():
        if not isinstance(body, dict) or not isinstance(body.get("labels"), list):
            raise TaskError(f"task {name!r} in {path} needs a 'labels' list")
        tasks[name] = TaskSpec(
            name=name,
            labels=tuple(str(label) for label in body["labels"]),
            alert_label=body.get("alert_label"),
        )
    return tasks
