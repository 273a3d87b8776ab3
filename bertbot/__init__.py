"""bertbot's entry points: the ``bertbot`` command line and the one settings object.

The product is three packages: ``bot`` (the Slack surface), ``trainer`` (BERT import,
fine-tuning, evaluation, serving) and ``storage`` (everything SQL). This package wires
them together and is the only place that reads the environment.
"""

__version__ = "0.1.0"
