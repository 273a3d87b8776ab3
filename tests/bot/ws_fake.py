"""A minimal RFC 6455 WebSocket server standing in for Slack's Socket Mode endpoint.

Just enough of the protocol for slack_sdk's built-in client: the opening handshake
(``Sec-WebSocket-Accept``), unfragmented text frames both ways (the client's masked, ours
not), ping -> pong, and the closing handshake. It records what the client sends and
refuses protocol errors loudly (an unmasked client frame, a fragment) instead of
guessing. No dependency beyond the standard library.
"""

from __future__ import annotations

import base64
import hashlib
import json
import socket
import struct
import threading
import time
import uuid
from collections.abc import Callable
from typing import Any

_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OP_CONTINUATION, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA


def accept_key(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client's ``Sec-WebSocket-Key`` (RFC 6455, 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key.encode() + _GUID).digest()).decode()


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """One unmasked, final frame (servers never mask)."""
    head = bytes([0x80 | opcode])
    length = len(payload)
    if length < 126:
        head += bytes([length])
    elif length < 1 << 16:
        head += bytes([126]) + struct.pack("!H", length)
    else:
        head += bytes([127]) + struct.pack("!Q", length)
    return head + payload


class FakeSocketModeServer:
    """Slack's Socket Mode endpoint on ``127.0.0.1``: one client connection at a time.

    Use as a context manager. :attr:`url` is what ``apps.connections.open`` should answer.
    """

    def __init__(self, host: str = "127.0.0.1") -> None:
        self._listener = socket.create_server((host, 0))
        self._listener.settimeout(0.1)
        self.ticket = uuid.uuid4().hex
        self._lock = threading.Condition()
        self._client: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._stopping = False
        self.handshakes: list[dict[str, str]] = []
        self.received: list[dict[str, Any]] = []
        self.pings = 0
        self.closes: list[int] = []
        self.disconnects = 0
        self.errors: list[str] = []
        self._thread = threading.Thread(target=self._accept_loop, name="fake-wss", daemon=True)

    @property
    def url(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"ws://{host}:{port}/link/?ticket={self.ticket}&app_id=A0BERTBOT"

    def __enter__(self) -> FakeSocketModeServer:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stopping = True
        with self._lock:
            client = self._client
        if client is not None:
            try:
                client.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        self._thread.join(5)
        self._listener.close()

    # What tests call ------------------------------------------------------------------

    def wait_connected(self, timeout: float = 5.0) -> None:
        self._wait(lambda: self._client is not None, timeout, "no client connected")

    def send_json(self, message: dict[str, Any]) -> None:
        """Send one text frame to the connected client."""
        self._send(OP_TEXT, json.dumps(message).encode())

    def hello(self, app_id: str = "A0BERTBOT") -> None:
        """What Slack sends first on a new connection."""
        self.send_json(
            {
                "type": "hello",
                "num_connections": 1,
                "debug_info": {"host": "fake-wss", "approximate_connection_time": 18060},
                "connection_info": {"app_id": app_id},
            }
        )

    def envelope(
        self, kind: str, payload: dict[str, Any], *, accepts_response_payload: bool
    ) -> str:
        """Send an envelope (``slash_commands``, ``events_api``, ``interactive``); its id."""
        envelope_id = str(uuid.uuid4())
        message: dict[str, Any] = {
            "envelope_id": envelope_id,
            "payload": payload,
            "type": kind,
            "accepts_response_payload": accepts_response_payload,
        }
        if kind == "events_api":
            message |= {"retry_attempt": 0, "retry_reason": ""}
        self.send_json(message)
        return envelope_id

    def wait_for_ack(self, envelope_id: str, timeout: float = 5.0) -> dict[str, Any]:
        """The client's message acknowledging ``envelope_id``."""

        def find() -> dict[str, Any] | None:
            return next((m for m in self.received if m.get("envelope_id") == envelope_id), None)

        self._wait(lambda: find() is not None, timeout, f"no ack of envelope {envelope_id}")
        found = find()
        assert found is not None
        return found

    def wait_disconnected(self, timeout: float = 5.0) -> None:
        self._wait(lambda: self.disconnects > 0, timeout, "the client did not disconnect")

    # The server ------------------------------------------------------------------------

    def _wait(self, check: Callable[[], bool], timeout: float, message: str) -> None:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not check():
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(f"{message} within {timeout}s (errors: {self.errors})")
                self._lock.wait(left)

    def _send(self, opcode: int, payload: bytes) -> None:
        with self._lock:
            client = self._client
        if client is None:
            raise RuntimeError("no client connected")
        with self._send_lock:
            client.sendall(encode_frame(opcode, payload))

    def _accept_loop(self) -> None:
        while not self._stopping:
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            try:
                self._serve(conn)
            except (OSError, ValueError) as exc:
                if not self._stopping:
                    self._error(f"connection failed: {exc!r}")
            finally:
                with self._lock:
                    self._client = None
                    self.disconnects += 1
                    self._lock.notify_all()
                conn.close()

    def _serve(self, conn: socket.socket) -> None:
        conn.settimeout(None)
        reader = conn.makefile("rb")
        request = reader.readline().decode("latin-1").strip()
        headers: dict[str, str] = {"request-line": request}
        while True:
            line = reader.readline().decode("latin-1").strip()
            if not line:
                break
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        with self._lock:
            self.handshakes.append(headers)
        method, path = (request.split(" ") + ["", ""])[:2]
        if (
            method != "GET"
            or headers.get("upgrade", "").lower() != "websocket"
            or headers.get("sec-websocket-version") != "13"
            or "sec-websocket-key" not in headers
            or f"ticket={self.ticket}" not in path
        ):
            conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")
            self._error(f"bad handshake: {headers}")
            return
        conn.sendall(
            b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Accept: "
            + accept_key(headers["sec-websocket-key"]).encode()
            + b"\r\n\r\n"
        )
        with self._lock:
            self._client = conn
            self._lock.notify_all()
        while not self._stopping:
            frame = self._read_frame(reader)
            if frame is None:
                return
            opcode, payload = frame
            if opcode == OP_TEXT:
                with self._lock:
                    self.received.append(json.loads(payload.decode("utf-8")))
                    self._lock.notify_all()
            elif opcode == OP_PING:
                with self._lock:
                    self.pings += 1
                self._send(OP_PONG, payload)
            elif opcode == OP_CLOSE:
                code = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else 1005
                with self._lock:
                    self.closes.append(code)
                self._send(OP_CLOSE, payload[:2])
                return
            elif opcode != OP_PONG:
                self._error(f"unexpected opcode {opcode:#x}")
                return

    def _read_frame(self, reader: Any) -> tuple[int, bytes] | None:
        head = reader.read(2)
        if len(head) < 2:
            return None  # the client went away
        fin, opcode = head[0] & 0x80, head[0] & 0x0F
        masked, length = head[1] & 0x80, head[1] & 0x7F
        if length == 126:
            length = struct.unpack("!H", reader.read(2))[0]
        elif length == 127:
            length = struct.unpack("!Q", reader.read(8))[0]
        if not masked:
            raise ValueError("a client frame must be masked (RFC 6455, 5.1)")
        if not fin or opcode == OP_CONTINUATION:
            raise ValueError("fragmented frames are not supported by this fake")
        mask = reader.read(4)
        data = reader.read(length)
        if len(data) < length:
            return None
        return opcode, bytes(b ^ mask[i % 4] for i, b in enumerate(data))

    def _error(self, message: str) -> None:
        with self._lock:
            self.errors.append(message)
            self._lock.notify_all()
