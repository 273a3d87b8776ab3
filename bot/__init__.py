"""The Slack surface, laid out by job.

* ``app``: the Bolt app factory; ``listeners/``: thin handlers per surface (``commands``,
  ``actions``, ``events``, ``views``), wired by :func:`bot.listeners.register`.
* ``ui/``: Block Kit builders, pure functions from service results to blocks.
* ``services/``: the use cases (classification, ingestion, the alert outbox, corrections,
  retraining, status) around one shared predictor, plus roles and the user-facing errors.
* ``transport/``: serving the app over HTTP or Socket Mode, and the request checks.
* ``emulator/`` and ``fake_slack``: a local Slack (fake Web API and browser page) for tests.

Imports point one way: ``bot`` uses :mod:`trainer.serving` and :mod:`storage`; it never
imports SQLAlchemy or TensorFlow itself.
"""
