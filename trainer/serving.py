"""Serving: load an exported classifier and predict labels for raw texts.

The bot depends on the :class:`Classifier` protocol only, so a remote backend (e.g.
TensorFlow Serving over the same ``serving_default`` signature) can replace the
in-process :class:`SavedModelClassifier`, and tests of other layers use a small fake.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from trainer.artifact import ArtifactError, ArtifactLocation, verify_artifact

logger = logging.getLogger(__name__)

WARMUP_TEXTS = ("warm-up", "a slightly longer warm-up message to trace a second length")


@dataclass(frozen=True)
class Prediction:
    """One text's prediction.

    Attributes:
        label: The most probable label.
        probabilities: Probability per label (sums to 1).
        model_version: The model version that predicted it.
        latency_ms: Time of the model call that produced it (its batch).
        num_tokens: Word pieces including [CLS] and [SEP], before truncation.
        truncated: True when the text was longer than the model's window.
    """

    label: str
    probabilities: dict[str, float]
    model_version: str
    latency_ms: float
    num_tokens: int
    truncated: bool

    @property
    def confidence(self) -> float:
        return self.probabilities[self.label]


def probability_matrix(predictions: Sequence[Prediction], labels: Sequence[str]) -> np.ndarray:
    """Predictions' probabilities as an [n, labels] array in ``labels`` order."""
    return np.array(
        [[p.probabilities.get(label, 0.0) for label in labels] for p in predictions],
        dtype=np.float64,
    ).reshape(len(predictions), len(labels))


class Classifier(Protocol):
    """What the rest of bertbot needs from a model."""

    @property
    def task(self) -> str: ...

    @property
    def version(self) -> str: ...

    @property
    def labels(self) -> tuple[str, ...]: ...

    def predict(self, texts: Sequence[str]) -> list[Prediction]: ...


class ServingError(RuntimeError):
    """A model could not be loaded or could not predict."""


