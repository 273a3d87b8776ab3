"""The one place TensorFlow is imported.

``hub.KerasLayer`` needs Keras 2 (tf-keras); Keras 3 fails with a KerasTensor
TypeError. ``TF_USE_LEGACY_KERAS`` must be set before TensorFlow is first
imported, so every trainer module that needs TensorFlow imports it from here.

TensorFlow's C++ logging is quiet unless ``BERTBOT_LOG_LEVEL=DEBUG``: a user's terminal
shows no GPU, oneDNN or CPU-instruction notices (see :mod:`trainer.tf_quiet`).
"""

from __future__ import annotations

import os
import warnings
from contextlib import nullcontext

from trainer.tf_quiet import native_stderr_filtered

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")

# BERTBOT_LOG_LEVEL is read here, from the environment, rather than passed down from the
# settings: TensorFlow reads its log level once, when its libraries load, and that happens
# at whichever first import of this module (a command, a bench script, a test, a child
# subprocess), before any settings object could reach it. The CLI exports a DEBUG setting
# (which may come from .env) to the environment before any command runs, so both agree.
# Only the level is read here; settings.py still validates the variable.
_tensorflow_debug = os.environ.get("BERTBOT_LOG_LEVEL", "").strip().upper() == "DEBUG"
if not _tensorflow_debug:
    # 3 hides ERROR lines too: the ones TensorFlow logs on a CPU-only machine are notices
    # ("failed call to cuInit", "oneDNN supports DT_INT64 only on ... AVX-512"); real
    # failures reach the user as Python exceptions. An explicit value is kept.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

with (
    warnings.catch_warnings(),
    nullcontext() if _tensorflow_debug else native_stderr_filtered(),
):
    # tensorflow-hub 0.16.1 imports pkg_resources, which warns on import.
    warnings.simplefilter("ignore", UserWarning)
    import tensorflow as tf
    import tensorflow_hub as hub
    import tensorflow_text as tf_text
    import tf_keras

__all__ = ["hub", "tf", "tf_keras", "tf_text"]
