"""What the fake provider servers share: a threaded JSON-over-HTTP server on 127.0.0.1 and a free port, and
:class:`FakeServer`, the skeleton of every fake (``start()``, ``host``, ``stop()``, handing out what it has
not played yet, posting JSON back to Shouwang).

Each fake (Twilio, Aliyun, Tencent, WeCom) is a :class:`FakeServer` whose ``answer`` takes the request (the
handler, for its path and headers, and the body) and returns the status and the JSON answer, or ``None``
to drop the connection without an answer (a provider that never replies).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar, Protocol, Self, TypeVar

import httpx2 as httpx

Answer = tuple[int, Any] | None
Handle = Callable[[BaseHTTPRequestHandler, bytes], Answer]


class Playable(Protocol):
    played: bool


P = TypeVar("P", bound=Playable)


class JsonServer:
    def __init__(self, handle: Handle, content_type: str = "application/json") -> None:
        def post(handler: BaseHTTPRequestHandler) -> None:
            body = handler.rfile.read(int(handler.headers.get("Content-Length", 0) or 0))
            answer = handle(handler, body)
            if answer is None:
                handler.close_connection = True
                return
            status, payload = answer
            data = json.dumps(payload, ensure_ascii=False).encode()
            handler.send_response(status)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(data)))
            handler.end_headers()
            handler.wfile.write(data)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                return

            def do_POST(self) -> None:
                post(self)

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class FakeServer:
    """The skeleton of a fake provider: ``start()`` serves :meth:`answer` on a free loopback port (``host``),
    ``stop()`` ends it. Subclasses are dataclasses with a ``_lock``."""

    content_type: ClassVar[str] = "application/json"
    _server: JsonServer
    _lock: threading.Lock

    def answer(self, handler: BaseHTTPRequestHandler, body: bytes) -> Answer:
        raise NotImplementedError

    def start(self) -> Self:
        self._server = JsonServer(self.answer, self.content_type)
        return self

    @property
    def host(self) -> str:
        """``127.0.0.1:PORT``, where the fake listens."""
        return f"127.0.0.1:{self._server.port}"

    def stop(self) -> None:
        self._server.stop()

    def unplayed(self, items: list[P]) -> list[P]:
        """The calls or messages not played yet, marked as played: each is played once."""
        with self._lock:
            fresh = [item for item in items if not item.played]
            for item in fresh:
                item.played = True
        return fresh


def post_json(url: str, payload: Any) -> httpx.Response:
    """POST ``payload`` as UTF-8 JSON, as the providers push their reports to Shouwang."""
    return httpx.post(url, content=json.dumps(payload, ensure_ascii=False).encode(),
                      headers={"Content-Type": "application/json"}, timeout=10)