class SavedModelClassifier:
    """An exported bertbot model, loaded in this process.

    Thread-safe: TensorFlow functions may be called from several threads at once.
    """

    def __init__(
        self,
        signature: Any,
        *,
        task: str,
        version: str,
        labels: Sequence[str],
        max_seq_length: int,
        batch_size: int,
        path: Path,
    ) -> None:
        self._signature = signature
        self._task = task
        self._version = version
        self._labels = tuple(labels)
        self._max_seq_length = max_seq_length
        self._batch_size = batch_size
        self.path = path
        self._lock = threading.Lock()
        self.calls = 0
        self._keep_alive: Any = None  # the loaded object graph the signature needs
        self._embed_signature: Any = None
        self._explain_signature: Any = None
        self._index: Any = None  # the neighbour index, loaded on the first explanation
        self.temperature = 1.0  # what the exported probabilities were divided by (manifest)

    @classmethod
    def load(
        cls,
        path: Path,
        *,
        task: str | None = None,
        version: str | None = None,
        expected_sha256: str | None = None,
        batch_size: int = 32,
        warm_up: bool = True,
    ) -> SavedModelClassifier:
        """Verify an artifact's checksums, load it and warm it up.

        Args:
            path: The artifact directory written by :func:`trainer.train.train`.
            task: The task name (default: from the artifact).
            version: The version name (default: from the artifact).
            expected_sha256: The registry's hash of the artifact, if known.
            batch_size: Texts per model call.
            warm_up: Run a prediction before returning, so the first real one is fast.

        Raises:
            ServingError: Missing or corrupt files, or a model that fails to load or predict.
        """
        try:
            manifest = verify_artifact(path, expected_sha256)
            labels = json.loads((path / "labels.json").read_text())
            training = json.loads((path / "training.json").read_text())
        except (ArtifactError, OSError, ValueError) as exc:
            raise ServingError(f"refusing model at {path}: {exc}") from exc
        from trainer.tf_runtime import tf

        try:
            loaded = tf.saved_model.load(str(path))
            signature = loaded.signatures["serving_default"]
        except Exception as exc:  # noqa: BLE001 - TensorFlow raises many types; report one
            raise ServingError(f"cannot load the SavedModel at {path}: {exc}") from exc
        encoder = training.get("base_encoder", {})
        classifier = cls(
            signature,
            task=task or manifest.get("task") or training.get("task", "task"),
            version=version or manifest.get("version") or training.get("version", "0"),
            labels=labels,
            max_seq_length=int(encoder.get("max_seq_length", 128)),
            batch_size=batch_size,
            path=path,
        )
        classifier._keep_alive = loaded
        classifier._embed_signature = loaded.signatures.get("embed")
        classifier._explain_signature = loaded.signatures.get("explain")
        classifier.temperature = float(manifest.get("temperature", 1.0))
        if warm_up:
            try:
                classifier.predict(list(WARMUP_TEXTS))
            except Exception as exc:  # noqa: BLE001 - any failure means: do not serve this
                raise ServingError(f"model at {path} failed its warm-up: {exc}") from exc
        return classifier

    @property
    def task(self) -> str:
        return self._task

    @property
    def version(self) -> str:
        return self._version

    @property
    def labels(self) -> tuple[str, ...]:
        return self._labels

    @property
    def max_seq_length(self) -> int:
        return self._max_seq_length

    def predict(self, texts: Sequence[str]) -> list[Prediction]:
        """Predict each text's label; texts are batched by length, results keep input order."""
        from trainer.tf_runtime import tf

        if not texts:
            return []
        results: list[Prediction | None] = [None] * len(texts)
        order = np.argsort([len(text) for text in texts], kind="stable")
        for start in range(0, len(order), self._batch_size):
            index = order[start : start + self._batch_size]
            started = time.perf_counter()
            outputs = self._signature(text=tf.constant([texts[i] for i in index]))
            probabilities = outputs["probabilities"].numpy()
            num_tokens = outputs["num_tokens"].numpy()
            latency_ms = (time.perf_counter() - started) * 1000.0
            for row, i in enumerate(index):
                probs = probabilities[row]
                best = int(probs.argmax())
                results[i] = Prediction(
                    label=self._labels[best],
                    probabilities={
                        label: float(p) for label, p in zip(self._labels, probs, strict=True)
                    },
                    model_version=self._version,
                    latency_ms=latency_ms,
                    num_tokens=int(num_tokens[row]),
                    truncated=int(num_tokens[row]) > self._max_seq_length,
                )
        with self._lock:
            self.calls += 1
        return [result for result in results if result is not None]

    def logits(self, texts: Sequence[str]) -> np.ndarray:
        """Raw logits [n, labels] in input order (before the temperature; 0 rows: empty).

        Raises:
            ServingError: The artifact predates raw logits in its signature.
        """
        return self._batched(texts, self._signature, "logits", len(self._labels))

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """The pooled representation the head reads, [n, hidden] float32, in input order.

        Raises:
            ServingError: The artifact has no ``embed`` signature (exported before it existed:
                re-export or retrain it).
        """
        if self._embed_signature is None:
            raise ServingError(
                f"{self._task} v{self._version} at {self.path} has no embed signature; "
                "retrain the task to get embeddings"
            )
        return self._batched(texts, self._embed_signature, "embedding", None)

    @property
    def explains(self) -> bool:
        """The artifact has an ``explain`` signature (its encoder did not predate them)."""
        return self._explain_signature is not None

    def explain(self, text: str, options: Any) -> Any:
        """Why the model predicts what it does for ``text`` (:mod:`trainer.explain`).

        Runs integrated gradients (``options.steps`` model rows in one call) and looks up
        the nearest labelled training examples: call it on a worker, never on an ingest path.

        Args:
            text: One text.
            options: A :class:`trainer.explain.ExplainOptions`.

        Returns:
            A :class:`trainer.explain.Explanation`.

        Raises:
            ExplainError: The artifact has no ``explain`` signature (its encoder predates
                explanations) or its neighbour index is unreadable.
        """
        from trainer.explain import REIMPORT_HINT, ExplainError, explain_with_signature, index_cache

        if self._explain_signature is None:
            raise ExplainError(
                f"{self._task} v{self._version} at {self.path} cannot explain: {REIMPORT_HINT}"
            )
        if self._index is None:
            with self._lock:
                if self._index is None:
                    self._index = index_cache(self.path)
        return explain_with_signature(
            self._explain_signature,
            text,
            options,
            task=self._task,
            version=self._version,
            labels=self._labels,
            max_seq_length=self._max_seq_length,
            index=self._index.get(),
        )

    def _batched(
        self, texts: Sequence[str], signature: Any, key: str, width: int | None
    ) -> np.ndarray:
        from trainer.tf_runtime import tf

        order = np.argsort([len(text) for text in texts], kind="stable")
        out: np.ndarray | None = None
        for start in range(0, len(order), self._batch_size):
            index = order[start : start + self._batch_size]
            outputs = signature(text=tf.constant([texts[i] for i in index]))
            if key not in outputs:
                raise ServingError(
                    f"{self._task} v{self._version} at {self.path} has no {key!r} output; "
                    "retrain it to get one"
                )
            values = outputs[key].numpy().astype(np.float32)
            if out is None:
                out = np.zeros((len(texts), values.shape[1]), dtype=np.float32)
            out[index] = values
        if out is None:
            return np.zeros((0, width or 0), dtype=np.float32)
        return out


@dataclass(frozen=True)
class _Refusal:
    """A version that failed to load: which, how often, and when to try it again."""

    key: tuple[str, str]
    attempts: int
    retry_at: float


@dataclass(frozen=True)
class ModelRef:
    """Where a task's production model is: what the registry's alias points at."""

    task: str
    version: str
    path: Path
    sha256: str


Resolver = Callable[[str], "ModelRef | None"]
Loader = Callable[[ModelRef], Classifier]


