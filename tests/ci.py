"""One rule for "running in CI" (``CI`` set to 1, true or yes, any case), used by every conftest.

In CI a test whose service or tool is missing fails instead of skipping.
"""

from __future__ import annotations

import os


def running_in_ci() -> bool:
    return os.environ.get("CI", "").strip().lower() in ("1", "true", "yes")
