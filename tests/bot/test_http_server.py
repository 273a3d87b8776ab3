"""``BotHttpServer``: starting and stopping the waitress server the bot is served by."""

from __future__ import annotations

import os
import urllib.request

from slack_bolt import App

from bot.transport.http import BotHttpServer


def _app() -> App:
    return App(signing_secret="secret", token="xoxb-test", token_verification_enabled=False)


def test_close_stops_the_loop_and_frees_the_port() -> None:
    server = BotHttpServer(_app(), host="127.0.0.1", port=0, threads=2).start()
    with urllib.request.urlopen(server.url + "/healthz", timeout=5) as answer:
        assert answer.status == 200
    server.close(timeout=5)
    assert server._thread is not None and not server._thread.is_alive()
    server.close()  # twice is harmless


def test_close_still_stops_when_the_wake_up_pipe_is_gone() -> None:
    """An fd closed under the server (seen once in CI as EBADF at teardown) must not fail close."""
    server = BotHttpServer(_app(), host="127.0.0.1", port=0, threads=2).start()
    os.close(server._server.trigger.trigger)  # the pipe's write end: pulling it raises EBADF
    server.close(timeout=5)
    assert server._thread is not None and not server._thread.is_alive()