def load_ref(ref: ModelRef) -> Classifier:
    return SavedModelClassifier.load(
        ref.path, task=ref.task, version=ref.version, expected_sha256=ref.sha256
    )


def registry_resolver(database: Any, home: ArtifactLocation) -> Resolver:
    """Resolve ``production`` through the registry (storage) of a database."""
    from storage import registry
    from trainer.artifact import resolve_artifact

    def resolve(task: str) -> ModelRef | None:
        with database.begin() as session:
            version = registry.get_alias(session=session, task=task)
        if version is None:
            return None
        return ModelRef(
            task, version.version, resolve_artifact(home, version.artifact_uri), version.sha256
        )

    return resolve


class ProductionModels:
    """The production classifier of each task, swapped when the registry's alias moves.

    A new model is loaded, verified and warmed up beside the old one, then one reference
    is replaced: in-flight predictions finish on the model they started with. A model that
    fails its checksum or warm-up is refused and logged; the old one keeps serving, and the
    refused version is tried again with exponential back-off (``retry_base_s`` doubling up
    to ``retry_max_s``), so files that arrive late on shared storage are picked up without
    a restart.
    """

    def __init__(
        self,
        tasks: Sequence[str],
        resolve: Resolver,
        *,
        loader: Loader = load_ref,
        poll_seconds: float = 30.0,
        retry_base_s: float = 1.0,
        retry_max_s: float = 300.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._tasks = list(tasks)
        self._resolve = resolve
        self._loader = loader
        self._poll_seconds = poll_seconds
        self._models: dict[str, Classifier] = {}
        self._retry_base_s = retry_base_s
        self._retry_max_s = retry_max_s
        self._clock = clock
        self._refused: dict[str, _Refusal] = {}
        self._refresh_lock = threading.Lock()
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None

    def get(self, task: str) -> Classifier | None:
        """The current production classifier of a task (None until one exists)."""
        return self._models.get(task)

    def versions(self) -> dict[str, str]:
        return {task: model.version for task, model in self._models.items()}

    def refresh(self, task: str | None = None) -> dict[str, str]:
        """Check the alias of one task (or all) and swap in a moved production model.

        Returns:
            What happened per task: ``unchanged``, ``loaded <v>``, ``refused <v>: ...``,
            ``none`` or ``error: ...``.
        """
        results = {}
        with self._refresh_lock:
            for name in [task] if task else self._tasks:
                results[name] = self._refresh_one(name)
        return results

    def _refresh_one(self, task: str) -> str:
        try:
            ref = self._resolve(task)
        except Exception as exc:  # noqa: BLE001 - a broken registry must not stop serving
            logger.warning("cannot resolve production of %s: %s", task, exc)
            return f"error: {exc}"
        if ref is None:
            return "none"
        current = self._models.get(task)
        if current is not None and current.version == ref.version:
            return "unchanged"
        refusal = self._refused.get(task)
        if refusal is not None and refusal.key != (ref.version, ref.sha256):
            refusal = None  # the alias moved on: a new version gets a fresh start
        now = self._clock()
        if refusal is not None and now < refusal.retry_at:
            return f"refused {ref.version} (earlier; retry in {refusal.retry_at - now:.0f} s)"
        try:
            model = self._loader(ref)
        except Exception as exc:  # noqa: BLE001 - any failure: refuse it, keep the old one
            attempts = refusal.attempts + 1 if refusal is not None else 1
            delay = min(self._retry_max_s, self._retry_base_s * 2 ** (attempts - 1))
            self._refused[task] = _Refusal((ref.version, ref.sha256), attempts, now + delay)
            self._wake.set()  # the poll thread may be waiting for much longer
            logger.error(
                "refusing %s v%s (keeping %s; attempt %d, next in %.0f s): %s",
                task,
                ref.version,
                current.version if current else "nothing",
                attempts,
                delay,
                exc,
            )
            return f"refused {ref.version}: {exc}"
        self._refused.pop(task, None)
        self._models[task] = model  # one reference swap
        logger.info(
            "%s: now serving v%s (was %s)",
            task,
            ref.version,
            current.version if current else "nothing",
        )
        return f"loaded {ref.version}"

    def notify(self, task: str) -> None:
        """The alias moved in this process: reload now instead of at the next poll."""
        self.refresh(task)

    def start(self) -> None:
        if self._thread is not None:
            return
        self._thread = threading.Thread(target=self._poll, name="model-reload", daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.is_set():
            woken = self._wake.wait(self._next_wait())
            self._wake.clear()
            if self._stop.is_set():
                return
            if woken:  # a version was refused meanwhile: work out when to look again
                continue
            self.refresh()

    def _next_wait(self) -> float:
        """Until the next poll, or sooner when a refused version is due for another try."""
        retries = [refusal.retry_at for refusal in list(self._refused.values())]
        if not retries:
            return self._poll_seconds
        return max(0.05, min(self._poll_seconds, min(retries) - self._clock()))

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
