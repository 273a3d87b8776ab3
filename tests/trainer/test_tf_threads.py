"""Training's TensorFlow thread pools: every core unless capped.

TensorFlow sizes its pools once per process, when it runs its first op, so the test runs a
fresh interpreter (~5-10 s: it imports TensorFlow).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

CODE = """
import json, logging
logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(message)s")
from trainer.model import configure_threads
from trainer.tf_runtime import tf
pools = tf.config.threading
configure_threads(None)
sized = [pools.get_intra_op_parallelism_threads(), pools.get_inter_op_parallelism_threads()]
tf.constant([1.0]) + 1  # TensorFlow runs: its pools are fixed now
configure_threads(None)  # a second training in this process: nothing to change, no warning
print(json.dumps(sized), flush=True)
configure_threads(sized[0] + 1)  # a size that comes too late is reported
"""


def test_no_thread_count_means_every_core() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BERTBOT_")}
    result = subprocess.run(
        [sys.executable, "-c", CODE],
        cwd=ROOT,
        env={**env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    cores = len(os.sched_getaffinity(0))  # os.cpu_count() unless the process is pinned
    assert json.loads(result.stdout) == [cores, min(2, cores)]
    warnings = [line for line in result.stderr.splitlines() if line.startswith("WARNING")]
    assert len(warnings) == 1, result.stderr
    assert f"intra-op threads: {cores})" in warnings[0]
    assert f"instead of using {cores + 1}" in warnings[0]
