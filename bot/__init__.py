"""The Slack surface: the Bolt app, thin listeners, Block Kit builders, roles and fake Slack.

Imports point one way: ``bot`` uses :mod:`trainer.serving` and :mod:`storage`; it never
imports SQLAlchemy or TensorFlow itself.
"""
