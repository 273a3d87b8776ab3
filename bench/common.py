"""Shared helpers of the benchmark scripts (run them from the repository root)."""

from __future__ import annotations

import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS_DIR = ROOT / "bench" / "results"
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))


def home() -> Path:
    return Path(os.environ.get("BERTBOT_HOME", ROOT / "var")).resolve()


def machine() -> dict[str, Any]:
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process (Linux reports KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


def current_rss_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


def save(name: str, payload: dict[str, Any]) -> Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    payload = {
        "machine": machine(),
        "command": " ".join([Path(sys.argv[0]).as_posix(), *sys.argv[1:]]),
        **payload,
    }
    path.write_text(json.dumps(payload, indent=2, sort_keys=True) + "\n")
    return path


def git_revision() -> str:
    try:
        return subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def load_split(task: str) -> tuple[list[Any], list[Any]]:
    """The built data set of a task, split by the stable hash into (train, eval)."""
    from storage.texts import split_of
    from trainer.datasets import load_dataset_csv

    path = home() / "data" / f"{task}.csv"
    if not path.exists():
        raise SystemExit(f"{path} is missing: run `bertbot data fetch` first")
    examples = load_dataset_csv(path)
    train = [e for e in examples if split_of(e.text) == "train"]
    held_out = [e for e in examples if split_of(e.text) == "eval"]
    return train, held_out


@contextmanager
def baseline_checkout(revision: str) -> Iterator[Path]:
    """Another revision of bertbot's code in a scratch git worktree, removed afterwards (run
    it with the same venv: ``PYTHONPATH=<path>``)."""
    path = Path(tempfile.mkdtemp(prefix="bertbot-baseline-")) / "code"
    subprocess.run(
        ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(path), revision],
        check=True,
        capture_output=True,
    )
    try:
        yield path
    finally:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(path)],
            check=False,
            capture_output=True,
        )


def run_peer_script(python: str, script: str, request: dict[str, Any]) -> dict[str, Any]:
    """Run a bench-only peer script (``bench/<script>`` in ``.venv-peer``): the request as
    JSON on stdin, its last stdout line as the JSON answer; exit with its stderr if it fails."""
    peer = subprocess.run(
        [python, str(ROOT / "bench" / script)],
        input=json.dumps(request),
        capture_output=True,
        text=True,
        check=False,
    )
    if peer.returncode != 0:
        print(peer.stderr[-3000:], file=sys.stderr)
        raise SystemExit("the PyTorch peer failed (is .venv-peer installed? `make bench-peer`)")
    result: dict[str, Any] = json.loads(peer.stdout.strip().splitlines()[-1])
    return result
