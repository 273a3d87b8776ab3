"""The one place TensorFlow is imported.

``hub.KerasLayer`` needs Keras 2 (tf-keras); Keras 3 fails with a KerasTensor
TypeError. ``TF_USE_LEGACY_KERAS`` must be set before TensorFlow is first
imported, so every trainer module that needs TensorFlow imports it from here.
"""

from __future__ import annotations

import os
import warnings

os.environ.setdefault("TF_USE_LEGACY_KERAS", "1")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

with warnings.catch_warnings():
    # tensorflow-hub 0.16.1 imports pkg_resources, which warns on import.
    warnings.simplefilter("ignore", UserWarning)
    import tensorflow as tf
    import tensorflow_hub as hub
    import tensorflow_text as tf_text
    import tf_keras

__all__ = ["hub", "tf", "tf_keras", "tf_text"]
