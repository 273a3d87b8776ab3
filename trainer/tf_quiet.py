"""TensorFlow's start-up notices, kept off the user's terminal (standard library only).

TensorFlow's native libraries log through absl before anything calls
``absl::InitializeLog()``, and until then absl writes every message to stderr whatever
``TF_CPP_MIN_LOG_LEVEL`` says. So ``import tensorflow`` prints, once per library that
carries its own copy of absl (the framework, then the profiler plugin), an absl banner,
the oneDNN notice and "Could not find cuda drivers", even at level 3. No variable turns
them off; :func:`native_stderr_filtered` drops them at file descriptor 2 while TensorFlow
is imported, and passes every other line through.
"""

from __future__ import annotations

import os
import sys
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager

__all__ = ["NOISE", "is_noise", "native_stderr_filtered"]

NOISE: tuple[str, ...] = (
    "All log messages before absl::InitializeLog() is called are written to STDERR",
    "oneDNN custom operations are on",
    "Could not find cuda drivers on your machine",
    "failed call to cuInit",
    "This TensorFlow binary is optimized to use available CPU instructions",
    "To enable the following instructions:",  # the line after the one above
    # CUDA builds on a machine without a GPU:
    "Unable to register cuDNN factory",
    "Unable to register cuFFT factory",
    "Unable to register cuBLAS factory",
    "TF-TRT Warning: Could not find TensorRT",
)
"""Known lines TensorFlow prints on a CPU-only machine that tell the user nothing to do."""

_JOIN_TIMEOUT_S = 5.0


def is_noise(line: str | bytes, noise: Iterable[str] = NOISE) -> bool:
    """Whether a line of stderr is one of TensorFlow's known start-up notices."""
    text = line.decode("utf-8", "replace") if isinstance(line, bytes) else line
    return any(marker in text for marker in noise)


def _write_all(fd: int, data: bytes) -> None:
    while data:
        data = data[os.write(fd, data) :]


def _flush_stderr() -> None:
    if sys.stderr is not None:  # None when Python started without a stderr
        sys.stderr.flush()


def _forward(read_fd: int, write_fd: int, noise: tuple[str, ...]) -> None:
    """Copies lines from ``read_fd`` to ``write_fd`` until EOF, dropping noise; closes both."""
    pending = b""
    try:
        while chunk := os.read(read_fd, 65536):
            lines = (pending + chunk).split(b"\n")
            pending = lines.pop()
            kept = [line + b"\n" for line in lines if not is_noise(line, noise)]
            if kept:
                _write_all(write_fd, b"".join(kept))
        if pending and not is_noise(pending, noise):
            _write_all(write_fd, pending)
    finally:
        os.close(read_fd)
        os.close(write_fd)


@contextmanager
def native_stderr_filtered(noise: Iterable[str] = NOISE) -> Iterator[None]:
    """While the block runs, lines written to file descriptor 2 lose the known noise.

    Native code writes to the descriptor, not to ``sys.stderr``, so the descriptor itself
    points at a pipe meanwhile; a thread copies each line to the real stderr unless it
    is noise. Python's own writes (warnings, a traceback) take the same way and reach the
    user. Without a usable descriptor 2 the block runs unfiltered.
    """
    _flush_stderr()
    try:
        real_stderr = os.dup(2)
    except OSError:
        yield
        return
    read_fd, write_fd = os.pipe()
    forwarder = threading.Thread(
        target=_forward,
        args=(read_fd, os.dup(real_stderr), tuple(noise)),
        name="tf-stderr-filter",
        daemon=True,
    )
    forwarder.start()
    os.dup2(write_fd, 2)
    os.close(write_fd)
    try:
        yield
    finally:
        _flush_stderr()
        os.dup2(real_stderr, 2)  # closes the pipe's last writer: the forwarder sees EOF
        os.close(real_stderr)
        # Wait for the lines in the pipe, so they keep their place before what follows. If
        # something the block started still holds the pipe open, the thread goes on
        # forwarding its lines and ends with it.
        forwarder.join(_JOIN_TIMEOUT_S)
