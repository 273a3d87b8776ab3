"""`make run FAST=1` from a fresh clone reaches the printed URL, and a second run skips setup.

The clone gets a fresh BERTBOT_HOME: the data sets, the base encoder and both first models are
fetched, imported and trained by `make run` itself, then the emulator serves them. The clone
shares this checkout's virtualenv (CI has just built it with `make install`, which is the
first step of `make run`): its `pyproject.toml` and `constraints.txt` are given an old
mtime so make sees the install as done instead of re-pointing the shared editable install
at the clone.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = [pytest.mark.slow, pytest.mark.data, pytest.mark.encoder]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _get(url: str) -> tuple[int, bytes]:
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - loopback only
        return response.status, response.read()


def _post(url: str, payload: dict[str, Any]) -> dict[str, Any]:
    request = urllib.request.Request(
        url,
        data=json.dumps(payload).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:  # noqa: S310 - loopback only
        return dict(json.loads(response.read()))


class MakeRun:
    """`make run` in its own process group; its output is collected as it comes."""

    def __init__(self, clone: Path, env: dict[str, str], port: int) -> None:
        self.started = time.monotonic()
        self.process = subprocess.Popen(
            ["make", "--no-print-directory", "run", "FAST=1", f"PORT={port}"],
            cwd=clone,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.process.stdout is not None
        for line in self.process.stdout:
            self.lines.append(line)

    @property
    def output(self) -> str:
        return "".join(self.lines)

    def wait_until_serving(self, url: str, timeout: float) -> float:
        """Seconds until the printed URL answers; fails with the output on exit or timeout."""
        deadline = self.started + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                pytest.fail(f"make run exited with {self.process.returncode}:\n{self.output}")
            if url in self.output:
                try:
                    if _get(url)[0] == 200:
                        return time.monotonic() - self.started
                except OSError:
                    pass
            time.sleep(1)
        self.stop()
        pytest.fail(f"make run did not serve {url} within {timeout:.0f}s:\n{self.output[-4000:]}")

    def stop(self) -> int:
        if self.process.poll() is None:
            os.killpg(self.process.pid, signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait(timeout=30)
        self._reader.join(timeout=10)
        return int(self.process.returncode)


def test_make_run_from_a_fresh_clone_serves_the_emulator_with_trained_models(
    tmp_path: Path,
) -> None:
    if not (ROOT / ".venv" / "bin" / "bertbot").exists():
        pytest.fail("run `make install` first: the clone shares this checkout's virtualenv")
    clone = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(ROOT), str(clone)], check=True)
    (clone / ".venv").symlink_to(ROOT / ".venv")
    for name in ("pyproject.toml", "constraints.txt"):
        os.utime(clone / name, (0, 0))
    home = tmp_path / "home"
    port = _free_port()
    # As a new user has it: no bertbot settings, and TensorFlow's logging left to bertbot.
    unset = ("BERTBOT_", "SLACK_", "TF_CPP_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(unset)}
    env.update({"BERTBOT_HOME": str(home), "PYTHONUNBUFFERED": "1"})
    url = f"http://127.0.0.1:{port}"

    first = MakeRun(clone, env, port)
    try:
        first_seconds = first.wait_until_serving(url, timeout=40 * 60)
        config = json.loads(_get(f"{url}/emulator/api/config")[1])
        member = next(u["id"] for u in config["users"] if u["role"] == "member")
        general = next(c["id"] for c in config["channels"] if c["name"] == "general")
        _post(
            f"{url}/emulator/api/send",
            {"user": member, "channel": general, "text": "/classify I love this!"},
        )
        answer = ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and "model v1" not in answer:
            state = json.loads(_get(f"{url}/emulator/api/state?user={member}")[1])
            answer = json.dumps(state["channels"].get(general, []))
            time.sleep(0.5)
    finally:
        first_code = first.stop()
    output = first.output
    print(f"first make run: serving after {first_seconds:.0f} s")
    assert "Traceback" not in output, output[-3000:]
    notices = ("cuInit", "cuda drivers", "oneDNN", "optimized to use available CPU instructions")
    assert not [line for line in output.splitlines() if any(n in line for n in notices)]
    print(f"first make run exited with {first_code} after Ctrl-C")
    for step in ("[1/4] database", "[2/4] base encoder", "[3/4] data sets", "[4/4] first models"):
        assert step in output
    assert "spam: training the first model" in output
    assert "sentiment: training the first model" in output
    assert re.search(r"\d+(\.\d)?% .*ETA", output), "no progress bar with an ETA was shown"
    assert url in output
    assert "sentiment" in answer and "model v1" in answer, answer[:2000]
    assert "spam" in answer

    second = MakeRun(clone, env, port)
    try:
        second_seconds = second.wait_until_serving(url, timeout=5 * 60)
    finally:
        second.stop()
    print(f"second make run: serving after {second_seconds:.0f} s")
    again = second.output
    assert "already imported" in again and "seed labels already stored" in again
    assert "training the first model" not in again
    assert "spam: production is v1" in again and "sentiment: production is v1" in again
