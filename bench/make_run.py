"""`make run` on a fresh clone, timed: the first run (venv, install, data, encoder, first models,
emulator) and a second run that skips what is done.

    python bench/make_run.py [--fast] [--keep]

Clones this repository's HEAD into a scratch directory with its own virtualenv (pip's cache
is reused, as on any machine that installed Python packages before) and its own
BERTBOT_HOME, runs `make run` until the printed URL answers, stops it with Ctrl-C, and runs
it again. Each output line is stamped with the seconds since the start, so the phases show.
Writes bench/results/make-run.json (make-run-fast.json with --fast).
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

from common import ROOT, save

PHASES = {
    "install": "pip install",
    "database": "[1/4] database",
    "encoder": "[2/4] base encoder",
    "data": "[3/4] data sets",
    "models": "[4/4] first models",
    "serve": "the Slack emulator is at",
}


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def run_until_serving(
    clone: Path, env: dict[str, str], port: int, fast: bool, timeout: float
) -> dict[str, Any]:
    url = f"http://127.0.0.1:{port}"
    started = time.monotonic()
    command = ["make", "--no-print-directory", "run", f"PORT={port}"] + (["FAST=1"] if fast else [])
    process = subprocess.Popen(
        command,
        cwd=clone,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    stamped: list[tuple[float, str]] = []

    def read() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            stamped.append((time.monotonic() - started, line.rstrip()))
            print(f"  [{stamped[-1][0]:6.0f}s] {line.rstrip()[:150]}", flush=True)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    serving_after = None
    while time.monotonic() - started < timeout and process.poll() is None:
        if any(url in line for _, line in stamped):
            try:
                with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310
                    if response.status == 200:
                        serving_after = time.monotonic() - started
                        break
            except OSError:
                pass
        time.sleep(0.5)
    if process.poll() is None:
        os.killpg(process.pid, signal.SIGINT)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
    reader.join(timeout=10)
    if serving_after is None:
        tail = "\n".join(line for _, line in stamped[-40:])
        raise SystemExit(f"make run did not serve {url}:\n{tail}")
    phases = {}
    for name, marker in PHASES.items():
        hit = next((t for t, line in stamped if marker in line), None)
        if hit is not None:
            phases[name] = round(hit, 1)
    longest_silence = max(
        (b[0] - a[0] for a, b in zip(stamped, stamped[1:], strict=False)), default=0.0
    )
    return {
        "serving_after_s": round(serving_after, 1),
        "phase_starts_s": phases,
        "output_lines": len(stamped),
        "longest_silence_s": round(longest_silence, 1),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--fast", action="store_true", help="make run FAST=1 (small models)")
    parser.add_argument("--keep", action="store_true", help="keep the scratch clone")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="bertbot-make-run-"))
    clone = scratch / "bertbot"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    revision = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=clone, capture_output=True, text=True
    ).stdout.strip()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("BERTBOT_", "SLACK_"))}
    env.update({"PYTHONUNBUFFERED": "1", "TF_CPP_MIN_LOG_LEVEL": "2"})
    port = _free_port()
    try:
        print(f"first make run in {clone} (revision {revision})", flush=True)
        first = run_until_serving(clone, env, port, args.fast, timeout=60 * 60)
        print(f"\nfirst run: serving after {first['serving_after_s']} s", flush=True)
        print("second make run", flush=True)
        second = run_until_serving(clone, env, port, args.fast, timeout=10 * 60)
        print(f"second run: serving after {second['serving_after_s']} s", flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(scratch, ignore_errors=True)
    path = save(
        "make-run-fast" if args.fast else "make-run",
        {"revision": revision, "fast": args.fast, "first": first, "second": second},
    )
    print(f"results: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
