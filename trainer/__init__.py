"""Encoder import, data sets, fine-tuning, evaluation, the promotion gate and serving.

Importing this package is cheap: only the modules that need TensorFlow import it,
through :mod:`trainer.tf_runtime`.
"""
